// The status page: polls /api/status (tools/status/report.ts) once a second and renders it. Plain JavaScript on
// purpose: no build step, and uPlot (served from node_modules) is the only library.
/* global uPlot */

const POLL_MS = 1000;
const COLORS = ['#0969da', '#bf3989', '#1a7f37', '#9a6700', '#8250df', '#cf222e'];
const fmt = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
const $ = (id) => document.getElementById(id);

/** Creates an element with attributes and children (strings become text: nothing from the report is parsed as HTML). */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function ago(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

function renderSources(sources) {
  const cards = sources.map((s) => {
    const rows = [
      ['state', el('span', { class: `state-${s.state}`, 'data-field': 'state' }, s.state)],
      ['freshness', el('span', { 'data-field': 'freshness' }, ago(s.freshnessMs))],
      ['position', el('span', { 'data-field': 'position' }, s.position ?? '–')],
      ['emitted', el('span', { 'data-field': 'emitted' }, fmt(s.emitted))],
    ];
    if (s.snapshot) {
      const what = s.snapshot.table ?? s.snapshot.tables.join(', ');
      rows.push([
        'snapshot',
        el('span', { 'data-field': 'snapshot' }, `${s.snapshot.kind} ${what}: ${fmt(s.snapshot.rowsRead)} rows`),
      ]);
    }
    if (s.detail) rows.push(['detail', el('span', { 'data-field': 'detail' }, s.detail)]);
    const list = el('dl');
    for (const [name, value] of rows) list.append(el('dt', null, name), el('dd', null, value));
    return el('div', { class: 'card', 'data-source': s.name }, el('h3', null, s.name), list);
  });
  $('sources').replaceChildren(...cards);
}

function renderLanes(lanes) {
  const rows = lanes.flatMap((l) => [
    el(
      'tr',
      { 'data-lane': l.lane },
      el('td', null, l.lane),
      el('td', { 'data-field': 'recordsPerSec' }, fmt(l.recordsPerSec)),
      el('td', { 'data-field': 'lag' }, fmt(l.lag)),
      el('td', { 'data-field': 'freshness' }, ago(l.freshnessMs)),
      el('td', { 'data-field': 'p50' }, fmt(l.latencyMs?.p50)),
      el('td', { 'data-field': 'p99' }, fmt(l.latencyMs?.p99)),
      el('td', { 'data-field': 'processed' }, fmt(l.processed)),
      el('td', { 'data-field': 'duplicates' }, fmt(l.duplicates)),
      el('td', { 'data-field': 'skipped' }, fmt(l.skipped)),
      el('td', { 'data-field': 'deadLettered', class: l.deadLettered > 0 ? 'bad' : undefined }, fmt(l.deadLettered)),
      el('td', { 'data-field': 'retried' }, fmt(l.retried)),
      el('td', { 'data-field': 'dlqDepth' }, fmt(l.dlqDepth)),
    ),
    // A failing lane gets a line of its own under its numbers, while the failure is recent.
    ...(l.lastError
      ? [
          el(
            'tr',
            { 'data-lane-error': l.lane },
            el('td', { colspan: 12, class: 'bad error' }, `${l.lane}: ${l.lastError}`),
          ),
        ]
      : []),
  ]);
  $('lanes').tBodies[0].replaceChildren(...rows);
}

function renderList(id, items, empty) {
  const list = $(id);
  if (items.length === 0) list.replaceChildren(el('li', { class: 'muted' }, empty));
  else list.replaceChildren(...items);
}

function renderVerdict(verdict) {
  const section = $('verdict-section');
  if (!verdict) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const badge = $('verdict');
  badge.textContent = verdict.consistent ? 'CONSISTENT' : 'INCONSISTENT';
  badge.className = `badge ${verdict.consistent ? 'ok' : 'bad'}`;
  const rows = verdict.checks.map((c) =>
    el(
      'tr',
      { 'data-sink': c.sink, 'data-table': c.table },
      el('td', null, c.sink),
      el('td', null, c.table),
      el('td', null, fmt(c.sourceRows)),
      el('td', null, fmt(c.sinkRows)),
      el('td', { class: c.missing ? 'bad' : undefined }, fmt(c.missing)),
      el('td', { class: c.extra ? 'bad' : undefined }, fmt(c.extra)),
      el('td', { class: c.different ? 'bad' : undefined }, fmt(c.different)),
      el('td', { class: c.ok ? undefined : 'bad', 'data-field': 'ok' }, c.note ?? (c.ok ? 'ok' : 'MISMATCH')),
    ),
  );
  $('verdict-table').tBodies[0].replaceChildren(...rows);
}

/** One uPlot chart per metric, created when the lanes are first known, fed with setData afterwards. */
const charts = {};
/** Points each chart received so far (tests read it to see that charts get data). */
window.statusCharts = { points: {} };

function chartSeries(metric, lanes) {
  const series = [{}];
  lanes.forEach((lane, i) => {
    const stroke = COLORS[i % COLORS.length];
    if (metric === 'latency') {
      series.push({ label: `${lane} p99`, stroke, width: 2 });
      series.push({ label: `${lane} p50`, stroke, width: 1, dash: [6, 4] });
    } else {
      series.push({ label: lane, stroke, width: 2 });
    }
  });
  return series;
}

function chartData(metric, lanes, points) {
  const data = [points.map((p) => p.t / 1000)];
  for (const lane of lanes) {
    const value = (p, field) => p.lanes[lane]?.[field] ?? null;
    if (metric === 'latency') {
      data.push(points.map((p) => value(p, 'p99')));
      data.push(points.map((p) => value(p, 'p50')));
    } else {
      data.push(points.map((p) => value(p, metric)));
    }
  }
  return data;
}

function renderCharts(report) {
  const lanes = report.lanes.map((l) => l.lane);
  for (const metric of ['rate', 'lag', 'latency']) {
    const target = $(`chart-${metric}`);
    const key = `${metric}:${lanes.join(',')}`;
    const data = chartData(metric, lanes, report.series);
    if (!charts[metric] || charts[metric].key !== key) {
      charts[metric]?.plot.destroy();
      const plot = new uPlot(
        {
          width: Math.max(280, target.clientWidth),
          height: 200,
          series: chartSeries(metric, lanes),
          axes: [{ stroke: getComputedStyle(document.body).color }, { stroke: getComputedStyle(document.body).color }],
          legend: { live: false },
        },
        data,
        target,
      );
      charts[metric] = { plot, key };
    } else {
      charts[metric].plot.setData(data);
    }
    window.statusCharts.points[metric] = report.series.length;
  }
}

window.addEventListener('resize', () => {
  for (const metric of Object.keys(charts)) {
    const target = $(`chart-${metric}`);
    charts[metric].plot.setSize({ width: Math.max(280, target.clientWidth), height: 200 });
  }
});

function render(report) {
  $('environment').textContent = report.environment;
  const phase = $('phase');
  phase.textContent = report.phase;
  phase.className = `badge ${report.phase === 'failed' ? 'bad' : report.phase === 'finished' ? 'ok' : ''}`;
  $('updated').textContent = `updated ${new Date(report.generatedAt).toLocaleTimeString()}`;
  renderSources(report.sources);
  renderLanes(report.lanes);
  renderCharts(report);
  renderList(
    'schema-changes',
    report.schemaChanges.map((c) => el('li', null, `${c.table}: ${c.change}`)),
    'none',
  );
  renderList(
    'problems',
    [
      ...report.alarms.map((a) =>
        el('li', { class: a.state === 'ALARM' ? 'bad' : undefined }, `${a.name}: ${a.state} — ${a.reason}`),
      ),
      ...report.problems.map((p) => el('li', { class: 'bad' }, p)),
    ],
    'none',
  );
  renderVerdict(report.verdict);
  window.statusReport = report;
  document.body.dataset.phase = report.phase;
  document.body.dataset.generatedAt = report.generatedAt;
}

async function poll() {
  try {
    const response = await fetch('/api/status', { cache: 'no-store' });
    if (response.ok) render(await response.json());
    else $('phase').textContent = `status endpoint answered ${response.status}`;
  } catch {
    // The run ended and its server with it: keep the last state on screen.
    $('phase').textContent = 'disconnected (last state shown)';
    $('phase').className = 'badge';
    return;
  }
  setTimeout(poll, POLL_MS);
}

poll();
