// hooktunnel web inspector. Every captured string reaches the page through
// textContent or a form value, never parsed as markup: a hostile body stays text.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 100;
const BODY_SHOWN = 256 * 1024;

const state = {
  rows: [], // list rows, newest first
  next: null, // cursor for older rows
  selected: null, // selected id
  detail: null, // the open exchange
  side: "request",
  filter: "",
  unseen: 0, // rows that arrived while scrolled away
  tunnels: new Set(), // tunnel names seen (status and rows); only ever grows
};

// One agent may serve several tunnels into one history: once more than one
// name has been seen, rows and the detail say which tunnel. A single-tunnel
// page looks as before.
function severalTunnels() {
  return state.tunnels.size > 1;
}

// Notes tunnel names; redraws the list when that makes the column appear.
function noteTunnels(names) {
  const before = severalTunnels();
  for (const n of names) if (n) state.tunnels.add(n);
  const now = severalTunnels();
  $("th-tunnel").hidden = !now;
  return now && !before;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(path, opts) {
  const init = Object.assign({ headers: {} }, opts || {});
  if (init.body !== undefined) init.headers["content-type"] = "application/json";
  init.headers["x-hooktunnel"] = "1";
  const r = await fetch(path, init);
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r;
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function fmtSize(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1024 / 1024).toFixed(1) + " MiB";
}

function statusClass(row) {
  if (row.error || row.status === null) return "serr";
  return "s" + Math.floor(row.status / 100);
}

function rowElement(row) {
  const tr = el("tr", null, "row");
  tr.dataset.id = row.id;
  if (row.replay_of) tr.dataset.replayOf = row.replay_of;
  tr.appendChild(el("td", fmtTime(row.received_at_ms)));
  if (severalTunnels()) {
    const t = el("td", row.tunnel, "tunnel");
    t.title = row.tunnel;
    tr.appendChild(t);
  }
  tr.appendChild(el("td", row.method));
  const path = el("td", null, "path");
  if (row.replay_of) path.appendChild(el("span", "↻", "replay-mark"));
  path.appendChild(document.createTextNode(row.path));
  path.title = row.path;
  tr.appendChild(path);
  tr.appendChild(el("td", row.status === null ? "ERR" : row.status, statusClass(row)));
  tr.appendChild(el("td", row.duration_ms.toFixed(1)));
  tr.appendChild(el("td", fmtSize(row.request_bytes)));
  if (row.id === state.selected) tr.classList.add("selected");
  tr.addEventListener("click", () => select(row.id, true));
  return tr;
}

function renderRows() {
  noteTunnels(state.rows.map((r) => r.tunnel));
  const body = $("rows");
  body.replaceChildren(...state.rows.map(rowElement));
  $("empty").hidden = state.rows.length > 0;
  $("more").hidden = !state.next;
}

async function load() {
  const q = new URLSearchParams({ filter: state.filter, limit: PAGE });
  try {
    const data = await (await api("/api/v1/exchanges?" + q)).json();
    $("filter-error").hidden = true;
    state.rows = data.exchanges;
    state.next = data.next;
    state.unseen = 0;
    $("newer").hidden = true;
    renderRows();
    $("har-all").href = "/api/v1/har?" + new URLSearchParams({ filter: state.filter });
  } catch (e) {
    $("filter-error").textContent = e.message;
    $("filter-error").hidden = false;
  }
}

async function loadOlder() {
  if (!state.next) return;
  const q = new URLSearchParams({ filter: state.filter, limit: PAGE, before: state.next });
  const data = await (await api("/api/v1/exchanges?" + q)).json();
  state.rows = state.rows.concat(data.exchanges);
  state.next = data.next;
  renderRows();
}

function following() {
  return $("list-pane").scrollTop < 8;
}

let reloadTimer = null;
function onNewRow(row) {
  if (state.filter) {
    // The filter is evaluated by the server (grep looks into bodies).
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 150);
    return;
  }
  if (state.rows.some((r) => r.id === row.id)) return;
  const follow = following();
  state.rows.unshift(row);
  if (noteTunnels([row.tunnel])) renderRows();
  else $("rows").prepend(rowElement(row));
  $("empty").hidden = true;
  if (!follow) {
    state.unseen += 1;
    $("newer").textContent = "↑ " + state.unseen + " new";
    $("newer").hidden = false;
  }
}

