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

function buildFunnel(stages) {
  const f = $('funnel');
  f.textContent = '';
  stages.forEach((s, i) => {
    const row = el('div', 'row', { 'data-stage': s });
    const name = el('div', 'name');
    const sw = el('span', 'swatch');
    sw.style.background = stageColor(i);
    const label = el('span', 'stage-name');
    label.textContent = s;
    name.append(sw, label);
    const barwrap = el('div', 'barwrap');
    const bar = el('div', 'bar');
    bar.style.background = stageColor(i);
    const count = el('span', 'count', { 'data-metric': 'reached', 'data-stage': s });
    barwrap.append(bar, count);
    const conv = el('div', 'num conv', { 'data-metric': 'conversion', 'data-stage': s });
    const active = el('div', 'num', { 'data-metric': 'active', 'data-stage': s });
    const ended = el('div', 'num', { 'data-metric': 'ended', 'data-stage': s });
    row.append(name, barwrap, conv, active, ended);
    f.append(row);
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

function updateFunnel(j) {
  const stages = j.stages || [];
  const key = stages.join(',');
  if (key !== stagesKey) {
    buildFunnel(stages);
    stagesKey = key;
  }
  const reached = stages.map((s) => num(j.reached, s));
  const max = Math.max(1, ...reached);
  stages.forEach((s, i) => {
    const row = document.querySelector(`#funnel .row[data-stage="${CSS.escape(s)}"]`);
    if (!row) return;
    const w = (100 * reached[i]) / max;
    row.querySelector('.bar').style.width = w.toFixed(2) + '%';
    const count = row.querySelector('[data-metric="reached"]');
    setMetric(count, reached[i], fmtInt(reached[i]));
    // the count sits just past the end of the bar, or inside it when the bar is long
    count.classList.toggle('inside', w > 80);
    count.style.left = w > 80 ? '' : `calc(${w.toFixed(2)}% + 10px)`;
    const conv = row.querySelector('[data-metric="conversion"]');
    if (i === 0) {
      setMetric(conv, null, '');
    } else {
      const p = pct(reached[i], reached[i - 1]);
      setMetric(conv, p === null ? null : p.toFixed(1), fmtPct(p));
      conv.title = `${s} / ${stages[i - 1]}`;
    }
    const a = num(j.active, s), e = num(j.ended, s);
    setMetric(row.querySelector('[data-metric="active"]'), a, fmtInt(a));
    setMetric(row.querySelector('[data-metric="ended"]'), e, fmtInt(e));
  });
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

  const first = reached.length ? reached[0] : 0, last = reached.length ? reached[reached.length - 1] : 0;
  const ov = pct(last, first);
  setMetric($('overall'), ov === null ? null : ov.toFixed(1), fmtPct(ov));
  const ss = j.sessions || {};
  setMetric($('sessions-open'), num(ss, 'active'), fmtInt(num(ss, 'active')));
  setMetric($('sessions-started'), num(ss, 'started'), fmtInt(num(ss, 'started')));
  setMetric($('sessions-ended'), num(ss, 'ended'), fmtInt(num(ss, 'ended')));
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

tick();
