// unitctl's dashboard: plain ES module, no framework, no build step.
// Every call sends the token (kept in this tab's sessionStorage) as a bearer
// header; the event stream is read with fetch for the same reason (EventSource
// cannot send headers), so the server never sets a cookie (no CSRF surface).

const ROLES = { read: 0, operate: 1, admin: 2 };
const KEY = "unitctl-token";
const S = { token: sessionStorage.getItem(KEY), who: "", role: "", units: [], states: [],
            machines: [], lastId: "", abort: null, timer: null,
            drafts: {} };  // template -> the instance count being typed (kept across renders)

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function td(label, value, cls = "") {
  return el("td", { "data-label": label, class: cls }, value ?? "");
}

function say(text, isError = false) {
  const out = $("#message");
  out.textContent = text;
  out.className = isError ? "error" : "";
}

function allowed(role) { return (ROLES[S.role] ?? -1) >= ROLES[role]; }

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${S.token}` };
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401) { logout("Your token was refused: sign in again."); }
  return resp;
}

async function getJSON(path) {
  const resp = await api(path);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body?.error?.message || `${resp.status} ${resp.statusText}`);
  return body;
}

// ---------------------------------------------------------------- session
async function signIn(token) {
  S.token = token;
  const me = await getJSON("/unitctl/v1/whoami");
  sessionStorage.setItem(KEY, token);
  S.who = me.who; S.role = me.role;
  $("#who").textContent = `${me.who} (${me.role})`;
  $("#logout").hidden = false;
  $("#login").hidden = true;
  startStream();
  await refresh();
}

function logout(why = "") {
  sessionStorage.removeItem(KEY);
  S.token = null; S.role = ""; S.who = "";
  if (S.abort) S.abort.abort();
  $("#who").textContent = "";
  $("#logout").hidden = true;
  for (const id of ["#overview", "#unit"]) $(id).hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why;
}

// ---------------------------------------------------------------- events
function setLive(on) {
  const live = $("#live");
  live.textContent = on ? "live" : "offline";
  live.classList.toggle("off", !on);
}

function onBlock(block) {
  let id = "", event = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("id:")) id = line.slice(3).trim();
    else if (line.startsWith("event:")) event = line.slice(6).trim();
  }
  if (!event) return;  // a comment (keepalive)
  if (id) S.lastId = id;
  soon();
}

async function readStream(signal) {
  const headers = { Authorization: `Bearer ${S.token}`, Accept: "text/event-stream" };
  if (S.lastId) headers["Last-Event-ID"] = S.lastId;
  const resp = await fetch("/unitctl/v1/events", { headers, signal });
  if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
  setLive(true);
  soon();  // anything missed while offline
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      onBlock(buf.slice(0, cut));
      buf = buf.slice(cut + 2);
    }
  }
}

async function startStream() {
  if (S.abort) S.abort.abort();
  const ctl = new AbortController();
  S.abort = ctl;
  while (S.token && !ctl.signal.aborted) {
    try { await readStream(ctl.signal); } catch (e) { /* reconnect below */ }
    setLive(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function soon() {
  if (S.timer) return;
  S.timer = setTimeout(() => { S.timer = null; refresh(); }, 50);
}

// ---------------------------------------------------------------- data
async function refresh() {
  if (!S.token) return;
  try {
    const [m, u, s] = await Promise.all([getJSON("/unitctl/v1/machines"),
      getJSON("/unitctl/v1/units"), getJSON("/unitctl/v1/states")]);
    S.machines = m.machines; S.units = u.units; S.states = s.states;
    route();
  } catch (e) { say(e.message, true); }
}

function statesOf(name) { return S.states.filter((s) => s.name === name); }

function shortId(id) { return id ? id.slice(0, 8) : ""; }

function isTemplate(name) { return /@\.[^.]+$/.test(name); }

// ---------------------------------------------------------------- actions
async function act(verb, name) {
  if (verb === "destroy" && !window.confirm(`Destroy ${name}?`)) return;
  say(`${verb} ${name}…`);
  const resp = await api(`/unitctl/v1/${verb}`, { method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ units: [name], noBlock: true }) });
  const text = await resp.text();
  if (!resp.ok) {
    let msg = text;
    try { msg = JSON.parse(text).error.message; } catch (e) { /* plain text */ }
    say(`${verb} ${name}: ${msg}`, true);
    return;
  }
  const lines = text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const last = lines[lines.length - 1] || {};
  const words = lines.map((l) => l.out || l.err || l.error).filter(Boolean);
  say(words.join(" · ") || `${verb} ${name}: done`, Boolean(last.exit));
  soon();
}

async function scale(template, count) {
  say(`scale ${template} to ${count}…`);
  const resp = await api("/unitctl/v1/scale", { method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ template, instances: count }) });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) { say(`scale: ${body?.error?.message || resp.status}`, true); return; }
  delete S.drafts[template];
  say(`scale ${template}: started ${body.started.join(", ") || "none"}; ` +
      `stopped ${body.stopped.join(", ") || "none"}`);
  soon();
}

function actionButtons(u) {
  if (isTemplate(u.name) || !allowed("operate")) return [];
  const buttons = ["start", "stop", "restart"].map((verb) =>
    el("button", { type: "button", "data-action": verb, "data-unit": u.name,
                   onclick: () => act(verb, u.name) }, verb));
  if (allowed("admin")) {
    buttons.push(el("button", { type: "button", class: "danger", "data-action": "destroy",
      "data-unit": u.name, onclick: () => act("destroy", u.name) }, "destroy"));
  }
  return buttons;
}

// ---------------------------------------------------------------- views
function machineRow(m) {
  const placed = S.units.filter((u) => u.target === m.id).length;
  const known = new Set(["id", "publicIP", "metadata", "version"]);
  const extra = Object.entries(m).filter(([k]) => !known.has(k))
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  const meta = Object.entries(m.metadata || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return el("tr", { "data-machine": m.id },
    td("Machine", el("code", { title: m.id }, shortId(m.id))), td("Address", m.publicIP),
    td("Metadata", [meta, ...extra.map((x) => el("div", { class: "mono" }, x))]),
    td("Units", String(placed)), td("State", `up · ${m.version || ""}`, "active-active"));
}

function unitRow(u) {
  const st = statesOf(u.name);
  const here = st.find((s) => s.machine === u.target) || st[0];
  const active = st.length > 1 ? st.map((s) => `${shortId(s.machine)}: ${s.active}`).join(", ")
    : here ? `${here.active}/${here.sub}` : "";
  const health = st.map((s) => s.health).filter(Boolean).join(", ");
  const machine = u.global ? `global (${st.length})` : shortId(u.target);
  return el("tr", { "data-unit": u.name },
    td("Unit", el("a", { href: `#/unit/${encodeURIComponent(u.name)}` }, u.name)),
    td("Desired", u.desired, `c-desired state-${u.desired}`),
    td("Current", u.state ?? "", `c-current state-${u.state}`),
    td("Machine", machine, "c-machine"),
    td("Active", active, `c-active active-${here ? here.active : ""}`),
    td("Health", health, "c-health"),
    td("Why unplaced", u.reason || (here && here.error) || "", "c-reason"),
    td("Actions", el("div", { class: "actions" }, actionButtons(u)), "act"));
}

