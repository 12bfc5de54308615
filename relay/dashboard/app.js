// The relay's live dashboard: reads GET /api/stream (server-sent events, with the admin
// token as a bearer token, so it is never in a URL) and redraws hosts, timeline, drops and
// flows. Plain browser JavaScript, no build step.

const TOKEN_KEY = 'imach-admin-token';
const MAX_EVENTS = 200;
const NOT_DROPS = new Set(['packets-delivered', 'packets-received', 'bytes-delivered', 'bytes-received', 'sessions', 'frames-in', 'frames-out']);

const $ = (id) => document.getElementById(id);
const events = [];
let lastTraffic = new Map();

function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

function duration(ms) {
  if (!(ms > 0)) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(empty, 'empty');
    td.colSpan = columns;
    tr.append(td);
    tbody.append(tr);
    return;
  }
  for (const r of rows) tbody.append(r);
}

function renderHosts(hosts, at) {
  const rows = hosts.map((h) => {
    const tr = document.createElement('tr');
    tr.dataset.host = h.name;
    const prev = lastTraffic.get(h.name);
    const secs = prev ? (at - prev.at) / 1000 : 0;
    const rate = (now, before) => (secs > 0 && now >= before ? `${bytes(Math.round((now - before) / secs))}/s` : '-');
    const state = document.createElement('span');
    state.className = `state ${h.state}`;
    state.textContent = h.state;
    const stateCell = document.createElement('td');
    stateCell.append(state);
    tr.append(
      cell(h.name),
      cell(h.address),
      stateCell,
      cell(duration(h.uptimeMs)),
      cell(String(h.connections)),
      cell(bytes(h.bytesIn)),
      cell(bytes(h.bytesOut)),
      cell(prev ? rate(h.bytesIn, prev.bytesIn) : '-'),
      cell(prev ? rate(h.bytesOut, prev.bytesOut) : '-'),
      cell(String(h.starts)),
      cell(h.lastReason || '-', 'reason'),
    );
    return tr;
  });
  lastTraffic = new Map(hosts.map((h) => [h.name, { at, bytesIn: h.bytesIn, bytesOut: h.bytesOut }]));
  fill($('hosts').tBodies[0], rows, 'no hosts', 11);
}

function renderTimeline() {
  const box = $('timeline');
  box.replaceChildren();
  if (events.length === 0) {
    const p = document.createElement('div');
    p.className = 'empty';
    p.textContent = 'no lifecycle events yet';
    box.append(p);
    return;
  }
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    const row = document.createElement('div');
    row.className = `ev ${e.type}`;
    row.dataset.type = e.type;
    row.dataset.host = e.host;
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = new Date(e.time).toLocaleTimeString();
    const h = document.createElement('span');
    h.textContent = e.host;
    const ty = document.createElement('span');
    ty.className = 'ty';
    ty.textContent = e.type;
    const r = document.createElement('span');
    r.textContent = e.reason;
    row.append(t, h, ty, r);
    box.append(row);
  }
}

function renderDrops(counters) {
  const rows = Object.entries(counters)
    .filter(([k]) => !NOT_DROPS.has(k) && !k.startsWith('hosts.'))
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => {
      const tr = document.createElement('tr');
      tr.append(cell(k), cell(String(v)));
      return tr;
    });
  fill($('drops').tBodies[0], rows, 'no drops', 2);
}

function renderFlows(flows) {
  const rows = flows.map((f) => {
    const tr = document.createElement('tr');
    tr.append(cell(f.protocol), cell(f.src), cell(f.dst), cell(f.state), cell(`${bytes(f.bytesOut)} / ${f.packetsOut}`), cell(`${bytes(f.bytesIn)} / ${f.packetsIn}`), cell(duration(f.ageMs)), cell(duration(f.idleMs)));
    return tr;
  });
  fill($('flows').tBodies[0], rows, 'no flows', 8);
}

function onMessage(type, data) {
  if (type === 'hello') {
    $('network').textContent = `network ${data.network}, gateway ${data.gateway}`;
    events.splice(0, events.length, ...data.events.slice(-MAX_EVENTS));
    renderTimeline();
  } else if (type === 'event') {
    events.push(data);
    if (events.length > MAX_EVENTS) events.shift();
    renderTimeline();
  } else if (type === 'state') {
    renderHosts(data.hosts, Date.now());
    renderFlows(data.flows);
    renderDrops(data.counters);
  }
}

async function connect(token) {
  const status = $('status');
  let res;
  try {
    res = await fetch('/api/stream', { headers: { authorization: `Bearer ${token}` } });
  } catch (e) {
    status.textContent = `cannot reach the relay: ${e.message}`;
    return 'retry';
  }
  if (res.status === 401 || res.status === 403) return `refused: ${res.headers.get('x-imach-error') || res.status}`;
  if (!res.ok || !res.body) {
    status.textContent = `relay answered ${res.status}`;
    return 'retry';
  }
  $('login').hidden = true;
  $('board').hidden = false;
  status.textContent = 'live';
  status.className = 'live';
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      break;
    }
    if (chunk.done) break;
    buf += chunk.value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let type = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) onMessage(type, JSON.parse(data));
    }
  }
  status.className = '';
  status.textContent = 'disconnected, reconnecting...';
  return 'retry';
}

async function start(token) {
  for (;;) {
    const r = await connect(token);
    if (r !== 'retry') {
      sessionStorage.removeItem(TOKEN_KEY);
      $('board').hidden = true;
      $('login').hidden = false;
      $('loginError').textContent = r;
      return;
    }
    await new Promise((done) => setTimeout(done, 2000));
  }
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  start(token);
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) start(saved);
else $('login').hidden = false;
