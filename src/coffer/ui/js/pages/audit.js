// Audit devices: list, enable (a file), disable.
import { allows, api } from "../api.js";
import { button, field, h, notice, replace, table } from "../dom.js";

export async function render(main, route, ctx) {
  main.append(h("h1", {}, "Audit devices"));
  const message = h("div", { class: "messages" });
  const list = h("div", { id: "audit-list" });
  main.append(message, list);
  if (allows(ctx.state.caps["sys/audit"], "sudo")) main.append(enableForm());

  async function show() {
    const devices = (await api("GET", "sys/audit")).data || {};
    const rows = Object.entries(devices).sort().map(([path, d]) => [
      h("code", {}, path), d.type, d.description || "",
      h("code", {}, (d.options && (d.options.file_path || d.options.path)) || ""),
      (d.options && d.options.log_raw === "true") ? "raw" : "hashed",
      button("Disable", () => disable(path), { class: "small danger" }),
    ]);
    replace(list, rows.length
      ? table(["Path", "Type", "Description", "File", "Values", ""], rows, { class: "list" })
      : notice("info", "No audit device is enabled: requests are not recorded."));
  }

  function enableForm() {
    const path = h("input", { id: "audit-path", value: "file" });
    const file = h("input", { id: "audit-file", placeholder: "/var/log/coffer/audit.log" });
    const description = h("input", { id: "audit-description" });
    const form = h("form", { class: "card inline" }, h("h3", {}, "Enable a file audit device"),
      field("Path", path), field("File", file), field("Description", description),
      h("button", { type: "submit", class: "primary" }, "Enable"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      replace(message);
      try {
        await api("PUT", `sys/audit/${path.value.trim().replace(/^\/+|\/+$/g, "")}`, {
          body: { type: "file", description: description.value, options: { file_path: file.value.trim() } } });
        replace(message, notice("ok", `Enabled the audit device ${path.value.trim()}/.`));
        await show();
      } catch (exc) {
        replace(message, notice("error", exc.message));
      }
    });
    return form;
  }

  async function disable(path) {
    if (!window.confirm(`Disable the audit device ${path}?`)) return;
    try {
      await api("DELETE", `sys/audit/${path}`);
      await show();
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }

  await show();
}
