// clickstage web view: polls /api/journey (counts from Redis) and /api/metrics (this process's
// counters) every second and updates the page in place. No framework, no build step.
// Every number on the page is an element with data-metric (and data-stage for per-stage
// values) whose data-value holds the raw number; the text is the formatted one.
'use strict';

const POLL_MS = 1000;
// The daemon writes to Redis on every flush and at least every 5 s when idle (a heartbeat), so
// a journey whose updated_ms has not moved for longer than that is stale.
const STALE_MS = 6000;
const RATE_WINDOW = 5; // /api/metrics samples the rates are computed over
const COLORS = ['#4cc9f0', '#80ed99', '#ffd166', '#f78c6b', '#c77dff', '#ef476f', '#06d6a0',
  '#118ab2', '#f4a261', '#a8dadc', '#e9c46a', '#b5179e'];

const $ = (id) => document.getElementById(id);
const SVGNS = 'http://www.w3.org/2000/svg';
const nf = new Intl.NumberFormat('en-US');

let stagesKey = '';
let samples = []; // recent /api/metrics: {t, events, invalid}
let lastJourney = null;
let journeyError = null;
let metricsError = null;
let refusal = null; // /api/metrics redis_refusal: what Redis answers the daemon's flushes with

function fmtInt(n) { return nf.format(n); }
function fmtRate(r) { return r >= 100 ? nf.format(Math.round(r)) : r.toFixed(1); }
function pct(a, b) { return b > 0 ? (100 * a) / b : null; }
function fmtPct(p) { return p === null ? '–' : p.toFixed(1) + '%'; }
function num(o, k) { const v = o && o[k]; return typeof v === 'number' ? v : 0; }

function setMetric(el, value, text) {
  el.dataset.value = value === null ? '' : String(value);
  el.textContent = text;
}

function el(tag, cls, attrs) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function stageColor(i) { return COLORS[i % COLORS.length]; }

// ---- funnel ------------------------------------------------------------------------------
// The bars are sessions that reached AT LEAST each stage (/api/journey's funnel, from the
// transitions: SPEC §4.1), so conversion never exceeds 100 %; `reached` (entered here) stays a
// column. The same for customers from the customers hash (journey stage now).

// a duration in seconds as a short text (pipeline/timeto.c cs_tt_format does the same)
function fmtDur(secs, open) {
  if (secs === null || secs === undefined || secs < 0) return '–';
  if (open) return '> ' + Math.round(secs / 86400) + ' d';
  if (secs < 60) return Math.round(secs) + ' s';
  if (secs < 3600) return (secs / 60).toFixed(1) + ' min';
  if (secs < 86400) return (secs / 3600).toFixed(1) + ' h';
  return (secs / 86400).toFixed(1) + ' d';
}
// a bucket bound on an axis: "0", "1 min", "10 min", "1 h", "1 d", "7 d", "90 d"
function axisDur(secs) {
  if (secs < 60) return secs + ' s';
  if (secs < 3600) return secs / 60 + ' min';
  if (secs < 86400) return secs / 3600 + ' h';
  return secs / 86400 + ' d';
}
function setDur(e, st, which) {
  const v = st ? st[which] : null;
  setMetric(e, v === null || v === undefined ? null : v.toFixed(3), fmtDur(v, st && st[which + '_open']));
}

function stageCells(row, s, i, cls, cells) {
  const name = el('div', 'name');
  const sw = el('span', 'swatch');
  sw.style.background = stageColor(i);
  const label = el('span', 'stage-name');
  label.textContent = s;
  name.append(sw, label);
  const barwrap = el('div', 'barwrap');
  const bar = el('div', 'bar');
  bar.style.background = stageColor(i);
  const count = el('span', 'count', { 'data-metric': cells[0], 'data-stage': s });
  barwrap.append(bar, count);
  row.append(name, barwrap);
  for (const m of cells.slice(1)) row.append(el('div', 'num ' + (m.includes('conversion') ? 'conv' : ''), { 'data-metric': m, 'data-stage': s }));
}

