// ZcProxy's status page: reads GET status once a second, shows clusters and destinations, draws two charts from the
// counters' differences, and sends the runtime API's drain/disable/enable. No dependencies, no build step.
// Text from the proxy (ids, addresses) is only ever set as textContent: a destination name cannot inject markup.
'use strict';

const POINTS = 60; // one minute of one-second samples
const MECHANISMS = ['sendfile', 'splice', 'directio', 'copy'];
const COLORS = { sendfile: '#1f77b4', splice: '#2ca02c', directio: '#9467bd', copy: '#d62728', hit: '#ff7f0e' };
const FROM_CACHE = ['HIT', 'STALE', 'UPDATING', 'REVALIDATED']; // answered from a stored entry
const COLUMNS = ['Destination', 'Address', 'Health (active / passive)', 'State', 'Weight (effective)', 'Active', 'Queue', 'Requests', 'Errors',
  'Breaker', 'Latency', ''];

const bytesSeries = Object.fromEntries(MECHANISMS.map(m => [m, []]));
const hitSeries = [];
const rows = new Map(); // "cluster/destination" -> { row, cells }
let previous = null;
let statusFailed = false;

const $ = id => document.getElementById(id);

function push(series, value) {
  series.push(value);
  if (series.length > POINTS) series.shift();
}

function total(counts, only) {
  return Object.entries(counts || {}).filter(([k]) => !only || only.includes(k)).reduce((s, [, v]) => s + v, 0);
}

