// AWS roles (list, view, create and edit of each credential type, the policy JSON checked as you type) and issuing
// credentials.
import { api, encodePath, listPage } from "../api.js";
import { button, copyButton, duration, field, h, notice, replace, table } from "../dom.js";
import { editor, jsonProblem, lineOf } from "../editor.js";

const segment = (mount) => encodeURIComponent(mount.replace(/\/$/, ""));

// The fields of the role form each credential type takes (the engine refuses a role with another type's field).
const TYPE_FIELDS = {
  iam_user: ["policy_document", "policy_arns", "iam_groups", "user_path"],
  assumed_role: ["role_arns", "policy_document", "policy_arns", "iam_groups", "default_sts_ttl", "max_sts_ttl"],
  federation_token: ["policy_document", "policy_arns", "iam_groups", "default_sts_ttl", "max_sts_ttl"],
  session_token: ["default_sts_ttl", "max_sts_ttl"],
};
const STS_TTLS = ["default_sts_ttl", "max_sts_ttl"];
const list = (values) => (values || []).join(", ") || "—";

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
  const takes = TYPE_FIELDS[role.credential_type] || [];
  const rows = [["Credential type", role.credential_type]];
  if (takes.includes("role_arns")) rows.push(["Role ARNs", list(role.role_arns)]);
  if (takes.includes("policy_arns")) {
    rows.push(["Policy ARNs", list(role.policy_arns)], ["IAM groups", list(role.iam_groups)]);
  }
  if (takes.includes("user_path")) {
    rows.push(["User path", role.user_path || "/"], ["Permissions boundary", role.permissions_boundary_arn || "—"]);
  }
  if (takes.includes("default_sts_ttl")) {
    rows.push(["Default STS TTL", role.default_sts_ttl ? duration(role.default_sts_ttl) : "1h (the default)"],
      ["Maximum STS TTL", role.max_sts_ttl ? duration(role.max_sts_ttl) : "—"]);
  }
  main.append(h("div", { class: "card" }, table(["", ""], rows, { class: "kv", id: "role-table" }),
    policy ? h("pre", { class: "code", id: "role-policy" }, policy) : null));
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
  const current = role ? role.credential_type : "iam_user";
  const type = h("select", { id: "role-type" },
    Object.keys(TYPE_FIELDS).map((t) => h("option", { value: t, selected: t === current }, t)));
  const roleArns = h("input", { id: "role-role-arns", value: role ? (role.role_arns || []).join(",") : "",
    placeholder: "arn:aws:iam::123456789012:role/deploy" });
  const arns = h("input", { id: "role-policy-arns", value: role ? (role.policy_arns || []).join(",") : "",
    placeholder: "arn:aws:iam::aws:policy/ReadOnlyAccess" });
  const ttls = Object.fromEntries(STS_TTLS.map((key) => [key, h("input", {
    id: `role-${key.replaceAll("_", "-")}`, value: role && role[key] ? `${role[key]}s` : "", placeholder: "1h" })]));
  const groups = h("input", { id: "role-groups", value: role ? (role.iam_groups || []).join(",") : "" });
  const userPath = h("input", { id: "role-user-path", value: role ? role.user_path || "" : "", placeholder: "/" });
  const initial = role && role.policy_document ? JSON.stringify(JSON.parse(role.policy_document), null, 2)
    : name ? "" : JSON.stringify({ Version: "2012-10-17", Statement: [
      { Effect: "Allow", Action: ["iam:GetUser"], Resource: "*" }] }, null, 2);
  const save = h("button", { type: "submit", class: "primary", id: "role-save" }, name ? "Save role" : "Create role");
  const doc = editor({ id: "role-policy-document", value: initial, rows: 12, onInput: check });

  function check(text) {
    const problems = takes().includes("policy_document") ? policyProblems(text) : [];
    if (problems.length) doc.problem(problems.map((p) => p.message).join("; "), problems[0].line);
    else doc.ok(text.trim() ? "The policy document looks valid." : "");
    save.disabled = problems.length > 0;
  }

  const inputs = { role_arns: roleArns, policy_document: doc, policy_arns: arns, iam_groups: groups,
    user_path: userPath, ...ttls };
  const fields = {
    role_arns: field("Role ARNs", roleArns, "Comma-separated ARNs of the IAM roles it may assume."),
    policy_document: field("Policy document (JSON)", doc.element,
      "Checked as you type; AWS checks it again when credentials are made."),
    policy_arns: field("Policy ARNs", arns, "Comma-separated managed policy ARNs."),
    iam_groups: field("IAM groups", groups, "Comma-separated group names."),
    user_path: field("User path", userPath),
    default_sts_ttl: field("Default STS TTL", ttls.default_sts_ttl, "At least 15m; empty for 1h."),
    max_sts_ttl: field("Maximum STS TTL", ttls.max_sts_ttl, "Empty for no limit but AWS's."),
  };
  const takes = () => TYPE_FIELDS[type.value];
  function showFields() {
    for (const [key, element] of Object.entries(fields)) element.hidden = !takes().includes(key);
    check(doc.value);
  }
  type.addEventListener("change", showFields);

  const form = h("form", { class: "card", id: "role-form" }, h("h2", {}, name ? "Edit the role" : "New role"),
    field("Name", nameInput), field("Credential type", type), Object.values(fields),
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
    // The fields of the chosen type; another type's fields are emptied (a role whose type changed keeps none).
    const body = { credential_type: type.value };
    for (const [key, input] of Object.entries(inputs)) {
      const value = takes().includes(key) ? input.value.trim() : "";
      body[key] = STS_TTLS.includes(key) && !value ? 0 : value;
    }
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

  showFields();
  main.append(form, message);
}

async function credsView(main, ctx, mount, name) {
  main.append(h("h1", {}, `Credentials for ${name}`),
    h("p", {}, "An iam_user role's credentials are a new IAM user with an access key, deleted when the lease is ",
      "revoked or expires. The STS types' credentials (with a session token) last as long as AWS made them: ",
      "revoking their lease only forgets it, since AWS cannot take a session back."));
  const message = h("div", { class: "messages" });
  const panel = h("div", { id: "creds" });
  // The role, when the token may read it: a role with several role ARNs needs one chosen.
  const role = await api("GET", `${mount}roles/${encodePath(name)}`).then((r) => r.data, () => null);
  const arns = (role && role.role_arns) || [];
  const roleArn = arns.length > 1 ? h("select", { id: "issue-role-arn" }, arns.map((a) => h("option", { value: a }, a)))
    : null;
  const ttl = h("input", { id: "issue-ttl", placeholder: "the role's default", size: 12 });
  const issue = button("Issue credentials", async () => {
    issue.disabled = true;
    replace(message);
    try {
      const query = { ttl: ttl.value.trim(), role_arn: roleArn ? roleArn.value : "" };
      show(await api("GET", `${mount}creds/${encodePath(name)}`, { query }));
    } catch (exc) {
      replace(message, notice("error", exc.message));
    } finally {
      issue.disabled = false;
    }
  }, { class: "primary", id: "issue-button" });
  main.append(h("div", { class: "row" }, roleArn ? field("Role ARN", roleArn) : null, field("TTL", ttl), issue,
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
    const sts = !!data.security_token;
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
        replace(state, notice("info", sts ? "The lease expired, and with it the STS credentials."
          : "The lease expired: coffer revokes it and deletes the IAM user."));
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
        replace(state, notice("ok", sts ? "Revoked: the lease is forgotten (the STS credentials work until they expire)."
          : "Revoked: the IAM user and its access key were deleted."));
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