function buildFunnel(stages) {
  const f = $('funnel'), c = $('cfunnel');
  f.textContent = '';
  c.textContent = '';
  stages.forEach((s, i) => {
    const row = el('div', 'row', { 'data-stage': s });
    stageCells(row, s, i, 'row', ['at_least', 'conversion', 'reached', 'active', 'ended', 'time_median', 'time_p90']);
    f.append(row);
    const crow = el('div', 'row', { 'data-stage': s });
    stageCells(crow, s, i, 'row', ['customers_at_least', 'customers_conversion', 'customers', 'customer_time_median', 'customer_time_p90']);
    c.append(crow);
  });
  const legend = $('legend');
  legend.textContent = '';
  stages.forEach((s, i) => {
    const item = el('span', 'item');
    const sw = el('span', 'swatch');
    sw.style.background = stageColor(i);
    item.append(sw, document.createTextNode(s));
    legend.append(item);
  });
}

function setBar(row, metric, v, max) {
  const w = (100 * v) / max;
  row.querySelector('.bar').style.width = w.toFixed(2) + '%';
  const count = row.querySelector(`[data-metric="${metric}"]`);
  setMetric(count, v, fmtInt(v));
  // the count sits just past the end of the bar, or inside it when the bar is long
  count.classList.toggle('inside', w > 80);
  count.style.left = w > 80 ? '' : `calc(${w.toFixed(2)}% + 10px)`;
}

function setConv(e, c, title) {
  if (c === null || c === undefined) { setMetric(e, null, ''); return; }
  const p = 100 * c;
  setMetric(e, p.toFixed(1), fmtPct(p));
  e.title = title;
}