function templateBox(t) {
  const re = new RegExp(`^${t.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("@\\.", "@(\\d+)\\.")}$`);
  const running = S.units.filter((u) => re.test(u.name) && u.desired !== "inactive").length;
  const input = el("input", { type: "number", min: "0", max: "1000",
                              value: S.drafts[t.name] ?? String(running),
                              "data-scale-input": t.name, "aria-label": `instances of ${t.name}`,
                              oninput: (ev) => { S.drafts[t.name] = ev.target.value; } });
  const controls = allowed("operate") ? [input, el("button", { type: "button",
    "data-action": "scale", "data-unit": t.name,
    onclick: () => scale(t.name, Number(input.value)) }, "Scale")] : [];
  return el("div", { class: "template", "data-template": t.name },
    el("strong", {}, t.name), el("span", {}, `${running} instance(s) not inactive`), controls);
}

function renderOverview() {
  $("#machine-count").textContent = `(${S.machines.length})`;
  $("#unit-count").textContent = `(${S.units.length})`;
  $("#machines tbody").replaceChildren(...S.machines.map(machineRow));
  $("#units tbody").replaceChildren(...S.units.map(unitRow));
  $("#units th.act").hidden = !allowed("operate");
  const templates = S.units.filter((u) => isTemplate(u.name));
  $("#templates").replaceChildren(...(templates.length ? [el("h2", {}, "Templates")] : []),
                                  ...templates.map(templateBox));
}

async function loadUnitDetails(name) {
  const enc = encodeURIComponent(name);
  const [body, why] = await Promise.all([getJSON(`/unitctl/v1/units/${enc}`).catch((e) => ({ text: e.message })),
    getJSON(`/unitctl/v1/units/${enc}/explain`).catch((e) => ({ error: e.message }))]);
  $("#unit-body").textContent = body.text || "";
  $("#unit-explain").textContent = JSON.stringify(why, null, 2);
}

async function loadJournal(name) {
  const resp = await api(`/unitctl/v1/units/${encodeURIComponent(name)}/journal?lines=30`);
  const text = await resp.text();
  if (!resp.ok) {
    let msg = text;
    try { msg = JSON.parse(text).error.message; } catch (e) { /* plain */ }
    $("#unit-journal").textContent = msg;
    return;
  }
  const lines = text.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
  $("#unit-journal").textContent = lines.map((l) => l.stdout ?? l.stderr ?? l.out ?? l.err ?? "")
    .join("");
}

function renderUnit(name, fresh) {
  const u = S.units.find((x) => x.name === name) || { name, desired: "", state: "" };
  $("#unit-name").textContent = name;
  $("#unit-actions").replaceChildren(...actionButtons(u));
  $("#unit-states tbody").replaceChildren(...statesOf(name).map((s) => el("tr", {},
    td("Machine", el("code", { title: s.machine }, shortId(s.machine))), td("Load", s.load),
    td("Active", s.active, `active-${s.active}`), td("Sub", s.sub), td("Health", s.health || ""),
    td("Error", s.error || "", "error"))));
  if (fresh) {
    $("#journal-refresh").onclick = () => loadJournal(name);
    loadUnitDetails(name);
    loadJournal(name);
  }
}

let shown = "";
function route() {
  if (!S.token) return;
  const m = location.hash.match(/^#\/unit\/(.+)$/);
  $("#overview").hidden = Boolean(m);
  $("#unit").hidden = !m;
  if (m) {
    const name = decodeURIComponent(m[1]);
    renderUnit(name, shown !== name);
    shown = name;
  } else {
    shown = "";
    renderOverview();
  }
}

// ---------------------------------------------------------------- start
$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { await signIn($("#token").value.trim()); } catch (e) {
    logout(`Sign-in failed: ${e.message}`);
  }
});
$("#logout").addEventListener("click", () => logout());
window.addEventListener("hashchange", route);
if (S.token) signIn(S.token).catch((e) => logout(`Sign-in failed: ${e.message}`));
else logout();
