// AWS roles (list, view, create and edit with the policy JSON checked as you type) and issuing credentials.
import { api, encodePath, listPage } from "../api.js";
import { button, copyButton, duration, field, h, notice, replace, table } from "../dom.js";
import { editor, jsonProblem, lineOf } from "../editor.js";

const segment = (mount) => encodeURIComponent(mount.replace(/\/$/, ""));

export async function render(main, route, ctx) {
  const mounts = ctx.state.awsMounts.filter((m) => m.allowed);
  const [mountName, view, name] = route.rest;
  if (!mountName) {
    if (mounts.length === 1) {
      ctx.go(`#/aws/${segment(mounts[0].path)}`);
      return;
    }
    main.append(h("h1", {}, "AWS"), mounts.length
      ? h("ul", { class: "links" }, mounts.map((m) => h("li", {}, h("a", { href: `#/aws/${segment(m.path)}` }, m.path))))
      : notice("info", "No AWS secrets engine is mounted where your token may reach."));
    return;
  }
  const mount = `${mountName}/`;
  if (view === "role" && name) return roleView(main, ctx, mount, name);
  if (view === "new") return roleEditor(main, ctx, mount, null);
  if (view === "creds" && name) return credsView(main, ctx, mount, name);
  return roleList(main, ctx, mount, route);
}

async function roleList(main, ctx, mount, route) {
  const after = route.query.get("after") || "";
  main.append(h("h1", {}, `AWS roles at ${mount}`));
  const page = await listPage(`${mount}roles`, { after, limit: 100 });
  const rows = page.keys.map((role) => [
    h("a", { href: `#/aws/${segment(mount)}/role/${encodeURIComponent(role)}`, class: "role-link" }, role),
    h("a", { href: `#/aws/${segment(mount)}/creds/${encodeURIComponent(role)}`, class: "button small" },
      "Issue credentials"),
  ]);
  main.append(
    h("div", { class: "row" }, h("a", { href: `#/aws/${segment(mount)}/new`, class: "button primary", id: "new-role" },
      "New role")),
    rows.length ? table(["Role", ""], rows, { class: "list", id: "roles-table" })
      : notice("info", after ? "No more roles." : "No role yet: create one."),
    h("div", { class: "pager" },
      after ? h("a", { href: `#/aws/${segment(mount)}`, class: "button small" }, "First page") : null,
      page.more ? h("a", { href: `#/aws/${segment(mount)}?after=${encodeURIComponent(page.keys.at(-1))}`,
        class: "button small", id: "next-page" }, "Next page") : null));
}

async function roleView(main, ctx, mount, name) {
  const role = (await api("GET", `${mount}roles/${encodePath(name)}`)).data;
  const base = `#/aws/${segment(mount)}`;
  main.append(h("h1", {}, `Role ${name}`),
    h("div", { class: "row" },
      h("a", { href: `${base}/creds/${encodeURIComponent(name)}`, class: "button primary", id: "issue-link" },
        "Issue credentials"),
      h("a", { href: base, class: "button" }, "All roles")));
  const policy = role.policy_document ? JSON.stringify(JSON.parse(role.policy_document), null, 2) : "";
  main.append(h("div", { class: "card" }, table(["", ""], [
    ["Credential type", role.credential_type],
    ["Policy ARNs", (role.policy_arns || []).join(", ") || "—"],
    ["IAM groups", (role.iam_groups || []).join(", ") || "—"],
    ["User path", role.user_path || "/"],
    ["Permissions boundary", role.permissions_boundary_arn || "—"],
  ], { class: "kv" }), policy ? h("pre", { class: "code", id: "role-policy" }, policy) : null));
  await roleEditor(main, ctx, mount, name, role);
}