function updateFunnel(j) {
  const stages = j.stages || [];
  const key = stages.join(',');
  if (key !== stagesKey) {
    buildFunnel(stages);
    stagesKey = key;
    buildTimeTo(stages);
  }
  const fun = j.funnel || [], cf = j.customer_funnel || [];
  const stats = j.time_to_stats || {};
  const max = Math.max(1, ...fun.map((x) => x.at_least));
  const cmax = Math.max(1, ...cf.map((x) => x.at_least));
  stages.forEach((s, i) => {
    const row = document.querySelector(`#funnel .row[data-stage="${CSS.escape(s)}"]`);
    const x = fun[i];
    if (!row || !x) return;
    setBar(row, 'at_least', x.at_least, max);
    setConv(row.querySelector('[data-metric="conversion"]'), i ? x.conversion : null, `${s} / ${stages[i - 1]}, reached at least`);
    setMetric(row.querySelector('[data-metric="reached"]'), x.entered, fmtInt(x.entered));
    setMetric(row.querySelector('[data-metric="active"]'), x.active, fmtInt(x.active));
    setMetric(row.querySelector('[data-metric="ended"]'), x.ended, fmtInt(x.ended));
    const st = stats[s] || {};
    setDur(row.querySelector('[data-metric="time_median"]'), st.sessions, 'median');
    setDur(row.querySelector('[data-metric="time_p90"]'), st.sessions, 'p90');
    const crow = document.querySelector(`#cfunnel .row[data-stage="${CSS.escape(s)}"]`);
    const y = cf[i];
    if (!crow || !y) return;
    setBar(crow, 'customers_at_least', y.at_least, cmax);
    setConv(crow.querySelector('[data-metric="customers_conversion"]'), i ? y.conversion : null, `${s} / ${stages[i - 1]}, customers at least`);
    setMetric(crow.querySelector('[data-metric="customers"]'), y.now, fmtInt(y.now));
    setDur(crow.querySelector('[data-metric="customer_time_median"]'), st.customers, 'median');
    setDur(crow.querySelector('[data-metric="customer_time_p90"]'), st.customers, 'p90');
  });
  /* SPEC 3.1 identity: customers are persons; the merges and conflicts beside them. /api/journey
   * has "identity" exactly when the journey's identity hash exists (never without identity:) */
  const idl = $('identity-line');
  if (idl) {
    const id = j.identity;
    if (id) {
      const m = el('span', '', { 'data-metric': 'identity_merged' });
      const c = el('span', '', { 'data-metric': 'identity_conflicts' });
      setMetric(m, num(id, 'merged'), fmtInt(num(id, 'merged')));
      setMetric(c, num(id, 'conflicts'), fmtInt(num(id, 'conflicts')));
      const t = (s) => document.createTextNode(s);
      idl.replaceChildren(t('customers are people (identity): '), m,
        t(" anonymous device journeys merged into a person's at login · "), c,
        t(' events of another person on an identified device'));
      idl.hidden = false;
    } else {
      idl.replaceChildren();
      idl.hidden = true;
    }
  }
  const none = $('funnel-none');
  const na = num(j.active, '_none'), ne = num(j.ended, '_none');
  none.innerHTML = '';
  const t = el('span');
  t.textContent = 'no stage yet: ';
  const a = el('span', '', { 'data-metric': 'active', 'data-stage': '_none' });
  setMetric(a, na, fmtInt(na));
  const mid = el('span');
  mid.textContent = ' open, ';
  const e = el('span', '', { 'data-metric': 'ended', 'data-stage': '_none' });
  setMetric(e, ne, fmtInt(ne));
  const tail = el('span');
  tail.textContent = ' ended without reaching a stage';
  none.append(t, a, mid, e, tail);

  const first = fun.length ? fun[0].at_least : 0, last = fun.length ? fun[fun.length - 1].at_least : 0;
  const ov = pct(last, first);
  setMetric($('overall'), ov === null ? null : ov.toFixed(1), fmtPct(ov));
  const ss = j.sessions || {};
  setMetric($('sessions-open'), num(ss, 'active'), fmtInt(num(ss, 'active')));
  setMetric($('sessions-started'), num(ss, 'started'), fmtInt(num(ss, 'started')));
  setMetric($('sessions-ended'), num(ss, 'ended'), fmtInt(num(ss, 'ended')));
}

// ---- time to stage: a histogram per stage ----------------------------------------------------

let ttLevel = 'sessions';
function buildTimeTo(stages) {
  const box = $('timeto');
  box.textContent = '';
  stages.forEach((s, i) => {
    const c = el('div', 'tt', { 'data-stage': s });
    const head = el('div', 'head');
    const sw = el('span', 'swatch');
    sw.style.background = stageColor(i);
    const name = el('span', 'stage-name');
    name.textContent = s;
    head.append(sw, name);
    for (const [k, label] of [['median', 'median'], ['p90', 'p90'], ['n', 'n']]) {
      const st = el('span', 'stat');
      st.append(document.createTextNode(label + ' '));
      st.append(el('b', '', { 'data-metric': 'tt_' + k, 'data-stage': s }));
      head.append(st);
    }
    c.append(head, el('div', 'hist'));
    box.append(c);
  });
}

