// Leases whose revocation kept failing: each one's error, a retry, and force-revoke (forget it).
import { allows, api, encodePath } from "../api.js";
import { button, h, notice, replace, table } from "../dom.js";

export async function render(main, route, ctx) {
  main.append(h("h1", {}, "Irrevocable leases"),
    h("p", {}, "Revocations that kept failing past the retry window. coffer still retries them hourly. Force-revoke ",
      "forgets a lease without revoking it at the engine: clean up what it stands for by hand."));
  const message = h("div", { class: "messages" });
  const list = h("div", { id: "irrevocable-list" });
  main.append(message, list);
  const canForce = allows(ctx.state.caps["sys/leases/revoke-force/"], "update", "sudo");

  async function show() {
    const data = (await api("GET", "sys/leases", { query: { type: "irrevocable", limit: 1000 } })).data;
    const rows = data.leases.map((l) => [
      h("code", {}, l.lease_id), h("span", { class: "error-text" }, l.error), String(l.attempts),
      new Date(l.first_failure).toLocaleString(), new Date(l.next_attempt).toLocaleString(),
      h("span", { class: "actions" },
        button("Retry", () => retry(l.lease_id), { class: "small" }),
        canForce ? button("Force-revoke", () => force(l.lease_id), { class: "small danger",
          dataset: { force: l.lease_id } }) : null),
    ]);
    replace(list, rows.length ? table(["Lease", "Error", "Attempts", "Failing since", "Next attempt", ""], rows,
      { class: "list", id: "irrevocable-table" }) : notice("ok", "No irrevocable lease."));
  }

  async function retry(leaseId) {
    try {
      await api("PUT", "sys/leases/revoke", { body: { lease_id: leaseId, sync: true } });
      replace(message, notice("ok", `Revoked ${leaseId}.`));
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
    await show();
  }

  async function force(leaseId) {
    if (!window.confirm(`Forget ${leaseId} without revoking it at the engine?`)) return;
    try {
      await api("PUT", `sys/leases/revoke-force/${encodePath(leaseId)}`);
      replace(message, notice("ok", `Forgot ${leaseId}; clean up what it stands for by hand.`));
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
    await show();
  }

  await show();
}