// Problems of an IAM policy document: [{message, line}] (empty when it looks right).
export function policyProblems(text) {
  if (!text.trim()) return [];
  const parsed = jsonProblem(text);
  if (parsed.error) return [{ message: `not valid JSON: ${parsed.error}`, line: parsed.line }];
  const doc = parsed.value;
  const at = (key, n = 0) => lineOfKey(text, key, n);
  const problems = [];
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return [{ message: "the policy must be a JSON object with a Statement", line: 1 }];
  }
  for (const key of Object.keys(doc)) {
    if (!["Version", "Id", "Statement"].includes(key)) {
      problems.push({ message: `unknown key "${key}" (a policy has Version, Id and Statement)`, line: at(key) });
    }
  }
  if (doc.Version !== undefined && !["2012-10-17", "2008-10-17"].includes(doc.Version)) {
    problems.push({ message: `Version must be "2012-10-17", not ${JSON.stringify(doc.Version)}`, line: at("Version") });
  }
  if (doc.Statement === undefined) {
    problems.push({ message: "missing Statement (a list of {Effect, Action, Resource})", line: 1 });
    return problems;
  }
  const statements = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  const count = { Effect: 0, Action: 0, NotAction: 0, Resource: 0, NotResource: 0 };
  statements.forEach((st, i) => {
    const where = `statement ${i + 1}`;
    if (typeof st !== "object" || st === null || Array.isArray(st)) {
      problems.push({ message: `${where} must be an object`, line: at("Statement") });
      return;
    }
    const lineOf = (key) => (key in st ? at(key, count[key] ?? 0) : at("Statement"));
    if (!["Allow", "Deny"].includes(st.Effect)) {
      problems.push({ message: `${where}: Effect must be "Allow" or "Deny"`, line: lineOf("Effect") });
    }
    if (!("Action" in st) && !("NotAction" in st)) {
      problems.push({ message: `${where}: needs an Action (or NotAction)`, line: lineOf("Effect") });
    }
    for (const key of ["Action", "NotAction"]) {
      if (!(key in st)) continue;
      const actions = Array.isArray(st[key]) ? st[key] : [st[key]];
      const bad = actions.find((a) => typeof a !== "string" || !(a === "*" || /^[\w-]+:[\w*?-]+$/.test(a)));
      if (bad !== undefined) {
        problems.push({ message: `${where}: ${key} ${JSON.stringify(bad)} is not service:Action (e.g. "iam:GetUser")`,
          line: lineOf(key) });
      }
    }
    if (!("Resource" in st) && !("NotResource" in st)) {
      problems.push({ message: `${where}: needs a Resource (or NotResource), e.g. "*"`, line: lineOf("Effect") });
    }
    for (const key of Object.keys(count)) if (key in st) count[key] += 1;
  });
  return problems;
}

function lineOfKey(text, key, occurrence = 0) {
  const pattern = new RegExp(`"${key}"\\s*:`, "g");
  let match, n = 0;
  while ((match = pattern.exec(text))) {
    if (n++ === occurrence) return text.slice(0, match.index).split("\n").length;
  }
  return 0;
}

async function roleEditor(main, ctx, mount, name, role = null) {
  const message = h("div", { class: "messages" });
  const nameInput = h("input", { id: "role-name", value: name || "", placeholder: "deploy", disabled: !!name });
  const type = h("select", { id: "role-type" }, h("option", { value: "iam_user" }, "iam_user"));
  const arns = h("input", { id: "role-policy-arns", value: role ? (role.policy_arns || []).join(",") : "",
    placeholder: "arn:aws:iam::aws:policy/ReadOnlyAccess" });
  const groups = h("input", { id: "role-groups", value: role ? (role.iam_groups || []).join(",") : "" });
  const userPath = h("input", { id: "role-user-path", value: role ? role.user_path || "" : "", placeholder: "/" });
  const initial = role && role.policy_document ? JSON.stringify(JSON.parse(role.policy_document), null, 2)
    : name ? "" : JSON.stringify({ Version: "2012-10-17", Statement: [
      { Effect: "Allow", Action: ["iam:GetUser"], Resource: "*" }] }, null, 2);
  const save = h("button", { type: "submit", class: "primary", id: "role-save" }, name ? "Save role" : "Create role");
  const doc = editor({ id: "role-policy-document", value: initial, rows: 12, onInput: check });

  function check(text) {
    const problems = policyProblems(text);
    if (problems.length) doc.problem(problems.map((p) => p.message).join("; "), problems[0].line);
    else doc.ok(text.trim() ? "The policy document looks valid." : "");
    save.disabled = problems.length > 0;
  }

  const form = h("form", { class: "card", id: "role-form" }, h("h2", {}, name ? "Edit the role" : "New role"),
    field("Name", nameInput), field("Credential type", type),
    field("Policy document (JSON)", doc.element, "Checked as you type; AWS checks it again when a key is made."),
    field("Policy ARNs", arns, "Comma-separated managed policy ARNs."),
    field("IAM groups", groups, "Comma-separated group names."),
    field("User path", userPath),
    h("div", { class: "row" }, save,
      name ? button("Delete role", remove, { class: "danger", id: "role-delete" }) : null));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(message);
    const target = name || nameInput.value.trim();
    if (!target) {
      replace(message, notice("error", "Give the role a name."));
      return;
    }
    const body = { credential_type: type.value, policy_document: doc.value.trim(),
      policy_arns: arns.value.trim(), iam_groups: groups.value.trim(), user_path: userPath.value.trim() };
    try {
      const answer = await api("POST", `${mount}roles/${encodePath(target)}`, { body });
      const warnings = (answer && answer.warnings) || [];
      ctx.go(`#/aws/${segment(mount)}/role/${encodeURIComponent(target)}`);
      if (warnings.length) main.append(notice("info", warnings.join(" ")));
    } catch (exc) {
      replace(message, notice("error", exc.message));
      const line = lineOf(exc.message);
      if (line) doc.problem(exc.message, line);
    }
  });

  async function remove() {
    if (!window.confirm(`Delete the role ${name}? Credentials already issued keep their leases.`)) return;
    try {
      await api("DELETE", `${mount}roles/${encodePath(name)}`);
      ctx.go(`#/aws/${segment(mount)}`);
    } catch (exc) {
      replace(message, notice("error", exc.message));
    }
  }

  if (initial) check(initial);
  main.append(form, message);
}