function bytesPerSecond(v) {
  if (v === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}/s`;
}

function percent(v) { return v === null ? '–' : `${(v * 100).toFixed(1)} %`; }

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

async function tick() {
  let status;
  try {
    const response = await fetch('status', { cache: 'no-store' });
    status = await response.json();
  } catch (e) {
    showError(`status unavailable: ${e}`);
    statusFailed = true;
    return;
  }
  if (statusFailed) { showError(''); statusFailed = false; }
  const at = performance.now();
  $('summary').textContent = `${status.config.file} · ${status.config.routes} routes · ${status.config.clusters} clusters`;
  renderClusters(status.clusters);
  if (previous) {
    const seconds = Math.max((at - previous.at) / 1000, 0.001);
    for (const m of MECHANISMS) push(bytesSeries[m], Math.max(0, (status.bodyBytes[m] - previous.status.bodyBytes[m]) / seconds));
    const lookups = total(status.cache) - total(previous.status.cache);
    const hits = total(status.cache, FROM_CACHE) - total(previous.status.cache, FROM_CACHE);
    push(hitSeries, lookups > 0 ? hits / lookups : null);
    drawCharts();
  }
  previous = { status, at };
}

function drawCharts() {
  const bytes = MECHANISMS.map(m => ({ name: m, color: COLORS[m], values: bytesSeries[m] }));
  draw($('bytes-chart'), bytes, bytesPerSecond, null);
  legend($('bytes-legend'), bytes, bytesPerSecond);
  const cache = [{ name: 'hit ratio', color: COLORS.hit, values: hitSeries }];
  draw($('cache-chart'), cache, percent, 1);
  legend($('cache-legend'), cache, percent);
  // For readers that are not eyes (the browser test): the latest sample of each chart.
  $('bytes-chart').dataset.latest = String(MECHANISMS.reduce((s, m) => s + bytesSeries[m].at(-1), 0));
  $('cache-chart').dataset.latest = String(hitSeries.at(-1));
  $('bytes-chart').dataset.samples = String(bytesSeries.copy.length);
}

function legend(list, series, format) {
  list.replaceChildren(...series.map(s => {
    const item = document.createElement('li');
    item.style.setProperty('--color', s.color);
    item.textContent = `${s.name} ${format(s.values.length ? s.values.at(-1) : null)}`;
    return item;
  }));
}

function draw(canvas, series, format, fixedMax) {
  const g = canvas.getContext('2d');
  const { width, height } = canvas;
  const left = 80, bottom = height - 16, top = 10;
  const max = fixedMax ?? Math.max(1, ...series.flatMap(s => s.values.filter(v => v !== null)));
  g.clearRect(0, 0, width, height);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#666';
  g.strokeStyle = '#eee';
  for (const f of [0, 0.5, 1]) {
    const y = bottom - f * (bottom - top);
    g.beginPath(); g.moveTo(left, y); g.lineTo(width, y); g.stroke();
    g.fillText(format(max * f), 4, y + 4);
  }
  g.fillText(`last ${POINTS} s`, left, height - 3);
  const step = (width - left) / (POINTS - 1);
  for (const s of series) {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      const x = left + (POINTS - s.values.length + i) * step, y = bottom - (v / max) * (bottom - top);
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    });
    g.stroke();
    g.fillStyle = s.color; // a dot on each sample: a lone one between gaps shows too
    s.values.forEach((v, i) => {
      if (v === null) return;
      g.beginPath();
      g.arc(left + (POINTS - s.values.length + i) * step, bottom - (v / max) * (bottom - top), 2, 0, 2 * Math.PI);
      g.fill();
    });
  }
}

function renderClusters(clusters) {
  const container = $('clusters');
  const seen = new Set();
  for (const cluster of clusters) {
    let table = container.querySelector(`table[data-cluster="${CSS.escape(cluster.id)}"]`);
    if (!table) table = addClusterTable(container, cluster);
    for (const d of cluster.destinations) {
      const key = `${cluster.id}/${d.id}`;
      seen.add(key);
      let entry = rows.get(key);
      if (!entry) entry = addRow(table.tBodies[0], cluster.id, d.id, key);
      fillRow(entry.cells, d);
    }
  }
  for (const [key, entry] of rows) if (!seen.has(key)) { entry.row.remove(); rows.delete(key); }
  for (const table of container.querySelectorAll('table'))
    if (!clusters.some(c => c.id === table.dataset.cluster)) { table.previousElementSibling.remove(); table.remove(); }
}

function addClusterTable(container, cluster) {
  const title = document.createElement('h2');
  title.textContent = `Cluster ${cluster.id} `;
  const policy = document.createElement('small');
  policy.textContent = cluster.loadBalancingPolicy;
  title.append(policy);
  const table = document.createElement('table');
  table.dataset.cluster = cluster.id;
  const head = table.createTHead().insertRow();
  for (const c of COLUMNS) head.append(Object.assign(document.createElement('th'), { textContent: c }));
  table.createTBody();
  container.append(title, table);
  return table;
}

function addRow(body, clusterId, destinationId, key) {
  const row = body.insertRow();
  row.dataset.destination = destinationId;
  const cells = COLUMNS.map(() => row.insertCell());
  for (const i of [4, 5, 6, 7, 8, 10]) cells[i].className = 'num';
  for (const action of ['drain', 'disable', 'enable']) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = action[0].toUpperCase() + action.slice(1);
    button.dataset.action = action;
    button.addEventListener('click', () => act(clusterId, destinationId, action));
    cells[11].append(button);
  }
  const entry = { row, cells };
  rows.set(key, entry);
  return entry;
}

function fillRow(cells, d) {
  const p = d.pool;
  cells[0].textContent = d.id + (p.backup ? ' (backup)' : '');
  cells[1].textContent = d.address;
  cells[2].textContent = `${p.healthy ? 'up' : 'down'} (${d.health.active} / ${d.health.passive})`;
  cells[2].className = p.healthy ? 'up' : 'down';
  cells[3].textContent = p.state;
  cells[3].className = `state-${p.state}`;
  cells[4].textContent = p.weight === p.configuredWeight ? `${p.weight} (${p.effectiveWeight})` : `${p.weight} of ${p.configuredWeight} (${p.effectiveWeight})`;
  cells[5].textContent = p.maxConnections > 0 ? `${p.activeRequests} / ${p.maxConnections}` : String(p.activeRequests);
  cells[6].textContent = String(p.queueLength);
  cells[7].textContent = String(p.requests);
  cells[8].textContent = String(p.failures);
  cells[9].textContent = p.breaker;
  cells[9].className = `breaker-${p.breaker}`;
  cells[10].textContent = p.completed > 0 ? `${(p.latencySeconds * 1000).toFixed(1)} ms` : '–';
  for (const button of cells[11].querySelectorAll('button'))
    button.disabled = (button.dataset.action === 'drain' && p.state === 'draining')
      || (button.dataset.action === 'disable' && p.state === 'disabled')
      || (button.dataset.action === 'enable' && p.state === 'enabled');
}

// The runtime API's POSTs: same-origin fetches (the admin guard refuses cross-site ones), with the bearer token when
// the operator typed one (kept for this tab only).
async function act(cluster, destination, action) {
  const headers = {};
  const token = $('token').value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const url = `clusters/${encodeURIComponent(cluster)}/destinations/${encodeURIComponent(destination)}/${action}`;
  try {
    const response = await fetch(url, { method: 'POST', headers });
    if (response.status === 401) showError('this admin listener has a token (Admin.Token): type it in the field above');
    else if (!response.ok) showError(`${action} ${cluster}/${destination}: ${(await response.json()).error}`);
    else showError('');
  } catch (e) {
    showError(`${action} ${cluster}/${destination}: ${e}`);
  }
  await tick();
}

async function loop() {
  await tick();
  setTimeout(loop, 1000);
}

$('token').value = sessionStorage.getItem('zcproxy-admin-token') ?? '';
$('token').addEventListener('change', () => sessionStorage.setItem('zcproxy-admin-token', $('token').value));
loop();
