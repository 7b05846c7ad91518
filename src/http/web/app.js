// The observer: talks only to the daemon's HTTP API, with the token from the URL's fragment
// (#token=…), which the browser never sends to any server. Live through /v1/events (read as a
// stream, since EventSource cannot send a token), plus one status read a second for the charts.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token");
const $ = (id) => document.getElementById(id);
const HISTORY = 300; // seconds of chart history
const MAX_EVENTS = 500;
const TREE_EVENTS = new Set(["crash", "restart", "backoff", "start_failed", "escalate",
  "gave_up", "replay", "daemon_start"]);
// What a tree node shows as its last event: its supervision, not its replays.
const SUPERVISION = new Set(["crash", "restart", "backoff", "start_failed", "escalate",
  "gave_up"]);

const state = {
  events: [], lastEvent: {}, throughput: [], restarts: [], lastCompleted: null,
  lastAt: null, treeTimer: null, stopped: false, leader: true, drawnTree: null,
};

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  const value = text && response.headers.get("content-type")?.startsWith("application/json")
    ? JSON.parse(text) : text;
  return { status: response.status, ok: response.ok, value };
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    // Through the CSSOM: the page's Content-Security-Policy allows no inline style attribute.
    else if (key === "width") node.style.width = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function refuse() {
  state.stopped = true;
  $("main").hidden = true;
  $("live").textContent = "not live";
  $("role").textContent = "";
  const auth = $("auth");
  auth.hidden = false;
  auth.textContent = token
    ? "The token in this page's address is not this daemon's: nothing is shown. Open the " +
      "address that `primed web` prints (it carries the token from http.token in the data dir)."
    : "This page needs the daemon's token, and its address carries none: nothing is shown. " +
      "Open the address that `primed web` prints (it carries the token from http.token in " +
      "the data dir).";
}

function guard(promise) {
  return promise.catch((e) => {
    if (e instanceof Unauthorized) refuse();
    else showError(e);
  });
}

function showError(e) {
  $("live").textContent = "disconnected: " + e.message;
  $("live").classList.remove("on");
}

// The tree ------------------------------------------------------------------------------

function killButton(name) {
  return el("button", {
    class: "danger", type: "button", "aria-label": "kill " + name, "data-kill": name,
    onclick: () => kill(name),
  }, "kill");
}

async function kill(name) {
  if (!window.confirm(`Kill ${name}? Its supervisor restarts it.`)) return;
  const reply = await api("POST", `/v1/actors/${encodeURIComponent(name)}/kill`);
  if (!reply.ok) window.alert(reply.value.error || `kill ${name}: ${reply.status}`);
}

function treeNode(node) {
  const last = state.lastEvent[node.name];
  const meta = [];
  if (node.kind === "supervisor") {
    meta.push(`${node.strategy}, at most ${node.intensity.max_restarts} restarts in ` +
      `${node.intensity.period_ms / 1000}s`);
  }
  meta.push(`restarts ${node.restarts}`);
  if (node.job) meta.push(`job ${node.job}`);
  if (node.queued !== undefined) meta.push(`queued ${node.queued}`);
  const row = el("div", { class: "node" },
    el("span", { class: "name" }, node.name),
    el("span", { class: node.running ? "state" : "state-down" },
      node.running ? "running" : "restarting"),
    el("span", { class: "meta" }, meta.join(" · ")),
    last ? el("span", { class: "last " + last.event },
      `${last.event} ${last.at.slice(11, 19)}`) : null,
    node.kind === "worker" || node.name === "area_server" ? killButton(node.name) : null);
  const item = el("li", { "data-actor": node.name, "data-restarts": String(node.restarts) }, row);
  if (node.children && node.children.length) {
    item.append(el("ul", {}, node.children.map(treeNode)));
  }
  return item;
}

async function loadTree() {
  state.treeTimer = null;
  if (!state.leader) {
    $("tree").replaceChildren(el("li", {}, "a standby runs no tree: the leading daemon does"));
    return;
  }
  const reply = await api("GET", "/v1/tree");
  if (!reply.ok) return;
  // Redrawn only when something in it changed, so that focus and a half-made click stay.
  const drawn = JSON.stringify([reply.value, state.lastEvent]);
  if (drawn === state.drawnTree) return;
  state.drawnTree = drawn;
  $("tree").replaceChildren(treeNode(reply.value));
}

function treeSoon() {
  if (!state.treeTimer) state.treeTimer = setTimeout(() => guard(loadTree()), 50);
}

// Status, charts, alarms ------------------------------------------------------------------

