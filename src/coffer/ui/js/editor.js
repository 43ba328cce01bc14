// A text editor with line numbers that can point at the line an error is about.
import { h, replace } from "./dom.js";

export function editor({ id, value = "", rows = 14, onInput } = {}) {
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const area = h("textarea", { id, rows, spellcheck: "false", autocomplete: "off", wrap: "off" });
  area.value = value;
  const message = h("div", { class: "editor-message", id: id ? `${id}-message` : undefined, "aria-live": "polite" });
  const wrap = h("div", { class: "editor" }, h("div", { class: "editor-body" }, gutter, area), message);
  let errorLine = 0;

  function numbers() {
    const count = area.value.split("\n").length;
    replace(gutter, Array.from({ length: count }, (_, i) =>
      h("div", { class: i + 1 === errorLine ? "line error" : "line", dataset: { line: i + 1 } }, String(i + 1))));
    gutter.scrollTop = area.scrollTop;
  }

  area.addEventListener("input", () => {
    if (onInput) onInput(area.value, api);
    numbers();
  });
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });

  const api = {
    element: wrap,
    area,
    get value() { return area.value; },
    set value(v) { area.value = v; numbers(); },
    // Show a problem (and mark its line, when known); ok() clears it.
    problem(text, line = 0) {
      errorLine = line || 0;
      wrap.classList.add("invalid");
      const named = /\bline \d+/i.test(text);
      replace(message, h("span", { class: "error-text", role: "alert" }, line && !named ? `Line ${line}: ${text}` : text));
      numbers();
      if (line) scrollToLine(line);
    },
    ok(text = "") {
      errorLine = 0;
      wrap.classList.remove("invalid");
      replace(message, text ? h("span", { class: "ok-text" }, text) : "");
      numbers();
    },
    get errorLine() { return errorLine; },
  };

  function scrollToLine(line) {
    const height = parseFloat(getComputedStyle(area).lineHeight) || 18;
    const top = (line - 1) * height;
    if (top < area.scrollTop || top > area.scrollTop + area.clientHeight - height) {
      area.scrollTop = Math.max(0, top - area.clientHeight / 3);
    }
  }

  numbers();
  return api;
}

// JSON.parse's complaint, as {message, line, column} (Chromium says "at position N" or "(line L column C)").
export function jsonProblem(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (exc) {
    const message = String(exc.message);
    let line = 0, column = 0;
    const lc = message.match(/line (\d+) column (\d+)/);
    const pos = message.match(/position (\d+)/);
    if (lc) {
      line = Number(lc[1]);
      column = Number(lc[2]);
    } else if (pos) {
      const before = text.slice(0, Number(pos[1]));
      line = before.split("\n").length;
      column = before.length - before.lastIndexOf("\n");
    } else if (/end of JSON input/i.test(message)) {
      line = text.split("\n").length;
    }
    const clean = message.replace(/^JSON\.parse: /, "").replace(/ in JSON at position \d+.*$/, "")
      .replace(/\s*\(line \d+ column \d+\)/, "");
    return { error: column ? `${clean} (column ${column})` : clean, line };
  }
}

// The line a server-side error names: "line 3: ...", "At 3:13: ...", "3:13".
export function lineOf(message) {
  const m = String(message).match(/\bline (\d+)/i) || String(message).match(/\bAt (\d+):\d+/) ||
    String(message).match(/^(\d+):\d+/);
  return m ? Number(m[1]) : 0;
}