function updateTimeTo(j) {
  const stages = j.stages || [], buckets = j.buckets || [];
  const hists = (ttLevel === 'sessions' ? j.time_to : j.customer_time_to) || {};
  const stats = j.time_to_stats || {};
  $('timeto').dataset.level = ttLevel;
  stages.forEach((s, si) => {
    const c = document.querySelector(`#timeto .tt[data-stage="${CSS.escape(s)}"]`);
    if (!c) return;
    const st = (stats[s] || {})[ttLevel] || {};
    setDur(c.querySelector('[data-metric="tt_median"]'), st, 'median');
    setDur(c.querySelector('[data-metric="tt_p90"]'), st, 'p90');
    setMetric(c.querySelector('[data-metric="tt_n"]'), st.n || 0, fmtInt(st.n || 0));
    const h = hists[s] || {};
    const W = 380, H = 92, B = 16, n = buckets.length || 1, bw = W / n;
    const vals = buckets.map((b) => num(h, b));
    const max = Math.max(1, ...vals);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `time to ${s}` });
    vals.forEach((v, i) => {
      const bh = ((H - B - 4) * v) / max;
      g.append(svg('rect', { x: (i * bw + 1).toFixed(1), y: (H - B - bh).toFixed(1), width: (bw - 2).toFixed(1),
        height: bh.toFixed(1), fill: stageColor(si), opacity: 0.85, 'data-bucket': buckets[i], 'data-value': String(v) }));
    });
    // the median and p90 as marks at their place on the bucket axis (interpolated like the values)
    const pos = (secs) => {
      if (secs === null || secs === undefined) return null;
      for (let i = 0; i < buckets.length; i++) {
        const hi = buckets[i] === 'inf' ? Infinity : +buckets[i], lo = i ? +buckets[i - 1] : 0;
        if (secs <= hi) return i === 0 ? bw / 2 : (i + (hi === Infinity ? 0 : (secs - lo) / (hi - lo))) * bw;
      }
      return W;
    };
    for (const [k, dash] of [['median', ''], ['p90', '3,2']]) {
      const x = pos(st[k]);
      if (x === null) continue;
      g.append(svg('line', { x1: x, x2: x, y1: 2, y2: H - B, stroke: '#e6ebf5', 'stroke-width': 1, 'stroke-dasharray': dash, class: 'mark-' + k }));
    }
    for (const i of [0, 3, 6, 8, 12, 14, 17]) {
      if (i >= buckets.length) continue;
      const t = svg('text', { x: (i * bw + bw / 2).toFixed(1), y: H - 3, 'text-anchor': 'middle', class: 'axis' });
      t.textContent = axisDur(+buckets[i]);
      g.append(t);
    }
    c.querySelector('.hist').replaceChildren(g);
  });
}

// ---- flow: a Sankey-style diagram of the transitions -----------------------------------------

function updateFlow(j) {
  const stages = j.stages || [];
  const nodes = ['_entry', ...stages];
  const idx = new Map(nodes.map((n, i) => [n, i]));
  const links = [];
  for (const [k, v] of Object.entries(j.transitions || {})) {
    const gt = k.indexOf('>');
    const a = idx.get(k.slice(0, gt)), b = idx.get(k.slice(gt + 1));
    if (a === undefined || b === undefined || !(v > 0) || b <= a) continue;
    links.push({ a, b, v, key: k });
  }
  const inflow = nodes.map(() => 0), outflow = nodes.map(() => 0);
  for (const l of links) { outflow[l.a] += l.v; inflow[l.b] += l.v; }
  const size = nodes.map((n, i) => Math.max(inflow[i], outflow[i], i ? num(j.ended, n) + num(j.active, n) + outflow[i] : 0));
  // room on the right for the last node's labels (all labels start at their node)
  const W = 1180, H = 300, T = 34, NW = 14, gapX = (W - NW - 20 - 150) / Math.max(1, nodes.length - 1);
  const maxSize = Math.max(1, ...size);
  const k = (H - T - 40) / maxSize;
  const x = (i) => 20 + i * gapX;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'transitions flow' });
  // links, stacked at both ends in the order of the other end
  const outY = nodes.map(() => T), inY = nodes.map(() => T);
  links.sort((p, q) => p.a - q.a || p.b - q.b);
  const order = [...links].sort((p, q) => p.b - q.b || p.a - q.a);
  const y0 = new Map(), y1 = new Map();
  for (const l of links) { y0.set(l, outY[l.a]); outY[l.a] += l.v * k; }
  for (const l of order) { y1.set(l, inY[l.b]); inY[l.b] += l.v * k; }
  for (const l of links) {
    const w = Math.max(1, l.v * k), xa = x(l.a) + NW, xb = x(l.b);
    const ya = y0.get(l) + w / 2, yb = y1.get(l) + w / 2, xm = (xa + xb) / 2;
    const back = l.b !== l.a + 1;
    const p = svg('path', { d: `M${xa},${ya} C${xm},${ya} ${xm},${yb} ${xb},${yb}`, fill: 'none',
      stroke: stageColor(Math.max(0, l.b - 1)), 'stroke-width': w.toFixed(2), 'stroke-opacity': back ? 0.3 : 0.5,
      'data-from': nodes[l.a], 'data-to': nodes[l.b], 'data-value': String(l.v), class: 'link' });
    const tt = svg('title');
    tt.textContent = `${l.key}: ${fmtInt(l.v)}`;
    p.append(tt);
    g.append(p);
  }
  nodes.forEach((n, i) => {
    const h = Math.max(2, size[i] * k);
    g.append(svg('rect', { x: x(i), y: T, width: NW, height: h, rx: 2, fill: i ? stageColor(i - 1) : '#8b96ad',
      'data-node': n, 'data-value': String(i ? inflow[i] : outflow[i]) }));
    const t = svg('text', { x: x(i), y: T - 18, class: 'label' });
    t.textContent = i ? n : 'session start';
    g.append(t);
    const sub = svg('text', { x: x(i), y: T - 5, class: 'sub', 'data-node': n });
    sub.textContent = i ? `in ${fmtInt(inflow[i])} · ended ${fmtInt(num(j.ended, n))}` : `${fmtInt(outflow[i])} reached a stage`;
    g.append(sub);
  });
  g.dataset.links = String(links.length);
  $('flow').replaceChildren(g);
}

