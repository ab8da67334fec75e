// The httpgw dashboard: polls GET /dashboard/data once a second (with the admin token from
// sessionStorage, asked for once when the listener requires one) and redraws. No build step.
'use strict';

const TOKEN_KEY = 'httpgw-admin-token';
const $ = (id) => document.getElementById(id);
let charts;
let timer;

function headers() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function formatBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
}

function ago(ms) {
  if (ms < 1000) return 'now';
  if (ms < 60_000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillTable(id, rows, build) {
  const body = $(id).querySelector('tbody');
  body.replaceChildren(...rows.map(build));
  $(`${id}-empty`).hidden = rows.length > 0;
  $(id).hidden = rows.length === 0;
}

function makeCharts() {
  const width = () => Math.max(300, $('chart-bytes').parentElement.clientWidth - 32);
  const axes = (format) => [{ stroke: '#6b7385', grid: { stroke: '#eef0f4' } }, { stroke: '#6b7385', grid: { stroke: '#eef0f4' }, size: 90, values: (u, ticks) => ticks.map(format) }];
  const bytes = new uPlot({
    width: width(), height: 200, legend: { show: false }, cursor: { show: true },
    scales: { x: { time: true } },
    series: [{}, { label: 'bytes/s', stroke: '#2f6fde', width: 2, fill: 'rgba(47,111,222,0.12)', points: { show: false } }],
    axes: axes((v) => `${formatBytes(v)}/s`),
  }, [[], []], $('chart-bytes'));
  const requests = new uPlot({
    width: width(), height: 200, legend: { show: false },
    scales: { x: { time: true } },
    series: [{}, { label: 'requests/s', stroke: '#1f9d55', width: 2, points: { show: false } }, { label: 'errors/s', stroke: '#d64545', width: 2, points: { show: false } }],
    axes: axes((v) => v.toFixed(v < 10 ? 1 : 0)),
  }, [[], [], []], $('chart-requests'));
  window.addEventListener('resize', () => {
    bytes.setSize({ width: width(), height: 200 });
    requests.setSize({ width: width(), height: 200 });
  });
  return { bytes, requests };
}

function render(data) {
  const history = data.history;
  const last = history[history.length - 1];
  $('throughput').textContent = `${formatBytes(last ? last.bytesPerSecond : 0)}/s`;
  $('rps').textContent = last ? last.requestsPerSecond.toFixed(1) : '0';
  $('active').textContent = String(data.transfers.length);
  const healthy = data.servers.filter((s) => s.health === 'active').length;
  $('servers-healthy').textContent = `${healthy} / ${data.servers.length}`;
  $('cache').textContent = data.cache === null ? 'no cache' : data.cache.hitRatio === null ? '–' : `${(data.cache.hitRatio * 100).toFixed(1)} %`;
  $('errors-total').textContent = String(data.totals.serverErrors + data.totals.aborted);

  const t = history.map((s) => s.t);
  charts.bytes.setData([t, history.map((s) => s.bytesPerSecond)]);
  charts.requests.setData([t, history.map((s) => s.requestsPerSecond), history.map((s) => s.errorsPerSecond)]);

  fillTable('transfers', data.transfers, (x) => {
    const tr = document.createElement('tr');
    const progress = document.createElement('td');
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('span');
    const pct = x.progress === null ? 0 : x.progress * 100;
    fill.style.width = `${pct.toFixed(1)}%`;
    bar.append(fill);
    const label = document.createElement('span');
    label.className = 'pct';
    label.textContent = x.progress === null ? 'starting' : `${pct.toFixed(0)} %`;
    const wrap = document.createElement('div');
    wrap.className = 'progress';
    wrap.append(bar, label);
    progress.append(wrap);
    tr.append(cell(x.path, 'path'), cell(x.client), cell(x.range ?? 'whole file'), progress, cell(`${formatBytes(x.bytesSent)} / ${formatBytes(x.length)}`, 'num'), cell(ago(data.now - Date.parse(x.startedAt)), 'num'));
    return tr;
  });
  fillTable('servers', data.servers, (s) => {
    const tr = document.createElement('tr');
    const health = document.createElement('td');
    const badge = document.createElement('span');
    badge.className = `badge ${s.health}`;
    badge.textContent = s.health;
    health.append(badge);
    tr.append(cell(s.name), cell(s.id), health, cell(formatMs(s.srttMs), 'num'), cell(formatMs(s.rtoMs), 'num'), cell(String(s.window), 'num'), cell(String(s.inFlight), 'num'), cell(formatBytes(s.bytes), 'num'), cell(String(s.timeouts), 'num'), cell(String(s.retransmissions), 'num'), cell(ago(s.lastSeenAgoMs), 'num'));
    tr.dataset.server = s.id;
    return tr;
  });
  fillTable('errors', data.errors, (e) => {
    const tr = document.createElement('tr');
    tr.append(cell(new Date(e.finishedAt).toLocaleTimeString()), cell(String(e.status)), cell(e.path, 'path'), cell(e.client), cell(e.outcome === 'aborted' ? `cut short after ${formatBytes(e.bytes)}` : (e.error ?? '')));
    return tr;
  });
}

function showLogin(refused) {
  clearTimeout(timer);
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !refused;
  $('status').textContent = 'token required';
  $('status').className = 'pill down';
}

async function poll() {
  try {
    const response = await fetch('/dashboard/data', { headers: headers(), cache: 'no-store' });
    if (response.status === 401) {
      const had = sessionStorage.getItem(TOKEN_KEY) !== null;
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin(had);
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    $('login').hidden = true;
    $('main').hidden = false;
    $('logout').hidden = sessionStorage.getItem(TOKEN_KEY) === null;
    charts ??= makeCharts();
    render(data);
    $('status').textContent = `live · ${new Date(data.now).toLocaleTimeString()}`;
    $('status').className = 'pill live';
  } catch (error) {
    $('status').textContent = `gateway unreachable (${error.message})`;
    $('status').className = 'pill down';
  }
  timer = setTimeout(poll, 1000);
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  poll();
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(false);
});

// Ask for the token first when the listener needs one and none is kept for this tab.
fetch('/dashboard/auth', { cache: 'no-store' })
  .then((response) => response.json())
  .then(({ tokenRequired }) => (tokenRequired && sessionStorage.getItem(TOKEN_KEY) === null ? showLogin(false) : poll()))
  .catch(() => poll());
