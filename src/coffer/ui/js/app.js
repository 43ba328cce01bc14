// coffer's web UI: a hash router, the layout, and what the signed-in token may see.
import { ApiError, allows, api, capabilities, session } from "./api.js";
import { button, h, notice, replace } from "./dom.js";
import * as audit from "./pages/audit.js";
import * as aws from "./pages/aws.js";
import * as irrevocable from "./pages/irrevocable.js";
import * as kv from "./pages/kv.js";
import * as leases from "./pages/leases.js";
import * as login from "./pages/login.js";
import * as mounts from "./pages/mounts.js";
import * as policies from "./pages/policies.js";
import * as status from "./pages/status.js";

// What the signed-in token is, what it may reach, and the mounts it can see.
export const state = { self: null, caps: {}, mounts: null, awsMounts: [], kvMounts: [] };

const PAGES = [
  { id: "status", title: "Seal status", page: status, show: () => true },
  { id: "mounts", title: "Mounts", page: mounts, show: () => allows(state.caps["sys/mounts"], "read") },
  { id: "aws", title: "AWS", page: aws, show: () => state.awsMounts.some((m) => m.allowed) },
  { id: "leases", title: "Leases", page: leases, show: () => allows(state.caps["sys/leases/lookup/"], "list") },
  { id: "irrevocable", title: "Irrevocable", page: irrevocable, show: () => allows(state.caps["sys/leases"], "read") },
  { id: "kv", title: "KV", page: kv, show: () => state.kvMounts.some((m) => m.allowed) },
  { id: "policies", title: "Policies", page: policies, show: () => allows(state.caps["sys/policies/acl/"], "list") },
  { id: "audit", title: "Audit devices", page: audit, show: () => allows(state.caps["sys/audit"], "read") },
];

const PROBED = ["sys/mounts", "sys/leases/lookup/", "sys/leases", "sys/policies/acl/", "sys/audit", "sys/seal",
  "sys/leases/revoke-prefix/", "sys/leases/revoke-force/"];

// Learn what this token may do: its own lookup, capabilities on the UI's paths, and the mounts.
export async function discover() {
  state.self = (await api("GET", "auth/token/lookup-self")).data;
  state.caps = await capabilities(PROBED);
  state.mounts = null;
  if (allows(state.caps["sys/mounts"], "read")) {
    try {
      state.mounts = (await api("GET", "sys/mounts")).data;
    } catch (_) {
      state.mounts = null;
    }
  }
  let entries = state.mounts ? Object.entries(state.mounts) : null;
  if (!entries) {
    // Without sys/mounts: the mounts this token can reach (Vault's sys/internal/ui/mounts), else the usual ones.
    try {
      entries = Object.entries((await api("GET", "sys/internal/ui/mounts")).data.secret || {});
    } catch (_) {
      entries = [["aws/", { type: "aws" }], ["secret/", { type: "kv" }]];
    }
  }
  const awsPaths = entries.filter(([, m]) => m.type === "aws").map(([p]) => p);
  const kvEntries = entries.filter(([, m]) => m.type === "kv" || m.type === "generic" || m.type === "kv-v2");
  const probe = [...awsPaths.flatMap((p) => [`${p}roles/`, `${p}creds/`]),
    ...kvEntries.flatMap(([p]) => [p, `${p}data/`, `${p}metadata/`])];
  const caps = probe.length ? await capabilities(probe) : {};
  state.awsMounts = awsPaths.map((p) => ({ path: p, allowed: allows(caps[`${p}roles/`]) || allows(caps[`${p}creds/`]) }));
  state.kvMounts = kvEntries.map(([p, m]) => ({
    path: p,
    version: m.type === "kv-v2" || (m.options && m.options.version === "2") ? 2 : 1,
    allowed: allows(caps[p]) || allows(caps[`${p}data/`]) || allows(caps[`${p}metadata/`]),
  }));
}

export function go(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = raw.split("?");
  const parts = pathPart.split("/").filter((p, i) => p !== "" || i === 0).map(decodeURIComponent);
  return { id: parts[0] || "", rest: parts.slice(1), query: new URLSearchParams(queryPart), raw: pathPart };
}

function navigation(current) {
  return h("nav", { class: "nav", "aria-label": "Sections" },
    PAGES.filter((p) => p.show()).map((p) =>
      h("a", { href: `#/${p.id}`, class: p.id === current ? "active" : "", dataset: { page: p.id } }, p.title)));
}

// After a change to the mounts: learn again what the token may reach and redraw the section list only, so the
// page (and the message it just showed) stays as it is.
// A page opened meanwhile waits for that (the KV page chooses among the mounts it finds in the state).
let discovering = null;

async function refresh(current, shown) {
  const learned = discover();
  discovering = learned;
  try {
    await learned;
  } finally {
    if (discovering === learned) discovering = null;
  }
  if (shown !== rendering) return; // another page is shown by now: it drew its own list
  const nav = document.querySelector("#app nav.nav");
  if (nav) nav.replaceWith(navigation(current));
}

function layout(current) {
  const nav = navigation(current);
  const who = state.self
    ? h("span", { class: "who" }, `${state.self.display_name} · ${(state.self.policies || []).join(", ")}`)
    : null;
  const header = h("header", { class: "top" },
    h("a", { class: "brand", href: "#/status" }, "coffer"),
    h("span", { class: "spacer" }),
    who,
    state.self ? button("Sign out", signOut, { class: "small", id: "sign-out" }) : null);
  const main = h("main", { id: "main", class: "main" });
  replace(document.getElementById("app"), header, h("div", { class: "body" }, state.self ? nav : null, main));
  return main;
}

function signOut() {
  session.token = "";
  state.self = null;
  state.caps = {};
  go("#/login");
}

// Each page module exports render(main, route, ctx): ctx has go(), the state, and a way to refresh the nav.
let rendering = 0;
let timers = [];

// Repeat fn every ms milliseconds while the current page is shown.
function every(ms, fn) {
  const id = setInterval(fn, ms);
  timers.push(id);
  return id;
}

export async function render() {
  const mine = ++rendering;
  timers.forEach(clearInterval);
  timers = [];
  const route = parseHash();
  let sealed = false;
  try {
    sealed = (await api("GET", "sys/seal-status", { token: "" })).sealed;
  } catch (_) {
    sealed = false;
  }
  if (sealed && route.id !== "status") {
    go("#/status");
    return;
  }
  if (!sealed && session.token && !state.self) {
    try {
      await discover();
    } catch (exc) {
      session.token = "";
      state.self = null;
      if (exc instanceof ApiError && exc.status !== 403) throw exc;
    }
  }
  if (!sealed && !session.token && route.id !== "login" && route.id !== "status") {
    go("#/login");
    return;
  }
  if (discovering) await discovering.catch(() => {});
  if (mine !== rendering) return;
  const entry = route.id === "login" ? { id: "login", page: login } : PAGES.find((p) => p.id === route.id);
  if (!entry) {
    go(session.token ? "#/status" : "#/login");
    return;
  }
  const main = layout(entry.id);
  const ctx = { go, state, route, every, refresh: () => refresh(entry.id, mine), sealed };
  try {
    await entry.page.render(main, route, ctx);
  } catch (exc) {
    main.append(notice("error", exc.message || String(exc)));
  }
}

window.addEventListener("hashchange", () => render());
window.addEventListener("DOMContentLoaded", () => render());
