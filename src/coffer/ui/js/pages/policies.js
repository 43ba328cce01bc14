// ACL policies: list, view, edit (the server's parse errors are shown at their line), delete.
import { api, ApiError, listPage } from "../api.js";
import { button, field, h, notice, replace, table } from "../dom.js";
import { editor, lineOf } from "../editor.js";

export async function render(main, route, ctx) {
  const [name] = route.rest;
  if (name || route.query.get("new")) return edit(main, ctx, name || "", route);
  main.append(h("h1", {}, "ACL policies"));
  const after = route.query.get("after") || "";
  const page = await listPage("sys/policies/acl", { after, limit: 100 });
  main.append(h("div", { class: "row" }, h("a", { href: "#/policies/?new=1", class: "button primary", id: "new-policy" },
    "New policy")),
  table(["Policy"], page.keys.map((p) => [h("a", { href: `#/policies/${encodeURIComponent(p)}`, class: "policy-link" },
    p)]), { class: "list", id: "policies-table" }),
  h("div", { class: "pager" }, page.more ? h("a", {
    href: `#/policies?after=${encodeURIComponent(page.keys.at(-1))}`, class: "button small" }, "Next page") : null));
}

async function edit(main, ctx, name, route) {
  const message = h("div", { class: "messages", id: "policy-message" });
  let text = "";
  if (name) {
    try {
      text = (await api("GET", `sys/policies/acl/${encodeURIComponent(name)}`)).data.policy;
    } catch (exc) {
      if (!(exc instanceof ApiError && exc.status === 404)) throw exc;
    }
  } else {
    text = '# What this policy allows\npath "secret/*" {\n  capabilities = ["read", "list"]\n}\n';
  }
  const nameInput = h("input", { id: "policy-name", value: name, disabled: !!name, placeholder: "readers" });
  const doc = editor({ id: "policy-editor", value: text, rows: 18, onInput: () => doc.ok() });
  const builtin = name === "root" || name === "default";
  const form = h("form", { class: "card", id: "policy-form" },
    h("h1", {}, name ? `Policy ${name}` : "New policy"),
    name ? null : field("Name", nameInput),
    doc.element,
    h("div", { class: "row" },
      name === "root" ? null : h("button", { type: "submit", class: "primary", id: "policy-save" }, "Save"),
      name && !builtin ? button("Delete", remove, { class: "danger", id: "policy-delete" }) : null,
      h("a", { href: "#/policies", class: "button" }, "All policies")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(message);
    const target = name || nameInput.value.trim();
    if (!target) {
      replace(message, notice("error", "Give the policy a name."));
      return;
    }
    try {
      await api("PUT", `sys/policies/acl/${encodeURIComponent(target)}`, { body: { policy: doc.value } });
      if (name) doc.ok("Saved.");
      else ctx.go(`#/policies/${encodeURIComponent(target)}?saved=1`);
    } catch (exc) {
      // The server checks the policy; show its complaint at the line it names.
      doc.problem(exc.message, lineOf(exc.message));
    }
  });
  async function remove() {
    if (!window.confirm(`Delete the policy ${name}? Tokens that have it lose what it allowed.`)) return;
    try {
      await api("DELETE", `sys/policies/acl/${encodeURIComponent(name)}`);
      ctx.go("#/policies");
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }
  main.append(form, message);
  if (route.query.get("saved")) doc.ok("Saved.");
}