function spark(svg, values) {
  const max = Math.max(1, ...values);
  const points = values.map((v, i) =>
    `${(i / Math.max(1, HISTORY - 1)) * 300},${60 - (v / max) * 56}`).join(" ");
  svg.replaceChildren(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
  svg.firstChild.setAttribute("points", points);
}

function push(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

async function poll() {
  const status = await api("GET", "/v1/status");
  if (!status.ok) return;
  const s = status.value;
  state.leader = s.role === "leader";
  $("role").textContent = s.role === "leader" ? "leading its journal" :
    `standby of ${s.leader || "an unknown leader"}`;
  $("counts").textContent = `in flight ${s.in_flight} · completed ${s.completed} · kept ` +
    `${s.retention.kept} · pruned ${s.retention.pruned}`;
  const now = Date.now();
  if (state.lastCompleted !== null) {
    const rate = (s.completed - state.lastCompleted) / ((now - state.lastAt) / 1000);
    push(state.throughput, Math.max(0, rate));
    $("throughput-now").textContent = `now ${Math.round(Math.max(0, rate))} jobs/s`;
  }
  state.lastCompleted = s.completed;
  state.lastAt = now;
  push(state.restarts, s.restarts_last_minute);
  $("restarts-now").textContent = `now ${s.restarts_last_minute} in the last minute`;
  spark($("throughput"), state.throughput);
  spark($("restarts"), state.restarts);
  const maxLoad = Math.max(1, ...s.testers.map((t) => t.load));
  $("testers").replaceChildren(...s.testers.map((t) => el("div", { class: "tester" },
    el("span", {}, t.name),
    el("span", { class: "bar", title: `load ${t.load}` },
      el("span", { width: `${(t.load / maxLoad) * 100}%` })),
    el("span", {}, `${t.queued} queued`))));
  const cluster = s.role === "standby" || s.leader;
  $("cluster-title").hidden = $("cluster").hidden = !cluster;
  if (cluster) $("cluster").textContent = `this daemon: ${s.role}; leader: ${s.leader || "this one"}`;
  const alarms = await api("GET", "/v1/alarms");
  if (alarms.ok) {
    const list = alarms.value.alarms;
    $("alarms").replaceChildren(...(list.length ? list.map((a) =>
      el("li", {}, `${a.alarm} (${a.subject}): ${a.detail}`)) : [el("li", {}, "none")]));
  }
  await loadInFlight();
  // The queues and running jobs move without events: the tree is read again once a second,
  // unless the keyboard is in it (a redraw would take the focus away).
  if (!$("tree").contains(document.activeElement)) await loadTree();
}

async function loadInFlight() {
  const reply = await api("GET", "/v1/jobs?limit=50");
  if (!reply.ok) return;
  const jobs = reply.value.jobs;
  $("inflight").replaceChildren(...(jobs.length ? jobs.map((job) => el("li", {},
    `job ${job.id}: ${short(job.n)} at ${job.tester || "no tester yet"} (attempts ${job.attempts}) `,
    el("button", { type: "button", onclick: () => cancel(job.id) }, "cancel"))) :
    [el("li", {}, "none")]));
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 23) + " UTC" : "?";
}

function short(n) {
  return n.length > 40 ? `${n.slice(0, 18)}…${n.slice(-18)} (${n.length} digits)` : n;
}

// Jobs ----------------------------------------------------------------------------------

function describe(answer) {
  if (answer.status === "pending") return `job ${answer.id}: pending`;
  if (answer.error) return `job ${answer.id}: ${short(answer.n || "")} ${answer.error}`;
  if (answer.digits) return `job ${answer.id}: made the ${answer.digits}-digit prime ${short(answer.n)}`;
  const what = answer.prime ? "prime" : (answer.neither_prime_nor_composite ?
    "neither prime nor composite" : "composite");
  return `job ${answer.id}: ${short(answer.n)} is ${what}`;
}

function answerItem(text, cls) {
  const list = $("answers");
  list.prepend(el("li", { class: cls }, text));
  while (list.children.length > 50) list.lastChild.remove();
}

async function waitFor(job) {
  const reply = await api("GET", `/v1/jobs/${job.id}?wait=true&timeout=300`);
  const answer = reply.value;
  answerItem(reply.ok ? describe(answer) : `job ${job.id}: ${answer.error}`,
    reply.ok && answer.prime ? "prime" : (reply.ok ? "" : "error"));
}

async function submitJobs(body) {
  const reply = await api("POST", "/v1/jobs", body);
  if (!reply.ok) return answerItem(reply.value.error || String(reply.status), "error");
  for (const error of reply.value.errors) answerItem(`${error.n}: ${error.error}`, "error");
  for (const job of reply.value.jobs) answerItem(`job ${job.id}: ${short(job.n)} accepted`, "");
  await Promise.all(reply.value.jobs.map(waitFor));
}

async function cancel(id) {
  const reply = await api("DELETE", `/v1/jobs/${id}`);
  answerItem(reply.ok ? `job ${id}: cancelled` : reply.value.error, reply.ok ? "" : "error");
  await loadInFlight();
}

async function lookup(id) {
  const reply = await api("GET", `/v1/jobs/${id}`);
  const a = reply.value;
  const rows = [];
  if (reply.status === 410) rows.push(["job", id], ["state", "finished, and pruned"], ["retention", a.reason]);
  else if (!reply.ok) rows.push(["job", id], ["state", a.error]);
  else if (a.status === "pending") {
    const listed = await api("GET", `/v1/jobs?after=${id - 1}&limit=1`);
    const job = listed.ok && listed.value.jobs[0]?.id === id ? listed.value.jobs[0] : null;
    rows.push(["job", id], ["state", "in flight"]);
    if (job) rows.push(["number", short(job.n)], ["tester", job.tester || "none yet"], ["attempts", job.attempts]);
    rows.push(["faults", a.faults ?? "?"], ["accepted", when(a.submitted_ms)]);
  } else {
    rows.push(["job", a.id], ["number", short(a.n || "")], ["verdict", describe(a).split(": ")[1]],
      ["attempts", a.attempts], ["faults", a.faults ?? "?"], ["accepted", when(a.submitted_ms)],
      ["finished", when(a.finished_ms)]);
    if (a.submitted_ms && a.finished_ms) {
      rows.push(["took", `${((a.finished_ms - a.submitted_ms) / 1000).toFixed(3)} s`]);
    }
  }
  const list = el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
  const cancelButton = reply.ok && a.status === "pending" ?
    el("button", { type: "button", onclick: () => cancel(id) }, "cancel this job") : null;
  $("lookup").replaceChildren(list, cancelButton || "");
}

// Events ----------------------------------------------------------------------------------

function eventLine(e) {
  const parts = [e.at.slice(11, 23), e.event, e.actor];
  for (const key of ["supervisor", "job", "attempt", "delay_ms", "count", "alarm"]) {
    if (e[key] !== undefined) parts.push(`${key}=${e[key]}`);
  }
  if (e.reason) parts.push(`reason=${JSON.stringify(e.reason)}`);
  return parts.join(" ");
}

function shown(e) {
  const actor = $("filter-actor").value.trim();
  const kind = $("filter-kind").value;
  const minutes = $("filter-since").value;
  return (!actor || e.actor.includes(actor)) && (!kind || e.event === kind) &&
    (minutes === "" || e.at_ms >= Date.now() - Number(minutes) * 60000);
}

function renderEvents() {
  const items = state.events.filter(shown).slice(-200).reverse()
    .map((e) => el("li", { class: e.event }, eventLine(e)));
  $("events").replaceChildren(...items);
}

function onEvent(e) {
  state.events.push(e);
  if (state.events.length > MAX_EVENTS) state.events.shift();
  if (SUPERVISION.has(e.event)) state.lastEvent[e.actor] = e;
  if (TREE_EVENTS.has(e.event)) treeSoon();
  if (shown(e)) {
    $("events").prepend(el("li", { class: e.event }, eventLine(e)));
    while ($("events").children.length > 200) $("events").lastChild.remove();
  }
}

async function follow() {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch("/v1/events", { headers });
  if (response.status === 401) throw new Unauthorized();
  $("live").textContent = "live";
  $("live").classList.add("on");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
  throw new Error("the event stream ended");
}

async function followForever() {
  while (!state.stopped) {
    try {
      state.events = [];
      await follow();
    } catch (e) {
      if (e instanceof Unauthorized) return refuse();
      showError(e);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// Start -----------------------------------------------------------------------------------

function wire() {
  $("submit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const numbers = $("numbers").value.split(/[\s,]+/).filter(Boolean);
    if (numbers.length) guard(submitJobs({ numbers }));
  });
  $("prime-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guard(submitJobs({ make_prime: { digits: Number($("digits").value) } }));
  });
  $("lookup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = Number($("lookup-id").value);
    if (id > 0) guard(lookup(id));
  });
  for (const id of ["filter-actor", "filter-kind", "filter-since"]) {
    $(id).addEventListener("input", renderEvents);
  }
}

async function start() {
  wire();
  await poll();
  await loadTree();
  followForever();
  const tick = async () => {
    if (state.stopped) return;
    await guard(poll());
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

guard(start());