// ---- breakdown by a dimension -----------------------------------------------------------------

const BY_ROWS = 12;
function updateBy(j) {
  const dims = j.dimensions || [];
  const sel = $('by-dim');
  if (sel.dataset.dims !== dims.join(',')) {
    const keep = sel.value;
    sel.textContent = '';
    for (const d of dims) { const o = el('option'); o.value = d; o.textContent = d; sel.append(o); }
    if (dims.includes(keep)) sel.value = keep;
    sel.dataset.dims = dims.join(',');
  }
  const box = $('by');
  const dim = sel.value, metric = $('by-metric').value;
  box.dataset.dim = dim || '';
  box.dataset.metric = metric;
  if (!dim) { box.textContent = 'no dimensions in the rule file'; return; }
  const h = ((j.by || {})[dim] || {})[metric] || {};
  const stages = j.stages || [];
  const cols = metric === 'reached' ? stages : [...stages, '_none'];
  const rows = new Map();
  for (const [f, v] of Object.entries(h)) {
    const cut = f.lastIndexOf('/');
    const val = f.slice(0, cut), st = f.slice(cut + 1);
    if (!rows.has(val)) rows.set(val, {});
    rows.get(val)[st] = (rows.get(val)[st] || 0) + v;
  }
  const total = (r) => cols.reduce((a, c) => a + (r[c] || 0), 0);
  const sorted = [...rows.entries()].sort((a, b) => total(b[1]) - total(a[1]) || (a[0] < b[0] ? -1 : 1));
  const colTotal = cols.map((c) => sorted.reduce((a, [, r]) => a + (r[c] || 0), 0));
  const table = el('table');
  const hr = el('tr');
  const th0 = el('th');
  th0.textContent = dim;
  hr.append(th0);
  for (const c of cols) { const th = el('th'); th.textContent = c; hr.append(th); }
  table.append(hr);
  for (const [val, r] of sorted.slice(0, BY_ROWS)) {
    const tr = el('tr', '', { 'data-value-name': val });
    const td0 = el('td');
    td0.textContent = val;
    tr.append(td0);
    cols.forEach((c, ci) => {
      const v = r[c] || 0;
      const td = el('td', '', { 'data-stage': c, 'data-value': String(v) });
      td.textContent = fmtInt(v);
      const share = pct(v, colTotal[ci]);
      if (share !== null && v) { const sp = el('span', 'pct'); sp.textContent = share.toFixed(0) + '%'; td.append(sp); }
      tr.append(td);
    });
    table.append(tr);
  }
  const more = el('div', 'more');
  more.textContent = sorted.length > BY_ROWS ? `${sorted.length - BY_ROWS} more values not shown (top ${BY_ROWS} by total)` : `${sorted.length} values; % = share of the stage's column`;
  box.replaceChildren(table, more);
}

