// Every action of the UI goes through coffer's HTTP API with the user's token: ACLs apply as to any client.

const TOKEN_KEY = "coffer.token";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, errors, method, path) {
    super(readableErrors(status, errors, method, path));
    this.status = status;
    this.errors = errors;
    this.method = method;
    this.path = path;
  }

  get permissionDenied() { return this.status === 403; }
  get sealed() { return this.status === 503 && this.errors.some((e) => /sealed/i.test(e)); }
}

// Vault wraps some messages as "1 error occurred:\n\t* permission denied\n\n": keep the words.
function clean(message) {
  return String(message).replace(/^\d+ errors? occurred:\s*/, "").replace(/^\s*\*\s*/gm, "").trim();
}

const VERB = { GET: "read", LIST: "list", PUT: "write", POST: "write", DELETE: "delete" };

function readableErrors(status, errors, method, path) {
  const words = (errors || []).map(clean).filter(Boolean);
  if (status === 403) {
    return `Permission denied: your token's policies do not allow you to ${VERB[method] || method} ${path}.`;
  }
  if (status === 503 && words.some((e) => /sealed/i.test(e))) return "The server is sealed: unseal it first.";
  if (status === 404 && !words.length) return `Nothing found at ${path}.`;
  if (!words.length) return `The server answered ${status} for ${method} ${path}.`;
  return words.join("; ");
}

// api("GET", "sys/mounts"), api("POST", "aws/roles/x", {body: {...}}), api("GET", "kv/", {list: true}).
export async function api(method, path, { body, query, token, list } = {}) {
  const url = new URL(`/v1/${path}`, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  if (list) url.searchParams.set("list", "true");
  const headers = {};
  const used = token === undefined ? session.token : token;
  if (used) headers["X-Vault-Token"] = used;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (exc) {
    throw new ApiError(0, [`cannot reach the server (${exc.message})`], method, path);
  }
  const text = await response.text();
  let json = null;
  if (text && (response.headers.get("content-type") || "").includes("json")) {
    try { json = JSON.parse(text); } catch (_) { json = null; }
  }
  if (!response.ok) {
    throw new ApiError(response.status, json && Array.isArray(json.errors) ? json.errors : (text ? [text] : []),
      list ? "LIST" : method, path);
  }
  return json;
}

// One page of a LIST: {keys, more}; an empty folder (404) is an empty page.
export async function listPage(path, { after = "", limit = 100 } = {}) {
  try {
    const answer = await api("GET", path, { list: true, query: { after, limit: limit + 1 } });
    const keys = (answer && answer.data && answer.data.keys) || [];
    return { keys: keys.slice(0, limit), more: keys.length > limit };
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) return { keys: [], more: false };
    throw exc;
  }
}

// The calling token's capabilities on each of paths: {path: ["read", ...]}.
export async function capabilities(paths) {
  try {
    const answer = await api("POST", "sys/capabilities-self", { body: { paths } });
    const data = (answer && answer.data) || {};
    const result = {};
    for (const p of paths) result[p] = data[p] || ["deny"];
    return result;
  } catch (exc) {
    return Object.fromEntries(paths.map((p) => [p, ["deny"]]));
  }
}

export function allows(caps, ...wanted) {
  if (!caps) return false;
  if (caps.includes("root")) return true;
  if (caps.includes("deny")) return false;
  return wanted.length ? wanted.some((w) => caps.includes(w)) : caps.length > 0;
}

// Path segments for URLs: each one encoded, the slashes kept.
export function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}
