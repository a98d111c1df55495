// browser.mjs — the web view in headless Chromium (playwright-core), for tests/http/run.sh.
//   node tests/http/browser.mjs URL EXPECT.json REDIS_PORT HARNESS_PID OUT_DIR [DOCS_PNG]
// Prints "PASS name" / "FAIL name: why" per check; exit status 0 unless it could not run.
// Changes Redis (HINCRBY, meta.updated_ms) and finally shuts that Redis down (SHUTDOWN NOSAVE)
// to see the page report it; the caller owns (and restarts) that redis-server.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const [url, expectFile, redisPort, harnessPid, outDir, docsPng] = process.argv.slice(2);
const expect = JSON.parse(readFileSync(expectFile, 'utf8'));
const J = expect.journey;
const key = (suffix) => `clickstage:{${J}}:${suffix}`;
const rcli = (...args) => execFileSync('redis-cli', ['-p', redisPort, ...args], { encoding: 'utf8' }).trim();

let failed = 0;
const pass = (name) => console.log(`PASS browser_${name}`);
const fail = (name, why) => { failed++; console.log(`FAIL browser_${name}: ${why}`); };

const profile = mkdtempSync(join(tmpdir(), 'cs-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
});
const errors = [];
try {
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/503|Failed to load resource|ERR_CONNECTION_REFUSED/.test(m.text())) errors.push(m.text()); });

  // the value an element shows: data-value (raw) and its text
  const read = (sel) => page.$eval(sel, (e) => ({ v: e.dataset.value, t: e.textContent }));
  const cell = (stage, metric) => `#funnel [data-stage="${stage}"] [data-metric="${metric}"]`;
  const waitValue = async (sel, value, ms) => {
    await page.waitForFunction(([s, v]) => {
      const e = document.querySelector(s);
      return e && e.dataset.value === v;
    }, [sel, String(value)], { timeout: ms });
  };
  const check = async (name, fn) => {
    try { await fn(); pass(name); } catch (e) { fail(name, String(e.message || e).split('\n')[0]); }
  };

  await page.goto(url, { waitUntil: 'domcontentloaded' });
  const last = expect.stages[expect.stages.length - 1];
  await check('funnel_loaded', async () => {
    await waitValue(cell(last, 'reached'), expect.reached[last], 5000);
  });

  await check('funnel_order', async () => {
    const shown = await page.$$eval('#funnel .row', (rows) => rows.map((r) => r.dataset.stage));
    if (shown.join(',') !== expect.stages.join(',')) throw new Error(`rows ${shown} != ${expect.stages}`);
  });

  await check('reached_counts', async () => {
    for (const s of expect.stages) {
      const { v, t } = await read(cell(s, 'reached'));
      const want = expect.reached[s];
      if (v !== String(want)) throw new Error(`${s}: data-value ${v} != ${want}`);
      if (t.replace(/,/g, '') !== String(want)) throw new Error(`${s}: text '${t}' != ${want}`);
    }
  });

  // the funnel: sessions that reached at least each stage (the fixture's `reached` would give
  // product 122.5 % of visit), conversion from those, never above 100 %
  await check('funnel_at_least', async () => {
    for (const f of expect.funnel) {
      const { v, t } = await read(cell(f.stage, 'at_least'));
      if (v !== String(f.at_least) || t.replace(/,/g, '') !== String(f.at_least)) throw new Error(`${f.stage}: shows ${v} '${t}', want ${f.at_least}`);
    }
  });

  await check('conversion_percent', async () => {
    for (let i = 1; i < expect.funnel.length; i++) {
      const f = expect.funnel[i];
      const want = (100 * f.conversion).toFixed(1);
      const { v, t } = await read(cell(f.stage, 'conversion'));
      if (v !== want || t !== want + '%') throw new Error(`${f.stage}: shows ${v} '${t}', want ${want}%`);
      if (+v > 100) throw new Error(`${f.stage}: ${v}% above 100`);
    }
    const ex = await page.$eval('#funnel-explain', (e) => e.textContent);
    if (!/reached ≥/.test(ex) || !/entered here/.test(ex) || !/ended here/.test(ex)) throw new Error(`explanation '${ex}'`);
  });

  await check('customer_funnel', async () => {
    for (const f of expect.customer_funnel) {
      const sel = (m) => `#cfunnel [data-stage="${f.stage}"] [data-metric="${m}"]`;
      const a = await read(sel('customers_at_least')), n = await read(sel('customers'));
      if (a.v !== String(f.at_least)) throw new Error(`${f.stage}: at least ${a.v} != ${f.at_least}`);
      if (n.v !== String(f.now)) throw new Error(`${f.stage}: now ${n.v} != ${f.now}`);
      if (f.conversion !== null) {
        const c = await read(sel('customers_conversion'));
        if (c.v !== (100 * f.conversion).toFixed(1)) throw new Error(`${f.stage}: conversion ${c.v}`);
      }
    }
  });

  // SPEC 3.1 identity: the merges line under the customer funnel. The fixture has no identity
  // hash (a journey without identity:, whose JSON has no "identity"): no line. Once the hash
  // exists (what a drain with identity: writes), the line shows its numbers; deleted, gone again.
  const idLine = () => page.$eval('#identity-line', (e) => ({
    hidden: e.hidden, shown: e.getClientRects().length > 0, text: e.textContent,
    merged: e.querySelector('[data-metric="identity_merged"]')?.dataset.value,
    conflicts: e.querySelector('[data-metric="identity_conflicts"]')?.dataset.value,
  }));
  await check('identity_line_absent_without_identity', async () => {
    const l = await idLine();
    if (!l.hidden || l.shown || l.text !== '' || l.merged !== undefined) throw new Error(`shown: ${JSON.stringify(l)}`);
  });
  await check('identity_line_numbers', async () => {
    rcli('HSET', key('identity'), 'merged', '3842', 'conflicts', '17');
    rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
    try {
      await waitValue('#identity-line [data-metric="identity_merged"]', 3842, 5000);
      const l = await idLine();
      if (l.hidden || !l.shown) throw new Error('not visible');
      if (l.conflicts !== '17') throw new Error(`conflicts ${l.conflicts}`);
      const want = "customers are people (identity): 3,842 anonymous device journeys merged into a person's at login · 17 events of another person on an identified device";
      if (l.text !== want) throw new Error(`text '${l.text}'`);
      // under the customer funnel, in its card
      const pos = await page.evaluate(() => {
        const f = document.querySelector('#cfunnel').getBoundingClientRect(), i = document.querySelector('#identity-line').getBoundingClientRect();
        return { f: f.bottom, i: i.top, same: document.querySelector('#identity-line').closest('section') === document.querySelector('#cfunnel').closest('section') };
      });
      if (!(pos.i >= pos.f && pos.same)) throw new Error(`not under the customer funnel: ${JSON.stringify(pos)}`);
      mkdirSync(outDir, { recursive: true });
      const card = await page.$('section.card:has(#cfunnel)');
      await card.screenshot({ path: join(outDir, 'web-identity.png') });
    } finally {
      rcli('DEL', key('identity'));
      rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
    }
    await page.waitForFunction(() => document.querySelector('#identity-line').hidden, null, { timeout: 5000 });
  });

  // median and p90 per stage (seconds, interpolated within the bucket): the values the fixture's
  // histograms give, computed independently by run.sh
  const secs = (x) => (x === null ? '' : x.toFixed(3));
  await check('time_to_stage_median_p90', async () => {
    for (const s of expect.stages) {
      const st = expect.time_to_stats[s];
      for (const [m, lvl, k] of [['time_median', 'sessions', 'median'], ['time_p90', 'sessions', 'p90']]) {
        const { v } = await read(cell(s, m));
        if (v !== secs(st[lvl][k])) throw new Error(`${s} ${m}: ${v} != ${secs(st[lvl][k])}`);
      }
      for (const [m, k] of [['customer_time_median', 'median'], ['customer_time_p90', 'p90']]) {
        const { v, t } = await read(`#cfunnel [data-stage="${s}"] [data-metric="${m}"]`);
        if (v !== secs(st.customers[k])) throw new Error(`${s} ${m}: ${v} != ${secs(st.customers[k])}`);
        if (st.customers[k + '_open'] && !/^> /.test(t)) throw new Error(`${s} ${m}: '${t}' not shown open`);
      }
    }
  });

  await check('time_to_histograms', async () => {
    const bars = async () => page.$$eval('#timeto .tt', (cs) => Object.fromEntries(cs.map((c) => [c.dataset.stage,
      Object.fromEntries([...c.querySelectorAll('rect')].map((r) => [r.dataset.bucket, +r.dataset.value]))])));
    const want = (h) => Object.fromEntries(expect.buckets.map((b) => [b, h[b] || 0]));
    let got = await bars();
    for (const s of expect.stages)
      if (JSON.stringify(got[s]) !== JSON.stringify(want(expect.time_to[s]))) throw new Error(`${s}: sessions ${JSON.stringify(got[s])}`);
    const med = await read(`#timeto .tt[data-stage="${expect.stages[0]}"] [data-metric="tt_median"]`);
    if (med.v !== secs(expect.time_to_stats[expect.stages[0]].sessions.median)) throw new Error(`median ${med.v}`);
    await page.click('#tt-toggle button[data-level="customers"]');
    await page.waitForFunction(() => document.querySelector('#timeto').dataset.level === 'customers');
    got = await bars();
    for (const s of expect.stages)
      if (JSON.stringify(got[s]) !== JSON.stringify(want(expect.customer_time_to[s]))) throw new Error(`${s}: customers ${JSON.stringify(got[s])}`);
    const last_ = expect.stages[expect.stages.length - 1];
    const p90 = await read(`#timeto .tt[data-stage="${last_}"] [data-metric="tt_p90"]`);
    if (p90.v !== secs(expect.time_to_stats[last_].customers.p90)) throw new Error(`customers p90 ${p90.v}`);
    await page.click('#tt-toggle button[data-level="sessions"]');
  });

  await check('flow_links', async () => {
    const links = await page.$$eval('#flow path.link', (ps) => ps.map((p) => [p.dataset.from + '>' + p.dataset.to, +p.dataset.value, +p.getAttribute('stroke-width')]));
    const want = Object.entries(expect.transitions).filter(([, v]) => v > 0);
    if (links.length !== want.length) throw new Error(`${links.length} links, want ${want.length}`);
    const got = Object.fromEntries(links.map(([k, v]) => [k, v]));
    for (const [k, v] of want) if (got[k] !== v) throw new Error(`${k}: ${got[k]} != ${v}`);
    // widths follow the counts
    const w = Object.fromEntries(links.map(([k, , sw]) => [k, sw]));
    if (!(w['_entry>visit'] > w['visit>product'] && w['visit>product'] > w['visit>cart'])) throw new Error(`widths ${JSON.stringify(w)}`);
  });

  await check('breakdown_switchable', async () => {
    const rows = async () => page.$$eval('#by tr[data-value-name]', (trs) => Object.fromEntries(trs.map((tr) => [tr.dataset.valueName,
      Object.fromEntries([...tr.querySelectorAll('td[data-stage]')].map((td) => [td.dataset.stage, +td.dataset.value]))])));
    const want = (h) => {
      const o = {};
      for (const [f, v] of Object.entries(h)) { const i = f.lastIndexOf('/'); (o[f.slice(0, i)] ||= {})[f.slice(i + 1)] = v; }
      return o;
    };
    const cmp = async (dim, metric) => {
      const g = await rows(), e = want(expect.by[dim][metric]);
      for (const [val, st] of Object.entries(e))
        for (const [s, v] of Object.entries(st))
          if ((g[val] || {})[s] !== v) throw new Error(`${dim} ${metric} ${val}/${s}: ${(g[val] || {})[s]} != ${v}`);
      if (Object.keys(g).length !== Object.keys(e).length) throw new Error(`${dim} ${metric}: rows ${Object.keys(g)}`);
    };
    await cmp('channel', 'reached');
    await page.selectOption('#by-metric', 'ended');
    await page.waitForFunction(() => document.querySelector('#by').dataset.metric === 'ended');
    await cmp('channel', 'ended');
    await page.selectOption('#by-dim', 'persona');
    await page.selectOption('#by-metric', 'reached');
    await page.waitForFunction(() => document.querySelector('#by').dataset.dim === 'persona' && document.querySelector('#by').dataset.metric === 'reached');
    await cmp('persona', 'reached');
    await page.selectOption('#by-dim', 'channel');
  });

  await check('open_and_dropoff', async () => {
    for (const s of expect.stages) {
      const a = await read(cell(s, 'active')), e = await read(cell(s, 'ended'));
      if (a.v !== String(expect.active[s] || 0)) throw new Error(`${s} open ${a.v} != ${expect.active[s]}`);
      if (e.v !== String(expect.ended[s] || 0)) throw new Error(`${s} ended ${e.v} != ${expect.ended[s]}`);
    }
    const so = await read('#sessions-open');
    if (so.v !== String(expect.sessions.active)) throw new Error(`sessions open ${so.v}`);
  });

  await check('minute_chart', async () => {
    // the server refreshes its list of minute keys (a SCAN) at most every 5 s, so a list taken
    // while the fixture was still loading can be one poll behind (regression: seen as 59 of 60)
    await page.waitForFunction((want) => document.querySelector('#chart svg')?.dataset.minutes === want,
      String(expect.minutes.length), { timeout: 8000 }).catch(() => {});
    const n = await page.$eval('#chart svg', (s) => s.dataset.minutes);
    if (n !== String(expect.minutes.length)) throw new Error(`chart has ${n} minutes, want ${expect.minutes.length}`);
    const lines = await page.$$eval('#chart polyline', (ps) => ps.map((p) => [p.dataset.stage, p.dataset.last, p.getAttribute('points').split(' ').length]));
    if (lines.length !== expect.stages.length) throw new Error(`${lines.length} polylines`);
    const newest = expect.minutes[expect.minutes.length - 1].reached;
    for (const [s, lastv, npts] of lines) {
      if (npts !== 60) throw new Error(`${s}: ${npts} points`);
      if (lastv !== String(newest[s] || 0)) throw new Error(`${s}: newest minute ${lastv} != ${newest[s]}`);
    }
  });

  await check('status_live', async () => {
    // fresh data: the launch of Chromium on a busy machine can take longer than the 6 s after
    // which the page calls the data stale (regression: flaky in a fresh CI run)
    rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
    await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'live', null, { timeout: 3000 });
    const t = await page.$eval('#status-text', (e) => e.textContent);
    if (!/updated \d+ s ago/.test(t)) throw new Error(`status '${t}'`);
  });

  // rates: the harness adds 20 events and 2 invalid messages every 200 ms while toggled on
  await check('rates', async () => {
    process.kill(Number(harnessPid), 'SIGUSR2');
    try {
      await page.waitForFunction(() => {
        const e = +document.querySelector('#events-rate').dataset.value;
        const i = +document.querySelector('#invalid-rate').dataset.value;
        return e > 70 && e < 130 && i > 7 && i < 13;
      }, null, { timeout: 8000 });
    } finally {
      process.kill(Number(harnessPid), 'SIGUSR2');
    }
  });

  // a flush lands: the page shows the new number without a reload
  await check('live_update', async () => {
    const nav = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    const want = expect.reached[last] + 7;
    const prev = expect.stages[expect.stages.length - 2];
    rcli('HINCRBY', key('reached'), last, '7');
    rcli('HINCRBY', key('transitions'), `${prev}>${last}`, '7');
    rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
    const t0 = Date.now();
    await waitValue(cell(last, 'reached'), want, 3000);
    const fl = expect.funnel[expect.funnel.length - 1], fp = expect.funnel[expect.funnel.length - 2];
    await waitValue(cell(last, 'at_least'), fl.at_least + 7, 1000);
    const conv = (100 * Number(((fl.at_least + 7) / fp.at_least).toFixed(4))).toFixed(1);
    await waitValue(cell(last, 'conversion'), conv, 1000);
    const nav2 = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    if (nav2 !== nav) throw new Error('the page reloaded');
    console.log(`    (shown after ${Date.now() - t0} ms)`);
  });

  // the minute bucket missing so far is written: it shows after the server's next SCAN (<= 5 s)
  await check('minute_bucket_appears', async () => {
    const before = await page.$eval('#chart svg', (s) => s.dataset.inWindow);
    if (before !== '59') throw new Error(`${before} buckets in the window, want 59 (one missing)`);
    for (const [s, n] of Object.entries(expect.gap.reached)) rcli('HINCRBY', key(`minute:${expect.gap.minute}:reached`), s, String(n));
    await page.waitForFunction(() => document.querySelector('#chart svg').dataset.inWindow === '60', null, { timeout: 8000 });
  });

  await check('screenshot', async () => {
    mkdirSync(outDir, { recursive: true });
    process.kill(Number(harnessPid), 'SIGUSR2'); // events flowing, for the picture
    try {
      await page.waitForFunction(() => +document.querySelector('#events-rate').dataset.value > 70, null, { timeout: 8000 });
      rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
      await page.waitForFunction(() => /live · updated [01] s ago/.test(document.querySelector('#status-text').textContent), null, { timeout: 3000 });
      await page.waitForTimeout(600); // bar transitions
    } finally {
      process.kill(Number(harnessPid), 'SIGUSR2');
    }
    const png = join(outDir, 'web.png');
    await page.screenshot({ path: png, fullPage: true });
    // the SPEC §4.1 panels on their own, for the README (web-<name>.png beside web.png)
    const parts = { funnel: '#funnel', timeto: '#timeto', flow: '#flow', breakdown: '#by' };
    for (const [n, sel] of Object.entries(parts)) {
      const card = await page.$(`section.card:has(${sel})`);
      if (!card) throw new Error(`no card for ${sel}`);
      await card.screenshot({ path: join(outDir, `web-${n}.png`) });
    }
    if (docsPng) {
      mkdirSync(dirname(docsPng), { recursive: true });
      copyFileSync(png, docsPng);
      for (const n of Object.keys(parts)) copyFileSync(join(outDir, `web-${n}.png`), join(dirname(docsPng), `web-${n}.png`));
    }
  });

  await check('status_stale', async () => {
    rcli('HSET', key('meta'), 'updated_ms', String(Date.now() - 60000));
    await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'stale', null, { timeout: 3000 });
    const t = await page.$eval('#status-text', (e) => e.textContent);
    if (!/stale/.test(t)) throw new Error(`status '${t}'`);
  });

  // issue 20: Redis answers, but refuses the flushes: the status line names the refusal
  await check('status_redis_refuses', async () => {
    rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
    process.kill(Number(harnessPid), 'SIGWINCH');
    try {
      await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'refused', null, { timeout: 3000 });
      const t = await page.$eval('#status-text', (e) => e.textContent);
      if (!/Redis refuses the daemon's writes for 1\d s \(OOM\) · Redis is out of memory .*OOM command not allowed/.test(t)) throw new Error(`status '${t}'`);
      const png = join(outDir, 'web-redis-refused.png');
      await page.screenshot({ path: png, fullPage: false });
      if (docsPng) copyFileSync(png, join(dirname(docsPng), 'web-redis-refused.png'));
    } finally {
      process.kill(Number(harnessPid), 'SIGWINCH');
    }
    await page.waitForFunction(() => document.querySelector('#status').dataset.state !== 'refused', null, { timeout: 3000 });
  });

  await check('status_redis_down', async () => {
    try { rcli('SHUTDOWN', 'NOSAVE'); } catch (e) { /* the connection drops: expected */ }
    await page.waitForFunction(() => document.querySelector('#status').dataset.state === 'down', null, { timeout: 3000 });
    const t = await page.$eval('#status-text', (e) => e.textContent);
    if (!/Redis down/.test(t)) throw new Error(`status '${t}'`);
    // the last counts stay on the page
    const { v } = await read(cell(last, 'reached'));
    if (v !== String(expect.reached[last] + 7)) throw new Error(`counts cleared: ${v}`);
    await page.screenshot({ path: join(outDir, 'web-redis-down.png'), fullPage: true });
  });

  if (errors.length) fail('no_js_errors', errors.join(' | '));
  else pass('no_js_errors');
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(0);