// ---- per-minute chart ----------------------------------------------------------------------

function minuteToMs(m) {
  return Date.UTC(+m.slice(0, 4), +m.slice(4, 6) - 1, +m.slice(6, 8), +m.slice(8, 10), +m.slice(10, 12));
}
function hhmm(ms) {
  const d = new Date(ms);
  return String(d.getUTCHours()).padStart(2, '0') + ':' + String(d.getUTCMinutes()).padStart(2, '0');
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// a round grid step (1, 2, 5 x 10^k) giving at most 5 steps up to v, and the axis maximum
function niceScale(v) {
  v = Math.max(v, 1);
  let p = Math.pow(10, Math.floor(Math.log10(v / 5)));
  for (;;) {
    for (const m of [1, 2, 5]) {
      const step = Math.max(1, m * p);
      if (v / step <= 5) return { step, max: Math.ceil(v / step) * step };
    }
    p *= 10;
  }
}

function updateChart(j) {
  const box = $('chart');
  const stages = j.stages || [];
  const minutes = j.minutes || [];
  const W = 900, H = 240, L = 56, R = 12, T = 12, B = 28;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': 'reaches per minute' });
  s.dataset.minutes = String(minutes.length);
  if (!minutes.length) {
    const t = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' });
    t.textContent = 'no minute buckets yet';
    s.append(t);
    box.replaceChildren(s);
    return;
  }
  const end = minuteToMs(minutes[minutes.length - 1].minute);
  const start = end - 59 * 60000;
  const byMinute = new Map(minutes.map((m) => [minuteToMs(m.minute), m.reached || {}]));
  let max = 1, inWindow = 0;
  for (const [t, r] of byMinute) {
    if (t < start) continue;
    inWindow++;
    for (const st of stages) max = Math.max(max, num(r, st));
  }
  s.dataset.inWindow = String(inWindow);
  const scale = niceScale(max);
  max = scale.max;
  const x = (i) => L + (i * (W - L - R)) / 59;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (let v = 0; v <= max; v += scale.step) {
    s.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    const t = svg('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' });
    t.textContent = fmtInt(Math.round(v));
    s.append(t);
  }
  for (const i of [0, 15, 30, 45, 59]) {
    const t = svg('text', { x: x(i), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 59 ? 'end' : 'middle', class: 'axis' });
    t.textContent = hhmm(start + i * 60000);
    s.append(t);
  }
  stages.forEach((st, si) => {
    const pts = [];
    for (let i = 0; i < 60; i++) {
      const r = byMinute.get(start + i * 60000);
      pts.push(`${x(i).toFixed(1)},${y(r ? num(r, st) : 0).toFixed(1)}`);
    }
    s.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: stageColor(si),
      'stroke-width': 2, 'stroke-linejoin': 'round', 'vector-effect': 'non-scaling-stroke',
      'data-stage': st, 'data-last': String(num(byMinute.get(end), st)) }));
  });
  box.replaceChildren(s);
}

// ---- rates from /api/metrics ---------------------------------------------------------------