async function credsView(main, ctx, mount, name) {
  main.append(h("h1", {}, `Credentials for ${name}`),
    h("p", {}, "Each issue creates a new IAM user with the role's policy and an access key, leased: revoking the ",
      "lease (or letting it expire) deletes the user."));
  const message = h("div", { class: "messages" });
  const panel = h("div", { id: "creds" });
  const issue = button("Issue credentials", async () => {
    issue.disabled = true;
    replace(message);
    try {
      show(await api("GET", `${mount}creds/${encodePath(name)}`));
    } catch (exc) {
      replace(message, notice("error", exc.message));
    } finally {
      issue.disabled = false;
    }
  }, { class: "primary", id: "issue-button" });
  main.append(h("div", { class: "row" }, issue,
    h("a", { href: `#/aws/${segment(mount)}/role/${encodeURIComponent(name)}`, class: "button" }, "The role")),
  message, panel);

  function secretRow(label, id, value) {
    const shown = h("code", { id, class: "secret masked", dataset: { value } }, "•".repeat(20));
    let visible = false;
    const toggle = button("Show", () => {
      visible = !visible;
      shown.textContent = visible ? value : "•".repeat(20);
      shown.classList.toggle("masked", !visible);
      toggle.textContent = visible ? "Hide" : "Show";
    }, { class: "small", id: `${id}-toggle` });
    return [label, h("span", { class: "value" }, shown, toggle, copyButton(value))];
  }

  function show(answer) {
    const data = answer.data || {};
    const leaseId = answer.lease_id;
    let expires = Date.now() + answer.lease_duration * 1000;
    const total = Math.max(answer.lease_duration, 1);
    const countdown = h("span", { id: "lease-countdown", class: "countdown" });
    const bar = h("div", { class: "bar" }, h("div", { class: "fill" }));
    const state = h("div", { id: "lease-state", class: "messages" });
    let over = false;

    function tick() {
      if (over) return;
      const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
      countdown.dataset.remaining = String(left);
      countdown.textContent = left ? `expires in ${duration(left)}` : "expired";
      bar.firstChild.style.width = `${Math.min(100, (left / total) * 100)}%`;
      if (!left) {
        over = true;
        replace(state, notice("info", "The lease expired: coffer revokes it and deletes the IAM user."));
      }
    }

    const rows = [
      ["Access key", h("span", { class: "value" }, h("code", { id: "access-key" }, data.access_key),
        copyButton(data.access_key))],
      secretRow("Secret key", "secret-key", data.secret_key),
    ];
    if (data.security_token) rows.push(secretRow("Session token", "session-token", data.security_token));
    rows.push(["Lease", h("span", { class: "value" }, h("code", { id: "lease-id" }, leaseId), copyButton(leaseId))]);
    rows.push(["Lease time", h("span", { class: "value" }, countdown, bar)]);
    const renew = button("Renew", async () => {
      try {
        const renewed = await api("PUT", "sys/leases/renew", { body: { lease_id: leaseId } });
        expires = Date.now() + renewed.lease_duration * 1000;
        replace(state, notice("ok", `Renewed for ${duration(renewed.lease_duration)}.`));
        tick();
      } catch (exc) {
        replace(state, notice("error", exc.message));
      }
    }, { id: "renew-button", disabled: !answer.renewable });
    const revoke = button("Revoke now", async () => {
      revoke.disabled = true;
      try {
        await api("PUT", "sys/leases/revoke", { body: { lease_id: leaseId, sync: true } });
        over = true;
        countdown.textContent = "revoked";
        countdown.dataset.remaining = "0";
        bar.firstChild.style.width = "0%";
        renew.disabled = true;
        replace(state, notice("ok", "Revoked: the IAM user and its access key were deleted."));
      } catch (exc) {
        revoke.disabled = false;
        replace(state, notice("error", exc.message));
      }
    }, { class: "danger", id: "revoke-button" });
    replace(panel, h("div", { class: "card", id: "creds-card" }, table(["", ""], rows, { class: "kv" }),
      answer.warnings && answer.warnings.length ? notice("info", answer.warnings.join(" ")) : null,
      h("div", { class: "row" }, renew, revoke), state));
    tick();
    ctx.every(1000, tick);
  }
}
