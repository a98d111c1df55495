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

  await check('conversion_percent', async () => {
    for (let i = 1; i < expect.stages.length; i++) {
      const s = expect.stages[i], p = expect.stages[i - 1];
      const want = (100 * expect.reached[s] / expect.reached[p]).toFixed(1);
      const { v, t } = await read(cell(s, 'conversion'));
      if (v !== want || t !== want + '%') throw new Error(`${s}: shows ${v} '${t}', want ${want}%`);
    }
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
    rcli('HINCRBY', key('reached'), last, '7');
    rcli('HSET', key('meta'), 'updated_ms', String(Date.now()));
    const t0 = Date.now();
    await waitValue(cell(last, 'reached'), want, 3000);
    const prev = expect.stages[expect.stages.length - 2];
    const conv = (100 * want / expect.reached[prev]).toFixed(1);
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
    if (docsPng) {
      mkdirSync(dirname(docsPng), { recursive: true });
      copyFileSync(png, docsPng);
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