function updateRates(m) {
  const t = m.now_ms; // when the daemon took the snapshot: counters move only then
  if (!samples.length || samples[samples.length - 1].t !== t) {
    samples.push({ t, events: m.events_total, invalid: m.invalid_total });
    if (samples.length > RATE_WINDOW) samples.shift();
  }
  if (samples.length >= 2) {
    const a = samples[0], b = samples[samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    if (dt > 0 && b.events >= a.events && b.invalid >= a.invalid) {
      const er = (b.events - a.events) / dt, ir = (b.invalid - a.invalid) / dt;
      setMetric($('events-rate'), er.toFixed(2), fmtRate(er));
      setMetric($('invalid-rate'), ir.toFixed(2), fmtRate(ir));
    } else if (b.events < a.events) {
      samples = [b]; // the daemon restarted
    }
  }
  $('version').textContent = 'clickstage ' + m.version;
}

// ---- status line ---------------------------------------------------------------------------

function setStatus(state, text) {
  const st = $('status');
  st.dataset.state = state;
  $('status-text').textContent = text;
  document.body.dataset.state = state;
}

function ago(ms) {
  const s = Math.max(0, ms / 1000);
  return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}

function updateStatus() {
  if (journeyError) {
    setStatus('down', journeyError);
    return;
  }
  const j = lastJourney;
  if (!j) return;
  if (typeof j.updated_ms !== 'number') {
    setStatus('stale', 'no counts in Redis yet for this journey');
    return;
  }
  const age = j.server_ms - j.updated_ms;
  const extra = metricsError ? ' · ' + metricsError : '';
  if (refusal && refusal.class !== 'unreachable') {
    // Redis answers, but refuses the daemon's flushes: the counts shown stop moving
    const since = typeof refusal.since_ms === 'number' ? ` for ${ago(j.server_ms - refusal.since_ms).replace(' ago', '')}` : '';
    setStatus('refused', `Redis refuses the daemon's writes${since} (${refusal.class.toUpperCase()}) · ${refusal.meaning} · ${refusal.text}`);
    return;
  }
  if (age > STALE_MS) setStatus('stale', `stale · updated ${ago(age)}${extra}`);
  else setStatus('live', `live · updated ${ago(age)}${extra}`);
}

// ---- polling -------------------------------------------------------------------------------

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return { ok: r.ok, status: r.status, body };
}

async function pollJourney() {
  try {
    const r = await getJSON('/api/journey');
    if (r.ok && r.body) {
      journeyError = null;
      lastJourney = r.body;
      $('journey').textContent = r.body.journey;
      document.title = `clickstage · ${r.body.journey}`;
      updateFunnel(r.body);
      updateTimeTo(r.body);
      updateFlow(r.body);
      updateBy(r.body);
      updateChart(r.body);
      $('rules').textContent = r.body.rules_sha256 ? 'rules ' + r.body.rules_sha256.slice(0, 12) : '';
      $('seq').textContent = r.body.seq !== null && r.body.seq !== undefined ? 'flush #' + r.body.seq : '';
    } else {
      journeyError = 'Redis down' + (r.body && r.body.error ? ': ' + r.body.error : ` (HTTP ${r.status})`);
    }
  } catch (e) {
    journeyError = 'clickstage unreachable';
  }
  updateStatus();
}

async function pollMetrics() {
  try {
    const r = await getJSON('/api/metrics');
    if (r.ok && r.body) {
      metricsError = null;
      refusal = r.body.redis_refusal || null;
      updateRates(r.body);
    } else {
      metricsError = `/api/metrics: HTTP ${r.status}`;
    }
  } catch (e) {
    metricsError = null; // the journey poll reports an unreachable daemon
  }
}

async function tick() {
  await Promise.all([pollJourney(), pollMetrics()]);
  setTimeout(tick, POLL_MS);
}

for (const b of document.querySelectorAll('#tt-toggle button')) {
  b.addEventListener('click', () => {
    ttLevel = b.dataset.level;
    for (const o of document.querySelectorAll('#tt-toggle button')) o.classList.toggle('on', o === b);
    if (lastJourney) updateTimeTo(lastJourney);
  });
}
for (const id of ['by-dim', 'by-metric']) $(id).addEventListener('change', () => { if (lastJourney) updateBy(lastJourney); });

tick();