function setConnection(text) {
  const badge = $("conn");
  badge.textContent = text;
  badge.className = "badge " + text.split(/[ :]/)[0];
}

function connect() {
  const es = new EventSource("/api/v1/events");
  es.addEventListener("exchange", (ev) => onNewRow(JSON.parse(ev.data)));
  es.addEventListener("replayed", (ev) => {
    const data = JSON.parse(ev.data);
    onNewRow(data.summary);
  });
  es.addEventListener("connection", (ev) => setConnection(JSON.parse(ev.data).state));
  es.addEventListener("skipped", () => load());
  es.onerror = () => setConnection("offline: inspector unreachable, retrying");
}

async function status() {
  try {
    const s = await (await api("/api/v1/status")).json();
    const tunnels = s.tunnels || (s.tunnel ? [s.tunnel] : []);
    if (tunnels.length) {
      const url = $("public-url");
      url.textContent = tunnels.length === 1
        ? tunnels[0].public_url + " → " + tunnels[0].target
        : tunnels.map((t) => t.name + ": " + t.public_url + " → " + t.target).join(" · ");
      url.classList.remove("muted");
    }
    if (noteTunnels(tunnels.map((t) => t.name))) renderRows();
    setConnection(s.connection);
  } catch (_) { /* shown by the event stream */ }
}

// ---- detail ----

async function select(id, open) {
  state.selected = id;
  for (const tr of $("rows").children) tr.classList.toggle("selected", tr.dataset.id === id);
  const tr = $("rows").querySelector("tr.selected");
  if (tr) tr.scrollIntoView({ block: "nearest" });
  if (open) await openDetail(id);
}

async function openDetail(id) {
  try {
    state.detail = await (await api("/api/v1/exchanges/" + encodeURIComponent(id))).json();
  } catch (e) {
    notice("could not load " + id + ": " + e.message);
    return;
  }
  $("detail").hidden = false;
  $("editor").hidden = true;
  $("d-notice").hidden = true;
  renderDetail();
}

function notice(text) {
  $("d-notice").textContent = text;
  $("d-notice").hidden = false;
}

function b64bytes(b64) {
  const bin = atob(b64 || "");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function header(headers, name) {
  const h = headers.find((p) => p[0].toLowerCase() === name);
  return h ? h[1] : "";
}

function hexView(bytes) {
  const lines = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const chunk = bytes.slice(off, off + 16);
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(off.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + ascii);
  }
  return lines.join("\n");
}

// Where JSON.parse gave up, as "line L, column C" when the engine says.
function jsonErrorPosition(text, err) {
  const m = /position (\d+)/.exec(err.message) || /column (\d+)/.exec(err.message);
  if (!m) return err.message;
  let pos = Number(m[1]);
  if (/line (\d+) column/.test(err.message)) return err.message;
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  const col = pos - before.lastIndexOf("\n");
  return err.message + " (line " + line + ", column " + col + ")";
}

