// KV: browse folders (paged), read a secret (values hidden until asked), write one as JSON; v1 and v2 mounts.
import { api, ApiError, encodePath, listPage } from "../api.js";
import { append, button, copyButton, field, h, notice, replace, table } from "../dom.js";
import { editor, jsonProblem } from "../editor.js";

const segment = (mount) => encodeURIComponent(mount.replace(/\/$/, ""));

export async function render(main, route, ctx) {
  const mounts = ctx.state.kvMounts.filter((m) => m.allowed);
  const [mountName, ...rest] = route.rest;
  if (!mountName) {
    main.append(h("h1", {}, "KV"));
    if (mounts.length === 1) {
      ctx.go(`#/kv/${segment(mounts[0].path)}/`);
      return;
    }
    main.append(mounts.length
      ? h("ul", { class: "links" }, mounts.map((m) => h("li", {}, h("a", { href: `#/kv/${segment(m.path)}/` },
        `${m.path} (v${m.version})`))))
      : notice("info", "No KV mount is visible to your token."));
    return;
  }
  const mount = `${mountName}/`;
  const known = ctx.state.kvMounts.find((m) => m.path === mount);
  const version = known ? known.version : 1;
  const path = rest.join("/");
  const isFolder = route.raw.endsWith("/") || !path;
  const base = `#/kv/${segment(mount)}/`;
  const paths = {
    list: (p) => (version === 2 ? `${mount}metadata/${encodePath(p)}` : `${mount}${encodePath(p)}`),
    data: (p) => (version === 2 ? `${mount}data/${encodePath(p)}` : `${mount}${encodePath(p)}`),
    remove: (p) => (version === 2 ? `${mount}metadata/${encodePath(p)}` : `${mount}${encodePath(p)}`),
  };
  const crumbs = h("div", { class: "crumbs" }, h("a", { href: base }, mount),
    path.split("/").filter(Boolean).map((part, i, all) => {
      const last = i === all.length - 1 && !isFolder;
      return [" / ", last ? part : h("a", { href: `${base}${all.slice(0, i + 1).map(encodeURIComponent).join("/")}/` },
        part)];
    }));
  main.append(h("h1", {}, `KV ${mount}`, h("span", { class: "muted" }, ` version ${version}`)), crumbs);
  if (isFolder) await folder(main, ctx, { mount, path, paths, base, route });
  else await secret(main, ctx, { mount, path, paths, base, version });
}

async function folder(main, ctx, { path, paths, base, route }) {
  const after = route.query.get("after") || "";
  const page = await listPage(paths.list(path), { after, limit: 100 });
  const here = `${base}${path.split("/").filter(Boolean).map(encodeURIComponent).join("/")}${path ? "/" : ""}`;
  const rows = page.keys.map((k) => [h("a", {
    href: `${here}${k.endsWith("/") ? `${encodeURIComponent(k.slice(0, -1))}/` : encodeURIComponent(k)}`,
    class: k.endsWith("/") ? "folder" : "secret-link" }, k)]);
  main.append(rows.length ? table(["Key"], rows, { class: "list", id: "kv-table" })
    : notice("info", "Nothing here yet."));
  main.append(h("div", { class: "pager" },
    after ? h("a", { href: here, class: "button small" }, "First page") : null,
    page.more ? h("a", { href: `${here}?after=${encodeURIComponent(page.keys.at(-1))}`, class: "button small",
      id: "next-page" }, "Next page") : null));
  // A new secret here.
  const name = h("input", { id: "kv-new-path", placeholder: "name (or sub/folder/name)" });
  const form = h("form", { class: "card inline", id: "kv-new" }, h("h3", {}, "New secret"), field("Path", name),
    h("button", { type: "submit", class: "primary" }, "Create"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const target = `${path}${name.value.trim().replace(/^\/+/, "")}`;
    if (target) ctx.go(`${base}${target.split("/").map(encodeURIComponent).join("/")}?new=1`);
  });
  main.append(form);
}

async function secret(main, ctx, { path, paths, base, version }) {
  const message = h("div", { class: "messages" });
  let data = {};
  let meta = null;
  let missing = false;
  try {
    const answer = await api("GET", paths.data(path));
    data = (version === 2 ? answer.data.data : answer.data) || {};
    meta = version === 2 ? answer.data.metadata : null;
  } catch (exc) {
    if (!(exc instanceof ApiError && exc.status === 404)) throw exc;
    missing = true;
  }
  if (!missing) {
    const rows = Object.entries(data).sort().map(([k, v]) => {
      const text = typeof v === "string" ? v : JSON.stringify(v);
      const value = h("code", { class: "secret masked", dataset: { key: k } }, "•".repeat(12));
      let open = false;
      const toggle = button("Show", () => {
        open = !open;
        value.textContent = open ? text : "•".repeat(12);
        value.classList.toggle("masked", !open);
        toggle.textContent = open ? "Hide" : "Show";
      }, { class: "small" });
      return [h("code", {}, k), h("span", { class: "value" }, value, toggle, copyButton(text))];
    });
    main.append(h("div", { class: "card", id: "kv-secret" }, h("h2", {}, path),
      meta ? h("p", { class: "muted" }, `version ${meta.version}, written ${new Date(meta.created_time).toLocaleString()}`)
        : null,
      rows.length ? table(["Key", "Value"], rows, { class: "kv" }) : notice("info", "This secret is empty.")));
  } else {
    main.append(notice("info", `${path} does not exist yet: write it below.`));
  }
  const save = h("button", { type: "submit", class: "primary", id: "kv-save" }, "Save");
  const doc = editor({ id: "kv-editor", rows: 10, value: JSON.stringify(missing ? { key: "value" } : data, null, 2),
    onInput: check });
  function check(text) {
    const parsed = jsonProblem(text);
    if (parsed.error) doc.problem(`not valid JSON: ${parsed.error}`, parsed.line);
    else if (typeof parsed.value !== "object" || parsed.value === null || Array.isArray(parsed.value)) {
      doc.problem("a secret is a JSON object of keys and values", 1);
    } else if (!Object.keys(parsed.value).length) doc.problem("write at least one key", 1);
    else doc.ok();
    save.disabled = doc.element.classList.contains("invalid");
  }
  const form = h("form", { class: "card", id: "kv-form", hidden: !missing },
    h("h2", {}, missing ? "Write" : version === 2 ? "Edit (writes a new version)" : "Edit"),
    doc.element, h("div", { class: "row" }, save));
  // The values show in the editor, so it opens only when asked.
  const edit = missing ? null : button("Edit", () => {
    form.hidden = false;
    edit.hidden = true;
    doc.area.focus();
  }, { id: "kv-edit" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(message);
    const value = JSON.parse(doc.value);
    try {
      await api("POST", paths.data(path), { body: version === 2 ? { data: value } : value });
      ctx.go(`${base}${path.split("/").map(encodeURIComponent).join("/")}`);
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  });
  async function remove() {
    if (!window.confirm(`Delete ${path}${version === 2 ? " and all its versions" : ""}?`)) return;
    try {
      await api("DELETE", paths.remove(path));
      const parent = path.split("/").slice(0, -1);
      ctx.go(`${base}${parent.length ? `${parent.map(encodeURIComponent).join("/")}/` : ""}`);
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }
  check(doc.value);
  append(main, [missing ? null : h("div", { class: "row" }, edit,
    button("Delete", remove, { class: "danger", id: "kv-delete" })), form, message]);
}
