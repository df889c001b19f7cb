// Browser tests of the console, run by internal/e2e (TestConsoleBrowser), which starts
// livrec and sets:
//   LIVREC_URL      the console (http://127.0.0.1:port)
//   LIVREC_RTMP     rtmp://127.0.0.1:port (apps "live": m3u8 + flv, delayTime 15)
//   LIVREC_SOURCE   an FLV file of about 20 s to push
//   LIVREC_TOKEN_URL, LIVREC_TOKEN  a second livrec with apiTokens (login scenario)
//   SCREENSHOTS     where each page's screenshot goes
// Each step asserts on the page's state; a failure exits non-zero with the step's name.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = need('LIVREC_URL'), rtmp = need('LIVREC_RTMP'), source = need('LIVREC_SOURCE');
const shots = process.env.SCREENSHOTS || '.';
mkdirSync(shots, { recursive: true });

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`${name} is not set`); process.exit(2); }
  return v;
}

const started = Date.now();
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function assert(cond, msg) { if (!cond) throw new Error('assertion failed: ' + msg); }

// push publishes the source in real time; resolves when ffmpeg exits.
function push(stream) {
  const p = spawn('ffmpeg', ['-v', 'error', '-re', '-i', source, '-c', 'copy', '-f', 'flv', `${rtmp}/live/${stream}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  return { proc: p, done: new Promise((resolve) => p.on('exit', resolve)) };
}

async function api(path, init) {
  const r = await fetch(base + '/api/v1' + path, init);
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(shots, name + '.png'), fullPage });
}

// videoState reads the player's state.
const videoState = (page) => page.evaluate(() => {
  const v = document.querySelector('#player');
  return v && { t: v.currentTime, d: v.duration, paused: v.paused, rs: v.readyState, w: v.videoWidth, engine: v.dataset.engine,
    err: v.error && v.error.code, msg: document.querySelector('#player-error')?.textContent || '' };
});

// playsOn asserts that currentTime advances by at least 1 s within 4 s.
async function playsOn(page, what) {
  const t0 = (await videoState(page)).t;
  for (let i = 0; i < 40; i++) {
    await sleep(100);
    const s = await videoState(page);
    assert(!s.err && !s.msg, `${what}: playback error ${s.err} ${s.msg}`);
    if (s.t >= t0 + 1) return s;
  }
  const s = await videoState(page);
  throw new Error(`${what}: currentTime went from ${t0} to ${s.t} in 4 s (${JSON.stringify(s)})`);
}

async function waitPlaying(page, what, timeout = 15000) {
  await page.waitForFunction(() => {
    const v = document.querySelector('#player');
    return v && v.readyState >= 3 && v.currentTime > 0 && !v.paused;
  }, null, { timeout }).catch(async (e) => { throw new Error(`${what}: not playing: ${JSON.stringify(await videoState(page))} (${e.message})`); });
}

const steps = [];
const step = (name, fn) => steps.push({ name, fn });

let browser, page;
const errors = [];
let cam, stopme, pushStart, camDomain;

step('live page shows the push within 2 s with its bitrate', async () => {
  await page.goto(base + '/#/live');
  await page.waitForSelector('#live-empty');
  assert(!(await page.locator('#live-table').isVisible()), 'no table before any push');
  pushStart = Date.now();
  cam = push('cam');
  stopme = push('stopme');
  const row = page.locator('tr[data-stream$="/live/cam"]');
  await row.locator('td.bitrate[data-bps]:not([data-bps="0"])').waitFor({ timeout: 2000 });
  const shown = Date.now() - pushStart;
  const bps = Number(await row.locator('td.bitrate').getAttribute('data-bps'));
  log(`stream with bitrate ${bps} bit/s shown ${shown} ms after the push started`);
  assert(shown <= 2000, `shown after ${shown} ms`);
  assert(bps > 10000, `bitrate ${bps}`);
  assert(/kbit\/s|Mbit\/s/.test(await row.locator('td.bitrate').textContent()), 'bitrate text');
  await page.waitForFunction(() => document.querySelector('tr[data-stream$="/live/cam"] td.res')?.textContent.includes('320×240'), null, { timeout: 5000 });
  assert((await row.locator('td.state').textContent()).includes('RECORDING'), 'state RECORDING');
  assert((await row.locator('td.codecs').textContent()).includes('h264'), 'codecs');
  assert((await row.locator('td.rule').textContent()).includes('m3u8, flv, mp4'), 'matched rule');
  camDomain = (await row.getAttribute('data-stream')).split('/')[0];
  await shot(page, 'live');
});

step('a manual stop from the live page pauses the task', async () => {
  const row = page.locator('tr[data-stream$="/live/stopme"]');
  await row.waitFor();
  await row.locator('button[data-cmd="stop"]').click();
  await page.waitForSelector('tr[data-stream$="/live/stopme"][data-state="paused"]', { timeout: 3000 });
  assert((await row.locator('td.state').textContent()).includes('PAUSED'), 'badge PAUSED');
  assert(await row.locator('button[data-cmd="start"]').isEnabled(), 'start enabled again');
  const { streams } = await api('/streams');
  assert(streams.find((s) => s.stream === 'stopme').state === 'paused', 'API state paused');
  // cam is untouched
  assert((await page.locator('tr[data-stream$="/live/cam"]').getAttribute('data-state')) === 'recording', 'cam still recording');
});

step('the recording in progress plays and currentTime advances', async () => {
  const wait = pushStart + 7000 - Date.now(); // the first 5 s segment is stored
  if (wait > 0) await sleep(wait);
  await page.locator('tr[data-stream$="/live/cam"] a', { hasText: 'Watch' }).click();
  await page.waitForSelector('#player');
  assert(await page.locator('h1 .badge.recording').isVisible(), 'LIVE badge');
  await waitPlaying(page, 'live playlist');
  const s = await playsOn(page, 'live playlist');
  assert(s.engine === 'hls.js' && s.w === 320, `engine ${s.engine}, width ${s.w}`);
  const src = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/live/')));
  assert(src.length > 0, 'loaded /live/{id}.m3u8');
  await shot(page, 'player-live');
  // Back to the start of the recording, and it plays on from there.
  const before = (await videoState(page)).t;
  await page.click('#go-start');
  await page.waitForFunction((b) => document.querySelector('#player').currentTime < Math.min(b, 2), before, { timeout: 5000 })
    .catch(async () => { throw new Error(`no jump back: ${JSON.stringify(await videoState(page))}`); });
  await playsOn(page, 'live playlist after going back');
});

step('after the push and the stitch window the recordings are listed', async () => {
  await Promise.all([cam.done, stopme.done]);
  log('pushes ended');
  // End the stitch window now instead of waiting delayTime (15 s) out.
  await api(`/streams/${encodeURIComponent(camDomain)}/live/cam/record`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"command":"cancel_delay"}' });
  await page.goto(base + '/#/recordings?stream=cam');
  for (let i = 0; ; i++) {
    await page.waitForSelector('#rec-table');
    const done = await page.locator('#rec-table tr[data-status="done"]').count();
    if (done === 3) break;
    assert(i < 20, `recordings of cam done: ${done}`);
    await sleep(250);
    await page.reload();
  }
  assert(await page.locator('#rec-table tr[data-format="m3u8"] a.play').isVisible(), 'm3u8 Play');
  assert(await page.locator('#rec-table tr[data-format="flv"] a[download]').isVisible(), 'flv Download');
  assert((await page.locator('#rec-count').textContent()).includes('of 3'), 'count');
});

step('the recordings page lists 1 000+ recordings, paged', async () => {
  const fresh = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const t = Date.now();
  await fresh.goto(base + '/#/recordings');
  await fresh.locator('#rec-count', { hasText: /^1–50 of 100\d$/ }).waitFor({ timeout: 5000 });
  const took = Date.now() - t;
  const timing = await fresh.evaluate(() => ({ ready: Math.round(performance.getEntriesByName('recordings-rendered')[0].startTime),
    res: performance.getEntriesByType('resource').map((e) => `${e.name.replace(location.origin, '')} ${Math.round(e.startTime)}+${Math.round(e.duration)}`) }));
  log(`in the page: ready ${timing.ready} ms after navigation start; ${timing.res.join(', ')}`);
  log(`recordings page (a fresh tab, 50 of ${(await fresh.locator('#rec-count').textContent()).split(' of ')[1]}) ready in ${took} ms`);
  // Reported, not asserted: a shared CI machine makes any wall-clock limit flaky.
  assert(await fresh.locator('#rec-table tbody tr').count() === 50, '50 rows');
  await shot(fresh, 'recordings');
  await shot(fresh, 'recordings-screen', false); // the README's picture
  await fresh.click('a[rel=next]');
  await fresh.locator('#rec-count', { hasText: /^51–100 of/ }).waitFor({ timeout: 3000 });
  await fresh.close();
});

step('the finished m3u8 recording plays, seeks to the middle and plays on', async () => {
  await page.goto(base + '/#/recordings?stream=cam&format=m3u8');
  await page.locator('#rec-table tr[data-format="m3u8"] a.play').click();
  await waitPlaying(page, 'm3u8');
  let s = await videoState(page);
  assert(s.engine === 'hls.js' && s.d > 15 && s.d < 25, `m3u8 duration ${s.d}, engine ${s.engine}`);
  const mid = s.d / 2;
  await page.evaluate((m) => { document.querySelector('#player').currentTime = m; }, mid);
  await page.waitForFunction((m) => { const v = document.querySelector('#player'); return v.currentTime >= m && v.readyState >= 3; }, mid, { timeout: 8000 });
  s = await playsOn(page, 'after the seek');
  assert(s.t >= mid + 1 && s.t < mid + 6, `currentTime ${s.t} after seeking to ${mid}`);
  await shot(page, 'player');
});

// playsFile opens the cam recording of a format from the list and checks that it plays
// with the expected engine.
async function playsFile(format, engine) {
  await page.goto(base + '/#/recordings?stream=cam&format=' + format);
  await page.locator(`#rec-table tr[data-format="${format}"] a.play`).click();
  await waitPlaying(page, format);
  const s = await playsOn(page, format);
  assert(s.engine === engine && s.w === 320 && s.d > 15, `${format}: engine ${s.engine}, width ${s.w}, duration ${s.d}`);
}

step('the FLV recording plays with mpegts.js', async () => {
  await playsFile('flv', 'mpegts.js');
  await shot(page, 'player-flv');
});

step('the MP4 recording plays in the browser\'s own player', () => playsFile('mp4', 'native'));

// The Go side pushed the source to live/vodcam (a VOD rule) before the browser started:
// its asset exists once the stitch window ended.
step('the VOD assets page lists the asset with its status and duration, and plays it with hls.js', async () => {
  for (let i = 0; ; i++) {
    const l = await api('/assets?streamName=vodcam');
    if (l.total >= 1) break;
    assert(i < 40, 'no vodcam asset after 20 s');
    await sleep(500);
  }
  await page.goto(base + '/#/assets?streamName=vodcam');
  await page.waitForSelector('#asset-table tbody tr');
  const row = page.locator('#asset-table tbody tr').first();
  assert(await row.getAttribute('data-status') === 'Normal', 'asset status');
  assert((await row.locator('.badge').textContent()) === 'Normal', 'status badge');
  const dur = await row.locator('td.duration').textContent();
  assert(/^0:(1[5-9]|2[0-5])$/.test(dur), `asset duration ${dur}, want about 20 s`);
  assert(await row.locator('.thumb').count() === 1, 'cover thumbnail (or its placeholder)');
  assert((await page.locator('#asset-count').textContent()) === '1–1 of 1', 'asset count');
  assert(await page.locator('#nav a[data-page="assets"]').getAttribute('aria-current') !== null, 'nav marks the assets page');
  await shot(page, 'assets');
  await row.locator('a.play').click();
  await page.waitForSelector('#player');
  await waitPlaying(page, 'asset');
  const s = await playsOn(page, 'asset');
  assert(s.engine === 'hls.js' && s.w === 320 && s.d > 15, `asset: engine ${s.engine}, width ${s.w}, duration ${s.d}`);
  assert((await page.locator('#rendition option').count()) >= 1, 'rendition choice');
  await shot(page, 'asset-player');
});

step('a rule with sliceDuration 40 shows the range error next to the field', async () => {
  await page.goto(base + '/#/rules');
  await page.waitForSelector('#rules-table');
  assert(await page.locator('#rules-table tbody tr').count() >= 1, 'the config rule is listed');
  await shot(page, 'rules');
  await page.click('#new-rule');
  await page.fill('[data-field="domainName"]', 'example.com');
  await page.fill('[data-field="appName"]', 'show');
  await page.fill('[data-field="recordFormats[0].sliceDuration"]', '40');
  await page.click('#rule-save');
  const err = page.locator('[data-field="recordFormats[0].sliceDuration"] + .field-error');
  await err.waitFor({ timeout: 3000 });
  const text = await err.textContent();
  assert(/40 is out of range \(allowed 5.30 seconds\)/.test(text), `error text ${text}`);
  assert(await page.locator('[data-field="recordFormats[0].sliceDuration"]').getAttribute('aria-invalid') === 'true', 'aria-invalid');
  await shot(page, 'rule-error');
  // Fixed, it is created; then deleted after confirming.
  await page.fill('[data-field="recordFormats[0].sliceDuration"]', '10');
  await page.click('#rule-save');
  await page.waitForFunction(() => /#\/rules\/[0-9a-f-]{36}$/.test(location.hash), null, { timeout: 3000 });
  await page.goto(base + '/#/rules');
  const row = page.locator('#rules-table tr', { hasText: 'example.com/show/*' });
  await row.waitFor();
  await row.locator('button.danger').click();
  await page.locator('#confirm-ok').click();
  await row.waitFor({ state: 'detached', timeout: 3000 });
});

step('callbacks and storage pages', async () => {
  await page.goto(base + '/#/callbacks?domain=' + encodeURIComponent(camDomain));
  await page.waitForSelector('#notify-config form');
  // Signing without a key: the API's error shows next to the key's field.
  await page.fill('input[name=notifyUrl]', 'http://127.0.0.1:9/hook');
  await page.check('input[name=notifyReqAuth]');
  await page.click('#notify-config button[type=submit]');
  await page.locator('input[name=notifyAuthKey] + .field-error', { hasText: 'required when notifyReqAuth is true' }).waitFor({ timeout: 3000 });
  await page.fill('input[name=notifyAuthKey]', 'key-0123456789');
  await page.click('#notify-config button[type=submit]');
  await page.locator('#notify-config h2', { hasText: /^Callbacks of [^(]*$/ }).waitFor({ timeout: 3000 });
  const cfg = await api(`/domains/${encodeURIComponent(camDomain)}/notify`);
  assert(cfg.notifyUrl === 'http://127.0.0.1:9/hook' && cfg.notifyReqAuth, `stored ${JSON.stringify(cfg)}`);
  await shot(page, 'callbacks');
  await page.goto(base + '/#/status');
  await page.waitForSelector('#version');
  assert((await page.locator('#disk-free').textContent()).includes(' of '), 'disk free');
  assert(await page.locator('#recent-errors').count() === 1, 'errors section');
  await shot(page, 'status');
});

step('on a phone the navigation folds into a menu', async () => {
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
  await phone.goto(base + '/#/recordings');
  await phone.waitForSelector('#rec-table tbody tr');
  assert(!(await phone.locator('#nav').isVisible()), 'nav hidden');
  await phone.click('.menu-toggle');
  assert(await phone.locator('#nav').isVisible(), 'nav opens');
  await phone.click('#nav a[data-page="recordings"]');
  assert(!(await phone.locator('#nav').isVisible()), 'nav closes after a choice');
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert(width <= 390, `page ${width} px wide on a 390 px screen`);
  assert(!(await phone.locator('#rec-table thead').isVisible()), 'rows shown as cards');
  await shot(phone, 'phone-recordings', false);
  await phone.close();
});

step('with apiTokens the console asks for a token', async () => {
  const url = process.env.LIVREC_TOKEN_URL, token = process.env.LIVREC_TOKEN;
  if (!url) throw new Error('LIVREC_TOKEN_URL is not set');
  const p = await browser.newPage();
  await p.goto(url + '/#/rules');
  await p.waitForSelector('#token');
  await p.fill('#token', 'wrong-token-0123456789');
  await p.click('form.login button[type=submit]');
  await p.locator('form.login .error', { hasText: 'not accepted' }).waitFor({ timeout: 3000 });
  await shot(p, 'login');
  await p.fill('#token', token);
  await p.click('form.login button[type=submit]');
  await p.waitForSelector('#rules-table');
  const inURL = p.url().includes(token) || (await p.content()).includes(token);
  assert(!inURL, 'the token shows in the URL or the page');
  await p.close();
});

(async () => {
  let failed = false;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => errors.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/404|Failed to load resource/.test(m.text())) errors.push('console: ' + m.text()); });
    page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) errors.push('external request: ' + r.url()); });
    for (const s of steps) {
      const t = Date.now();
      try {
        await s.fn();
        log(`ok   ${s.name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
      } catch (e) {
        failed = true;
        log(`FAIL ${s.name}: ${e.message}`);
        await shot(page, 'failure-' + steps.indexOf(s)).catch(() => {});
        break;
      }
    }
    if (errors.length) { failed = true; log('FAIL errors in the page:\n' + errors.join('\n')); }
  } finally {
    for (const p of [cam, stopme]) if (p && p.proc.exitCode === null) p.proc.kill();
    await browser.close();
  }
  log(failed ? 'FAILED' : 'PASS');
  process.exit(failed ? 1 : 0);
})();
