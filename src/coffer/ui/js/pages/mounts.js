// Secrets engines and auth methods: list, enable, disable.
import { api } from "../api.js";
import { button, field, h, notice, replace, table } from "../dom.js";

const TTL = (s) => (s ? `${s}s` : "system default");

export async function render(main, route, ctx) {
  main.append(h("h1", {}, "Mounts"));
  const message = h("div", { class: "messages" });
  const secrets = h("div", { id: "secret-mounts" });
  const auths = h("div", { id: "auth-mounts" });
  main.append(message, h("h2", {}, "Secrets engines"), secrets, enableForm(), h("h2", {}, "Auth methods"), auths);

  async function show() {
    const mounts = (await api("GET", "sys/mounts")).data;
    replace(secrets, table(["Path", "Type", "Description", "Accessor", "Default TTL", "Max TTL", ""],
      Object.entries(mounts).sort().map(([path, m]) => [
        h("code", {}, path),
        m.type + (m.options && m.options.version ? ` v${m.options.version}` : ""),
        m.description || "",
        h("code", {}, m.accessor || ""),
        TTL(m.config && m.config.default_lease_ttl),
        TTL(m.config && m.config.max_lease_ttl),
        ["sys/", "cubbyhole/"].includes(path) ? "" : button("Disable", () => disable(path), { class: "small danger" }),
      ]), { class: "list", id: "mounts-table" }));
    try {
      const methods = (await api("GET", "sys/auth")).data;
      replace(auths, table(["Path", "Type", "Description", "Accessor"], Object.entries(methods).sort().map(
        ([path, m]) => [h("code", {}, `auth/${path}`), m.type, m.description || "", h("code", {}, m.accessor || "")]),
      { class: "list" }));
    } catch (exc) {
      replace(auths, notice("error", exc.message));
    }
  }

  function enableForm() {
    const path = h("input", { id: "mount-path", placeholder: "e.g. aws-prod" });
    const type = h("select", { id: "mount-type" }, ["kv", "aws", "generic"].map((t) => h("option", { value: t }, t)));
    const version = h("select", { id: "mount-version" }, h("option", { value: "1" }, "1"),
      h("option", { value: "2" }, "2"));
    const description = h("input", { id: "mount-description" });
    const form = h("form", { class: "card inline" }, h("h3", {}, "Enable a secrets engine"),
      field("Path", path), field("Type", type), field("KV version", version), field("Description", description),
      h("button", { type: "submit", class: "primary" }, "Enable"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      replace(message);
      const body = { type: type.value, description: description.value };
      if (type.value === "kv") body.options = { version: version.value };
      try {
        await api("POST", `sys/mounts/${path.value.trim().replace(/^\/+|\/+$/g, "")}`, { body });
        replace(message, notice("ok", `Enabled ${type.value} at ${path.value.trim()}/.`));
        path.value = "";
        await show();
        await ctx.refresh();
      } catch (exc) {
        replace(message, notice("error", exc.message));
      }
    });
    return form;
  }

  async function disable(path) {
    if (!window.confirm(`Disable ${path}? Its leases are revoked and its data is deleted.`)) return;
    try {
      await api("DELETE", `sys/mounts/${path}`);
      replace(message, notice("ok", `Disabled ${path}.`));
      await show();
      await ctx.refresh();
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }

  await show();
}
