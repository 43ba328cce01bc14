// Seal status, the unseal form (progress towards the threshold), and sealing.
import { allows, api } from "../api.js";
import { button, field, h, notice, replace, table } from "../dom.js";

export async function render(main, route, ctx) {
  main.append(h("h1", {}, "Seal status"));
  const box = h("div", { id: "seal-status" });
  const message = h("div", { class: "messages" });
  main.append(box, message);

  async function show() {
    const s = await api("GET", "sys/seal-status", { token: "" });
    const state = s.sealed ? "Sealed" : "Unsealed";
    const rows = [
      ["State", h("span", { class: `pill ${s.sealed ? "bad" : "good"}`, id: "seal-state" }, state)],
      ["Initialized", s.initialized ? "yes" : "no"],
      ["Key shares / threshold", `${s.n} / ${s.t}`],
      ["Unseal progress", `${s.progress} of ${s.t}`],
      ["Version", s.version],
      ["Storage", s.storage_type || ""],
    ];
    const parts = [h("div", { class: "card" }, table(["", ""], rows, { class: "kv" }))];
    if (s.sealed && s.initialized) parts.push(unsealForm(s));
    if (!s.initialized) parts.push(notice("info", "This server is not initialized yet: run coffer operator init."));
    if (!s.sealed && ctx.state.self) {
      parts.push(tokenCard(ctx.state.self));
      if (allows(ctx.state.caps["sys/seal"], "update", "sudo")) {
        parts.push(h("div", { class: "card" }, h("h2", {}, "Seal the server"),
          h("p", {}, "Sealing stops every request until the server is unsealed again with the unseal keys."),
          button("Seal now", seal, { class: "danger", id: "seal-button" })));
      }
    }
    replace(box, parts);
  }

  function unsealForm(s) {
    const key = h("input", { type: "password", id: "unseal-key", autocomplete: "off",
      placeholder: "an unseal key (base64 or hex)" });
    const form = h("form", { class: "card", id: "unseal-form" }, h("h2", {}, "Unseal"),
      h("p", {}, `Enter unseal keys one at a time: ${s.t} of the ${s.n} key shares are needed.`),
      field("Unseal key", key),
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary", id: "unseal-submit" }, "Unseal"),
        button("Start over", async () => {
          await api("PUT", "sys/unseal", { token: "", body: { reset: true } });
          await show();
        }, { id: "unseal-reset" })));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      replace(message);
      try {
        const answer = await api("PUT", "sys/unseal", { token: "", body: { key: key.value.trim() } });
        if (!answer.sealed) {
          replace(message, notice("ok", "The server is unsealed."));
          ctx.go(ctx.state.self ? "#/status" : "#/login");
          return;
        }
        replace(message, notice("info", `Key accepted: ${answer.progress} of ${answer.t}.`));
        await show();
      } catch (exc) {
        replace(message, notice("error", exc.message));
      }
    });
    setTimeout(() => key.focus(), 0);
    return form;
  }

  function tokenCard(self) {
    const ttl = self.ttl ? `${self.ttl}s` : "never expires";
    return h("div", { class: "card" }, h("h2", {}, "Signed in"), table(["", ""], [
      ["Display name", self.display_name], ["Policies", (self.policies || []).join(", ")], ["Token TTL", ttl],
    ], { class: "kv" }));
  }

  async function seal() {
    if (!window.confirm("Seal the server? Every request fails until it is unsealed with the unseal keys.")) return;
    try {
      await api("PUT", "sys/seal");
      await show();
      ctx.go("#/status");
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }

  await show();
}