function renderBody(bytes, contentType) {
  const view = $("body-view");
  const note = $("body-note");
  const mode = $("view-mode").value;
  view.replaceChildren();
  note.textContent = "";
  if (bytes.length === 0) {
    note.textContent = "(empty body)";
    return;
  }
  let shown = bytes;
  if (bytes.length > BODY_SHOWN) {
    shown = bytes.slice(0, BODY_SHOWN);
    note.textContent = "truncated: showing " + fmtSize(BODY_SHOWN) + " of " + fmtSize(bytes.length) + "; download the body for all of it. ";
  }
  if (mode === "hex") {
    view.textContent = hexView(shown);
    return;
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(shown);
  if (mode === "pretty" && /json/i.test(contentType)) {
    try {
      view.textContent = JSON.stringify(JSON.parse(text), null, 2);
      return;
    } catch (e) {
      note.appendChild(el("span", "invalid JSON: " + jsonErrorPosition(text, e), "json-error"));
    }
  }
  if (mode === "pretty" && /x-www-form-urlencoded/i.test(contentType)) {
    const table = el("table", null, "kv");
    for (const [k, v] of new URLSearchParams(text)) {
      const tr = el("tr");
      tr.appendChild(el("td", k));
      tr.appendChild(el("td", v));
      table.appendChild(tr);
    }
    view.appendChild(table);
    return;
  }
  view.textContent = text;
}

function renderDetail() {
  const d = state.detail;
  if (!d) return;
  $("d-title").textContent = d.request.method + " " + d.request.path;
  const meta = $("d-meta");
  meta.replaceChildren();
  const status = d.response ? String(d.response.status) : "no response";
  meta.appendChild(el("span", d.received_at + " · " + status + " · " + d.duration_ms + " ms · " + d.id));
  if (severalTunnels()) meta.appendChild(el("span", " · tunnel " + d.tunnel));
  if (d.replay_of) meta.appendChild(el("span", " · ↻ replay of " + d.replay_of));
  if (d.difference) meta.appendChild(el("span", " · vs original: " + d.difference));
  if (d.error) meta.appendChild(el("span", " · error: " + d.error, "sig-bad"));
  if (d.signature) {
    const s = d.signature;
    const text = " · signature (" + s.provider + "): " + (s.valid ? "valid" : "INVALID") + (s.reason ? " — " + s.reason : "");
    meta.appendChild(el("span", text, s.valid ? "sig-ok" : "sig-bad"));
  }
  $("tab-request").classList.toggle("active", state.side === "request");
  $("tab-response").classList.toggle("active", state.side === "response");
  const part = state.side === "request" ? d.request : d.response;
  const rows = $("headers").tBodies[0];
  rows.replaceChildren();
  if (!part) {
    $("body-view").textContent = "";
    $("body-note").textContent = d.error || "no response was recorded";
    return;
  }
  for (const [name, value] of part.headers) {
    const tr = el("tr");
    tr.appendChild(el("td", name));
    tr.appendChild(el("td", value));
    rows.appendChild(tr);
  }
  renderBody(b64bytes(part.body_base64), header(part.headers, "content-type"));
  if (part.truncated) {
    // The history holds only the head of this body (--capture-max).
    const t = part.truncated;
    const why = d.capture_degraded
      ? "not kept: the history store fell behind · " + fmtSize(t.total_bytes)
      : "truncated: " + fmtSize(Math.min(t.limit, t.total_bytes)) + " of " + fmtSize(t.total_bytes) + " kept";
    $("body-note").prepend(el("span", why + " · sha256 " + t.sha256.slice(0, 12) + "… (cannot be replayed) ", "json-error"));
  }
  const id = encodeURIComponent(d.id);
  $("download-body").href = "/api/v1/exchanges/" + id + "/" + state.side + "/body";
  $("har-one").href = "/api/v1/har?ids=" + id;
}

async function replay(spec) {
  const d = state.detail;
  if (!d) return;
  notice("replaying…");
  try {
    const r = await (await api("/api/v1/exchanges/" + encodeURIComponent(d.id) + "/replay", {
      method: "POST",
      body: JSON.stringify(spec || { resign: true }),
    })).json();
    const ex = r.exchange;
    let text = "replayed as " + ex.id + ": " + (ex.status === null ? "no response" : ex.status);
    if (r.error) text += " (" + r.error + ")";
    if (r.note) text += " · " + r.note;
    notice(text);
  } catch (e) {
    notice("replay failed: " + e.message);
  }
}

function openEditor() {
  const d = state.detail;
  if (!d) return;
  $("ed-method").value = d.request.method;
  $("ed-path").value = d.request.path;
  $("ed-headers").value = d.request.headers.map((h) => h[0] + ": " + h[1]).join("\n");
  $("ed-body").value = new TextDecoder().decode(b64bytes(d.request.body_base64));
  $("editor").hidden = false;
  $("ed-body").focus();
}

function sendEdited(ev) {
  ev.preventDefault();
  const headers = $("ed-headers").value.split("\n").filter((l) => l.trim()).map((l) => {
    const i = l.indexOf(":");
    return i < 0 ? [l.trim(), ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
  });
  const spec = {
    method: $("ed-method").value,
    path: $("ed-path").value,
    headers,
    body: $("ed-body").value,
    resign: $("ed-resign").checked,
  };
  if ($("ed-to").value.trim()) spec.to = $("ed-to").value.trim();
  $("editor").hidden = true;
  replay(spec);
}

async function copyCurl() {
  const d = state.detail;
  if (!d) return;
  try {
    const text = await (await api("/api/v1/exchanges/" + encodeURIComponent(d.id) + "/curl")).text();
    const area = $("clipboard");
    area.value = text;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      area.select();
      document.execCommand("copy");
    }
    notice("curl command copied (" + text.length + " characters)");
  } catch (e) {
    notice("copy as curl failed: " + e.message);
  }
}

function move(delta) {
  if (state.rows.length === 0) return;
  let i = state.rows.findIndex((r) => r.id === state.selected);
  i = i < 0 ? 0 : Math.max(0, Math.min(state.rows.length - 1, i + delta));
  select(state.rows[i].id, false);
}

function onKey(ev) {
  const t = ev.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  if (ev.key === "Escape") {
    if (typing) t.blur();
    $("editor").hidden = true;
    return;
  }
  if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const actions = {
    j: () => move(1), ArrowDown: () => move(1),
    k: () => move(-1), ArrowUp: () => move(-1),
    Enter: () => state.selected && openDetail(state.selected),
    r: () => replay(),
    e: () => openEditor(),
    c: () => copyCurl(),
    Tab: () => { state.side = state.side === "request" ? "response" : "request"; renderDetail(); },
    "/": () => $("filter").focus(),
  };
  const act = actions[ev.key];
  if (act) {
    ev.preventDefault();
    act();
  }
}

function init() {
  let typingTimer = null;
  $("filter").addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { state.filter = $("filter").value.trim(); load(); }, 250);
  });
  $("filter").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { clearTimeout(typingTimer); state.filter = $("filter").value.trim(); load(); }
  });
  $("more").addEventListener("click", loadOlder);
  $("newer").addEventListener("click", () => { $("list-pane").scrollTop = 0; });
  $("list-pane").addEventListener("scroll", () => {
    const pane = $("list-pane");
    if (following()) { state.unseen = 0; $("newer").hidden = true; }
    if (pane.scrollTop + pane.clientHeight > pane.scrollHeight - 40) loadOlder();
  });
  $("replay").addEventListener("click", () => replay());
  $("edit").addEventListener("click", openEditor);
  $("editor").addEventListener("submit", sendEdited);
  $("ed-cancel").addEventListener("click", () => { $("editor").hidden = true; });
  $("copy-curl").addEventListener("click", copyCurl);
  $("tab-request").addEventListener("click", () => { state.side = "request"; renderDetail(); });
  $("tab-response").addEventListener("click", () => { state.side = "response"; renderDetail(); });
  $("view-mode").addEventListener("change", renderDetail);
  document.addEventListener("keydown", onKey);
  status();
  // `#latest` opens the newest row and stays still: no live stream, so a
  // headless screenshot (scripts/screenshot.sh) sees the page settle.
  const still = location.hash === "#latest";
  load().then(() => {
    if (still && state.rows.length) select(state.rows[0].id, true);
  });
  if (!still) connect();
}

document.addEventListener("DOMContentLoaded", init);
