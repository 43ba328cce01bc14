// Building the page without innerHTML: every value from the server becomes a text node.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A small message box: kind is "error", "ok" or "info".
export function notice(kind, ...text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

export function button(label, onclick, props = {}) {
  return h("button", { type: "button", ...props, onclick }, label);
}

// "1h 02m 03s" for a number of seconds.
export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400), hh = Math.floor((seconds % 86400) / 3600);
  const mm = Math.floor((seconds % 3600) / 60), ss = seconds % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (d) return `${d}d ${pad(hh)}h ${pad(mm)}m`;
  if (hh) return `${hh}h ${pad(mm)}m ${pad(ss)}s`;
  if (mm) return `${mm}m ${pad(ss)}s`;
  return `${ss}s`;
}

// Copy text to the clipboard (the Clipboard API needs a secure context; fall back to a hidden field).
export async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (_) { /* fall through */ }
  }
  const field = h("textarea", { class: "offscreen", readonly: true });
  field.value = text;
  document.body.append(field);
  field.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
  field.remove();
  return ok;
}

export function copyButton(getText, label = "Copy") {
  const btn = h("button", { type: "button", class: "small", title: "Copy to the clipboard" }, label);
  btn.addEventListener("click", async () => {
    const ok = await copy(typeof getText === "function" ? getText() : getText);
    btn.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { btn.textContent = label; }, 1500);
  });
  return btn;
}

// A table from rows of cells; the first argument names the columns.
export function table(columns, rows, props = {}) {
  return h("table", props,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), input,
    hint ? h("span", { class: "hint" }, hint) : null);
}
