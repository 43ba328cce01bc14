// Sign in with a token, or through the userpass or AppRole auth methods (their login answers a token).
import { api, session } from "../api.js";
import { button, field, h, notice, replace } from "../dom.js";
import { discover } from "../app.js";

export async function render(main, route, ctx) {
  const message = h("div", { class: "messages" });
  const methods = {
    token: {
      title: "Token",
      inputs: { token: h("input", { type: "password", id: "login-token", autocomplete: "off", placeholder: "s.…" }) },
      async login(v) { return v.token.trim(); },
    },
    userpass: {
      title: "Username",
      inputs: {
        mount: h("input", { id: "login-userpass-mount", value: "userpass" }),
        username: h("input", { id: "login-username", autocomplete: "username" }),
        password: h("input", { type: "password", id: "login-password", autocomplete: "current-password" }),
      },
      async login(v) {
        const path = `auth/${v.mount.replace(/^\/+|\/+$/g, "")}/login/${encodeURIComponent(v.username)}`;
        return (await api("POST", path, { token: "", body: { password: v.password } })).auth.client_token;
      },
    },
    approle: {
      title: "AppRole",
      inputs: {
        mount: h("input", { id: "login-approle-mount", value: "approle" }),
        role_id: h("input", { id: "login-role-id", autocomplete: "off" }),
        secret_id: h("input", { type: "password", id: "login-secret-id", autocomplete: "off" }),
      },
      async login(v) {
        const path = `auth/${v.mount.replace(/^\/+|\/+$/g, "")}/login`;
        const body = { role_id: v.role_id };
        if (v.secret_id) body.secret_id = v.secret_id;
        return (await api("POST", path, { token: "", body })).auth.client_token;
      },
    },
  };
  const labels = { token: "Token", mount: "Mounted at", username: "Username", password: "Password",
    role_id: "Role ID", secret_id: "Secret ID" };
  let chosen = "token";
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const form = h("form", { class: "card login", id: "login-form" });

  function show() {
    replace(tabs, Object.entries(methods).map(([id, m]) =>
      button(m.title, () => { chosen = id; show(); },
        { role: "tab", "aria-selected": String(id === chosen), class: id === chosen ? "tab active" : "tab",
          id: `login-tab-${id}` })));
    const m = methods[chosen];
    replace(form, Object.entries(m.inputs).map(([k, input]) => field(labels[k], input)),
      h("button", { type: "submit", class: "primary", id: "login-submit" }, "Sign in"));
    const first = Object.values(m.inputs).find((i) => !i.value) || Object.values(m.inputs)[0];
    first.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(message);
    const m = methods[chosen];
    const values = Object.fromEntries(Object.entries(m.inputs).map(([k, i]) => [k, i.value]));
    try {
      const token = await m.login(values);
      if (!token) throw new Error("enter a token");
      session.token = token;
      await discover();
      ctx.go("#/status");
    } catch (exc) {
      session.token = "";
      const text = exc.status === 403 && chosen === "token" ? "That token is not valid (or has expired)."
        : exc.status === 403 || exc.status === 400 ? `Sign-in refused: ${exc.message}` : exc.message;
      replace(message, notice("error", text));
    }
  });

  show();
  main.append(h("h1", {}, "Sign in to coffer"), tabs, form, message);
}
