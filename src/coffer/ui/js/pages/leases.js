// Leases by prefix (paged with LIST after/limit), renew and revoke each, revoke a whole prefix with progress.
import { allows, api, encodePath, listPage } from "../api.js";
import { button, duration, field, h, notice, replace, table } from "../dom.js";

const PAGE = 100;

export async function render(main, route, ctx) {
  const prefix = route.query.get("prefix") || "";
  const after = route.query.get("after") || "";
  const here = (p, a = "") => `#/leases?prefix=${encodeURIComponent(p)}${a ? `&after=${encodeURIComponent(a)}` : ""}`;
  main.append(h("h1", {}, "Leases"));
  const message = h("div", { class: "messages", id: "leases-message" });

  const input = h("input", { id: "lease-prefix", value: prefix, placeholder: "aws/creds/deploy/" });
  const go = h("form", { class: "row" }, field("Prefix", input), h("button", { type: "submit" }, "Show"));
  go.addEventListener("submit", (event) => {
    event.preventDefault();
    let p = input.value.trim().replace(/^\/+/, "");
    if (p && !p.endsWith("/")) p += "/";
    ctx.go(here(p));
  });
  const crumbs = h("div", { class: "crumbs" }, h("a", { href: here("") }, "all"),
    prefix.split("/").filter(Boolean).map((part, i, all) =>
      [" / ", h("a", { href: here(`${all.slice(0, i + 1).join("/")}/`) }, part)]));
  main.append(go, crumbs, message);

  const page = await listPage(`sys/leases/lookup/${encodePath(prefix)}`, { after, limit: PAGE });
  const folders = page.keys.filter((k) => k.endsWith("/"));
  const ids = page.keys.filter((k) => !k.endsWith("/"));
  const rows = [];
  for (const k of folders) rows.push([h("a", { href: here(prefix + k), class: "folder" }, k), "", "", ""]);
  const timers = [];
  for (const k of ids) {
    const leaseId = prefix + k;
    const entry = { leaseId, ttl: h("span", { class: "ttl", dataset: { lease: leaseId } }, "…"),
      expire: h("span", { class: "expire" }) };
    const actions = h("span", { class: "actions" },
      button("Renew", () => renew(entry), { class: "small" }),
      button("Revoke", () => revoke(leaseId, actions, entry.ttl),
        { class: "small danger", dataset: { revoke: leaseId } }));
    rows.push([h("code", {}, k), entry.ttl, entry.expire, actions]);
    timers.push(entry);
  }
  main.append(rows.length
    ? table(["Lease", "TTL", "Expires", ""], rows, { class: "list", id: "leases-table" })
    : notice("info", prefix ? `No lease under ${prefix}.` : "No lease."));
  main.append(h("div", { class: "pager" },
    after ? h("a", { href: here(prefix), class: "button small" }, "First page") : null,
    page.more ? h("a", { href: here(prefix, page.keys.at(-1)), class: "button small", id: "next-page" }, "Next page")
      : null));
  if (prefix && allows(ctx.state.caps["sys/leases/revoke-prefix/"], "update", "sudo")) main.append(prefixCard());

  // Each lease of the page: its TTL, looked up a few at a time, then counted down.
  const expiries = new Map();
  async function lookUp({ leaseId, ttl, expire }) {
    try {
      const data = (await api("PUT", "sys/leases/lookup", { body: { lease_id: leaseId } })).data;
      expiries.set(leaseId, Date.now() + data.ttl * 1000);
      expire.textContent = data.expire_time ? new Date(data.expire_time).toLocaleString() : "";
      show(leaseId, ttl);
    } catch (exc) {
      ttl.textContent = exc.status === 400 ? "gone" : "?";
    }
  }
  function show(leaseId, ttl) {
    const until = expiries.get(leaseId);
    if (until !== undefined) ttl.textContent = duration((until - Date.now()) / 1000);
  }
  const queue = [...timers];
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (queue.length) await lookUp(queue.shift());
  }));
  ctx.every(1000, () => timers.forEach(({ leaseId, ttl }) => show(leaseId, ttl)));

  // Renewed: the TTL and the expiry shown are the server's new ones.
  async function renew(entry) {
    const { leaseId, ttl } = entry;
    try {
      const answer = await api("PUT", "sys/leases/renew", { body: { lease_id: leaseId } });
      expiries.set(leaseId, Date.now() + answer.lease_duration * 1000);
      show(leaseId, ttl);
      await lookUp(entry);
      replace(message, notice("ok", `Renewed ${leaseId} for ${duration(answer.lease_duration)}.`));
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }

  async function revoke(leaseId, actions, ttl) {
    try {
      await api("PUT", "sys/leases/revoke", { body: { lease_id: leaseId, sync: true } });
      expiries.delete(leaseId);
      ttl.textContent = "revoked";
      replace(actions);
      replace(message, notice("ok", `Revoked ${leaseId}.`));
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }

  function prefixCard() {
    const progress = h("div", { class: "progress", id: "revoke-progress" });
    const start = button(`Revoke every lease under ${prefix}`, async () => {
      if (!window.confirm(`Revoke every lease under ${prefix}? What they stand for is deleted.`)) return;
      start.disabled = true;
      try {
        await revokePrefix(prefix, progress);
      } catch (exc) {
        replace(progress, notice("error", exc.message));
      }
      start.disabled = false;
    }, { class: "danger", id: "revoke-prefix" });
    return h("div", { class: "card" }, h("h2", {}, "Revoke a prefix"),
      h("p", {}, "coffer revokes them in the background, in bounded batches; failures are kept and retried."),
      start, progress);
  }

  async function count(p) {
    return (await api("GET", "sys/leases/count", { query: { prefix: p } })).data.lease_count;
  }

  async function revokePrefix(p, progress) {
    const total = await count(p);
    if (!total) {
      replace(progress, notice("info", `No lease under ${p}.`));
      return;
    }
    const bar = h("div", { class: "bar" }, h("div", { class: "fill" }));
    const words = h("span", { id: "revoke-progress-text" });
    replace(progress, bar, words);
    const update = (left) => {
      const done = total - left;
      words.textContent = `${done} of ${total} revoked`;
      words.dataset.done = String(done);
      bar.firstChild.style.width = `${(done / total) * 100}%`;
    };
    update(total);
    await api("PUT", `sys/leases/revoke-prefix/${encodePath(p)}`, { body: { sync: false } });
    let left = total, still = 0;
    while (left > 0 && still < 20) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = await count(p);
      still = now === left ? still + 1 : 0;
      left = now;
      update(left);
    }
    if (left) {
      progress.append(notice("error", `${left} lease(s) could not be revoked yet; coffer retries them (see `,
        h("a", { href: "#/irrevocable" }, "Irrevocable"), " once the retries run out)."));
    } else {
      words.textContent = `All ${total} revoked.`;
      words.dataset.done = String(total);
    }
  }
}
