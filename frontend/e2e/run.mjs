// End-to-end tests: a real `seidra up` (SQLite, temp data dir, free port), the built app, and
// Debian's Chromium driven by playwright-core. Steps run in order and share state (they tell
// one story); the first failure stops the run with a screenshot and the backend's log tail.
//
//   node e2e/run.mjs                       (after `npm run build`)
//   SEIDRA_BIN=/path/to/seidra             backend binary (default ../target/debug/seidra)
//   SEIDRA_E2E_BACKEND_SERVES_UI=1         the backend serves dist/ itself (no proxy in front)
//   CHROMIUM=/usr/bin/chromium             browser binary
//   E2E_HEADFUL=1                          watch it run (needs a display)
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFakeSadTalker } from './fake-sadtalker.mjs';
import { startServer } from './serve.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(here, '..');
const dist = join(root, 'dist');
const shots = join(here, 'screenshots');
const artifacts = join(here, 'artifacts');
const bin = process.env.SEIDRA_BIN ?? resolve(root, '../target/debug/seidra');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const backendServesUi = process.env.SEIDRA_E2E_BACKEND_SERVES_UI === '1';
const ADMIN_PASSWORD = 'e2e-admin-password-0451';
const PASSWORD = 'correct-horse-battery-e2e';
const HOOK_HOST = '127.0.0.2';

for (const [path, what] of [
  [bin, 'the backend binary (cargo build -p seidra, or set SEIDRA_BIN)'],
  [join(dist, 'index.html'), 'the built app (npm run build)'],
  [chromiumPath, 'Chromium (apt-get install -y chromium)'],
]) {
  if (!existsSync(path)) {
    console.error(`e2e: missing ${what}: ${path}`);
    process.exit(2);
  }
}
mkdirSync(shots, { recursive: true });
mkdirSync(artifacts, { recursive: true });

// ---------------------------------------------------------------- processes we own
const cleanups = [];
let cleaning = null;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error('cleanup:', err);
      }
    }
  })());
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    void cleanup().then(() => process.exit(130));
  });
}

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @param {{ sadtalker: string }} engines URLs of the fake remote engines the backend is given */
async function startBackend({ sadtalker }) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'seidra-e2e-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const logPath = join(artifacts, 'backend.log');
  const log = createWriteStream(logPath);
  /** @type {Record<string, string | undefined>} */
  const env = {
    ...process.env,
    SEIDRA_BIND: `127.0.0.1:${port}`,
    SEIDRA_DATA_DIR: dataDir,
    SEIDRA_ADMIN_PASSWORD: ADMIN_PASSWORD,
    SEIDRA_ALLOW_REGISTRATION: 'true',
    // The e2e webhook receiver listens on this loopback address; every other internal address stays refused.
    SEIDRA_WEBHOOKS__ALLOW_PRIVATE: HOOK_HOST,
    SEIDRA_WEBHOOKS__POLL_INTERVAL_MS: '200',
    // Model downloads come from the e2e file server on the same loopback address, over http.
    SEIDRA_MODELS__ALLOW_HTTP: 'true',
    SEIDRA_MODELS__ALLOW_PRIVATE: HOOK_HOST,
    // Talking heads: a SadTalker-compatible remote engine (e2e/fake-sadtalker.mjs).
    SEIDRA_ENGINES__REMOTE__0__NAME: 'talker',
    SEIDRA_ENGINES__REMOTE__0__KIND: 'sadtalker',
    SEIDRA_ENGINES__REMOTE__0__URL: sadtalker,
    SEIDRA_ENGINES__REMOTE__0__MODELS: 'sadtalker',
    SEIDRA_ENGINES__REMOTE__0__TIMEOUT_SECS: '120',
    SEIDRA_LOG_FORMAT: 'pretty',
    NO_COLOR: '1',
  };
  // Our own knobs are not the server's configuration (it warns about unknown SEIDRA_* names).
  delete env.SEIDRA_BIN;
  delete env.SEIDRA_E2E_BACKEND_SERVES_UI;
  if (backendServesUi) env.SEIDRA_UI_DIR = dist;
  const child = spawn(bin, ['up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  cleanups.push(async () => {
    if (exited) return;
    child.kill('SIGTERM');
    for (let i = 0; i < 100 && !exited; i++) await sleep(100);
    if (!exited) child.kill('SIGKILL');
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`seidra up exited early; see ${logPath}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return { url, logPath, dataDir };
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`seidra up not ready within 60 s; see ${logPath}`);
}

/** A webhook endpoint that records what it receives (on HOOK_HOST, which the backend allows). */
/** A safetensors file of zero-filled F32 tensors (what the model catalogue reads). */
function safetensors(tensors, metadata = {}) {
  const header = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const len = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, Buffer.alloc(offset)]);
}
const INK_LORA = safetensors({ 'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight': [4, 320] }, { ss_base_model_version: 'sdxl_base_v1-0' });

async function startHookReceiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/files/ink-wash.safetensors') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': INK_LORA.length }).end(INK_LORA);
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(0, HOOK_HOST, () => res(undefined));
  });
  cleanups.push(() => new Promise((res) => server.close(res)));
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return { url: `http://${HOOK_HOST}:${port}/seidra-hook`, files: `http://${HOOK_HOST}:${port}/files`, received };
}

// ---------------------------------------------------------------- tiny test runner
const results = [];
/** @type {import('playwright-core').Page} */
let page = /** @type {any} */ (null);
async function step(name, fn) {
  const started = Date.now();
  process.stdout.write(`• ${name} … `);
  try {
    await fn();
    const ms = Date.now() - started;
    results.push({ name, ok: true, ms });
    console.log(`ok (${ms} ms)`);
  } catch (err) {
    console.log('FAILED');
    results.push({ name, ok: false, ms: Date.now() - started, err });
    throw err;
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

async function waitFor(fn, message, timeout = 20_000, interval = 100) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${message}${last instanceof Error ? ` (${last.message})` : ''}`);
}

// ---------------------------------------------------------------- page helpers
const axeSource = readFileSync(join(root, 'node_modules/axe-core/axe.min.js'), 'utf8');
const axeReport = [];

/** Runs axe-core in the page; fails on serious or critical violations. */
async function axe(screen) {
  await page.evaluate(axeSource); // evaluated through DevTools: not subject to the page's CSP
  const result = await page.evaluate(async () => {
    // @ts-expect-error axe is injected above
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  axeReport.push({ screen, violations: result });
  assert(bad.length === 0, `axe (${screen}): ${JSON.stringify(bad, null, 1)}`);
}

async function shot(name, { full = true } = {}) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: full, animations: 'disabled' });
}

async function screen(name, { axeCheck = true, full = !/generate/.test(name) } = {}) {
  await page.waitForLoadState('networkidle').catch(() => undefined);
  await page.locator('.loading').first().waitFor({ state: 'detached', timeout: 10_000 }).catch(() => undefined);
  await shot(name, { full });
  if (axeCheck) await axe(name);
}

async function go(path) {
  await page.goto(base + path);
  await page.locator('main h1').first().waitFor();
}

async function login(username, password) {
  await page.goto(`${base}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/generate/);
  await page.locator('.live-open').waitFor({ timeout: 15_000 });
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/login/);
}

/** The API as this page's user (same origin, the page's stored token). */
async function apiAs(token, path, init = {}) {
  return fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });
}

/** The bell's unread count (0 when it shows none). */
async function bellCount() {
  // One read in the page: the badge may disappear between two locator calls.
  return page.evaluate(() => Number(document.querySelector('a.bell .bell-count')?.getAttribute('data-count') ?? 0));
}

const storedToken = () => page.evaluate(() => JSON.parse(localStorage.getItem('seidra.session') ?? 'null')?.accessToken ?? null);

const cardFor = (prompt) => page.locator('article.job-card', { has: page.locator('.job-card-prompt', { hasText: prompt }) }).first();

/** @param {{ prompt: string, preset?: string, width?: number, height?: number, steps?: number, count?: number }} o */
async function fillGenerate({ prompt, preset, width, height, steps, count }) {
  await page.fill('#prompt', prompt);
  if (preset) await page.selectOption('#size_preset', preset);
  if (width) await page.fill('#width', String(width));
  if (height) await page.fill('#height', String(height));
  if (steps) await page.fill('#num_inference_steps', String(steps));
  if (count) await page.fill('#num_images', String(count));
}

// ---------------------------------------------------------------- the story
let base;
let proxy = null;
const consoleProblems = [];

async function main() {
  const sadtalker = await startFakeSadTalker();
  cleanups.push(() => sadtalker.close());
  const backend = await startBackend({ sadtalker: sadtalker.url });
  const hooks = await startHookReceiver();
  if (backendServesUi) {
    base = backend.url;
  } else {
    proxy = await startServer({ root: dist, backend: backend.url });
    cleanups.push(() => proxy.close());
    base = proxy.url;
  }
  console.log(`backend ${backend.url}; fake SadTalker ${sadtalker.url}; app ${base}${backendServesUi ? ' (served by the backend)' : ' (e2e proxy)'}`);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: process.env.E2E_HEADFUL !== '1',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ].filter((a) => a !== '--headless' || process.env.E2E_HEADFUL !== '1'),
  });
  cleanups.push(() => browser.close());
  // The server's default theme is `system`: follow a dark OS, the studio's identity.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', colorScheme: 'dark' });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => consoleProblems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Failed requests the app handles (401 on a wrong password, 404/409 on purpose) are logged
    // by Chromium itself; anything else at error level is a bug.
    if (m.type() === 'error' && !/Failed to load resource|WebSocket connection to .* failed/.test(m.text())) consoleProblems.push(`console: ${m.text()}`);
  });

  const alice = `alice${Date.now() % 100000}`;
  let aliceJobIds = [];

  await step('signed-out visitors land on the login page', async () => {
    await page.goto(`${base}/jobs`);
    await page.waitForURL(/\/login\?next=%2Fjobs/);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await screen('01-login');
  });

  await step('a wrong password shows the server message', async () => {
    await page.fill('#username', 'admin');
    await page.fill('#password', 'not-the-password');
    await page.click('form button[type=submit]');
    await page.getByRole('alert').filter({ hasText: /wrong username or password/i }).waitFor();
  });

  await step('register a new account and land on Generate (then on the page asked for)', async () => {
    await page.getByRole('button', { name: /Create one/ }).click();
    await page.getByRole('heading', { name: 'Create an account' }).waitFor();
    await page.fill('#username', alice);
    await page.fill('#password', 'short');
    await page.fill('#confirm', 'short');
    await page.click('form button[type=submit]');
    // The server's 422 lands next to the field it names.
    await page.locator('#password-error').waitFor();
    await screen('02-register-error');
    await page.fill('#password', PASSWORD);
    await page.fill('#confirm', PASSWORD);
    await page.click('form button[type=submit]');
    await page.waitForURL(/\/jobs$/);
    await page.locator('.live-open').waitFor();
  });

  await step('Generate: engines come from capabilities; procedural is labelled as a CPU engine', async () => {
    await go('/generate');
    await waitFor(async () => /Procedural/.test((await page.locator('#engine option:checked').textContent()) ?? ''), 'the procedural engine');
    await page.getByText('It is not a diffusion model').waitFor();
    assert((await page.locator('fieldset', { hasText: 'LoRAs' }).getAttribute('disabled')) !== null, 'LoRAs disabled for procedural');
    assert(await page.getByRole('button', { name: 'Add a LoRA' }).isDisabled(), 'cannot add a LoRA');
    assert(await page.locator('#persona_id').isEnabled(), 'persona picker is live');
    assert((await page.locator('#persona_id option:checked').textContent()) === 'No persona', 'no persona by default');
    await screen('03-generate-empty');
  });

  await step('keyboard: the first Tab reaches the skip link, which jumps to the content', async () => {
    await page.reload();
    await page.locator('main h1').waitFor();
    await page.keyboard.press('Tab');
    assert(await page.evaluate(() => document.activeElement?.classList.contains('skip-link')), 'skip link focused first');
    await page.keyboard.press('Enter');
    assert(await page.evaluate(() => document.activeElement?.id === 'main'), 'focus moved to main');
  });

  await step('client-side validation names the field', async () => {
    await page.fill('#prompt', '');
    await page.fill('#width', '250');
    await page.click('form[aria-label="Generation settings"] button[type=submit]');
    await page.locator('#prompt-error').waitFor();
    await page.locator('#width-error').waitFor();
    assert((await page.locator('#width').getAttribute('aria-invalid')) === 'true', 'width marked invalid');
  });

  await step('generate 2 images (procedural, 256×256): they appear in the results grid', async () => {
    await fillGenerate({ prompt: 'a red fox in the snow', preset: '256x256', count: 2 });
    await page.click('form[aria-label="Generation settings"] button[type=submit]');
    const card = cardFor('a red fox in the snow');
    await card.locator('.badge-succeeded').waitFor({ timeout: 30_000 });
    const imgs = card.locator('ul.outputs img');
    await waitFor(async () => (await imgs.count()) === 2, '2 images');
    await waitFor(
      async () => (await imgs.evaluateAll((els) => els.every((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth === 256))) === true,
      'both images loaded at 256 px',
    );
    await screen('04-generate-results');
  });

  await step('a double-click submits one job (Idempotency-Key)', async () => {
    const token = await storedToken();
    const before = await (await apiAs(token, '/api/jobs?limit=1')).json();
    await fillGenerate({ prompt: 'double click lighthouse', preset: '256x256', count: 1 });
    await page.locator('form[aria-label="Generation settings"] button[type=submit]').dblclick();
    await cardFor('double click lighthouse').locator('.badge-succeeded').waitFor({ timeout: 30_000 });
    await sleep(500);
    const after = await (await apiAs(token, '/api/jobs?limit=1')).json();
    assert(after.total === before.total + 1, `jobs ${before.total} → ${after.total}`);
  });

  let cancelledPrompt = '';
  await step('a big job shows live progress (stage, ETA) and can be cancelled while running', async () => {
    let cancelled = false;
    for (let attempt = 1; attempt <= 3 && !cancelled; attempt++) {
      cancelledPrompt = `a vast nebula, attempt ${attempt}`;
      await fillGenerate({ prompt: cancelledPrompt, preset: '2048x2048', steps: 150, count: 8 });
      await page.click('form[aria-label="Generation settings"] button[type=submit]');
      const card = cardFor(cancelledPrompt);
      await card.locator('.badge-running').waitFor({ timeout: 30_000 });
      // Progress arrives over the WebSocket: watch the bar move and the stage text change.
      const seen = new Set();
      const stages = new Set();
      const bar = card.getByRole('progressbar');
      const until = Date.now() + 3000;
      while (Date.now() < until && seen.size < 3) {
        const v = await bar.getAttribute('aria-valuenow').catch(() => null);
        const text = await card.locator('.job-progress-text').textContent().catch(() => '');
        if (v !== null && Number(v) > 0 && Number(v) < 100) seen.add(v);
        if (text && /Stage:/.test(text)) stages.add(text.replace(/\d+%/, ''));
        if (!(await card.locator('.badge-running').count())) break;
        await sleep(60);
      }
      if (seen.size >= 2) await shot('05-generate-progress', { full: false });
      const cancel = card.getByRole('button', { name: 'Cancel' });
      if (!(await card.locator('.badge-running').count()) || seen.size < 2) {
        console.log(`(attempt ${attempt}: the job finished before enough progress/cancel; trying again)`);
        continue;
      }
      assert(stages.size >= 1, 'stage text shown');
      assert(/left/.test((await card.locator('.job-progress-text').textContent()) ?? ''), 'ETA shown');
      await cancel.click();
      const outcome = await waitFor(
        async () => ((await card.locator('.badge-cancelled').count()) ? 'cancelled' : (await card.locator('.badge-succeeded').count()) ? 'succeeded' : null),
        'cancel outcome',
        30_000,
      );
      cancelled = outcome === 'cancelled';
      if (!cancelled) console.log(`(attempt ${attempt}: finished before the cancel reached the engine; trying again)`);
    }
    assert(cancelled, 'a running job was cancelled');
    await screen('06-generate-cancelled');
  });

  await step('Jobs: the live table lists the jobs; filters work', async () => {
    await go('/jobs');
    await page.locator('table.jobs-table tbody tr').first().waitFor();
    const rows = await page.locator('table.jobs-table tbody tr').count();
    assert(rows === 3, `rows ${rows}`);
    await screen('07-jobs');
    await page.selectOption('#jobs-status', 'cancelled');
    await waitFor(async () => (await page.locator('table.jobs-table tbody tr').count()) === 1, 'one cancelled job');
    await page.selectOption('#jobs-status', '');
    await page.fill('#jobs-search', 'fox');
    await waitFor(async () => (await page.locator('table.jobs-table tbody tr').count()) === 1, 'search finds the fox');
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await waitFor(async () => (await page.locator('table.jobs-table tbody tr').count()) === rows, 'all rows back');
  });

  await step('Jobs: retry the cancelled job; the new job runs live and links to the old one', async () => {
    const row = page.locator('table.jobs-table tbody tr', { hasText: cancelledPrompt });
    await row.getByRole('button', { name: /Retry job/ }).click();
    // The retry shows up through the live connection (job.queued → list reload).
    const retried = page.locator('table.jobs-table tbody tr', { hasText: cancelledPrompt });
    await waitFor(async () => (await retried.count()) === 2, 'retried job listed');
    const newRow = retried.first();
    await newRow.locator('.badge-running, .badge-succeeded').first().waitFor({ timeout: 30_000 });
    await newRow.getByRole('button', { name: cancelledPrompt, exact: true }).click();
    const drawer = page.getByRole('dialog', { name: 'Job details' });
    await drawer.waitFor();
    await drawer.getByText('Retry of').waitFor();
    await drawer.locator('.badge-succeeded').waitFor({ timeout: 60_000 });
    await waitFor(async () => (await drawer.locator('ul.outputs img').count()) === 8, '8 outputs in the drawer');
    await drawer.getByText('"num_inference_steps": 150').waitFor();
    await screen('08-jobs-details');
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'detached' });
  });

  await step('reuse settings: the Generate form is filled from a finished job', async () => {
    const row = page.locator('table.jobs-table tbody tr', { hasText: 'a red fox in the snow' });
    await row.getByRole('button', { name: 'a red fox in the snow', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reuse settings' }).click();
    await page.waitForURL(/\/generate/);
    assert((await page.inputValue('#prompt')) === 'a red fox in the snow', 'prompt reused');
    assert((await page.inputValue('#width')) === '256', 'width reused');
    assert(await page.locator('#seed').isEnabled(), 'seed locked to the job seed');
  });

  if (!backendServesUi) {
    await step('live connection: a job that finishes while disconnected is resynced on reconnect', async () => {
      const prompt = 'resync comet over the sea';
      await fillGenerate({ prompt, preset: '2048x2048', steps: 150, count: 8 });
      proxy.blockWebSockets(true);
      await page.click('form[aria-label="Generation settings"] button[type=submit]');
      proxy.dropWebSockets();
      await page.locator('.live-reconnecting').waitFor();
      const token = await storedToken();
      const card = cardFor(prompt);
      await card.waitFor();
      const id = await waitFor(async () => {
        const page1 = await (await apiAs(token, `/api/jobs?search=${encodeURIComponent(prompt)}`)).json();
        return page1.items[0]?.status === 'succeeded' ? page1.items[0].id : null;
      }, 'the job to finish on the server', 60_000, 300);
      assert(!(await card.locator('.badge-succeeded').count()), 'no update while disconnected');
      proxy.blockWebSockets(false);
      await page.locator('.live-open').waitFor({ timeout: 40_000 });
      await card.locator('.badge-succeeded').waitFor();
      aliceJobIds.push(id);
    });
  }

  await step('Settings: create an API key — the token is shown once and works', async () => {
    await go('/settings');
    await page.fill('#key-name', 'e2e script');
    await page.getByRole('button', { name: 'Create key' }).click();
    const box = page.locator('.token-box');
    await box.waitFor();
    const token = await box.locator('input.token').inputValue();
    assert(/^sk_/.test(token), `token ${token.slice(0, 6)}`);
    await box.getByRole('button', { name: 'Copy' }).waitFor();
    const me = await apiAs(token, '/api/auth/me');
    assert(me.ok, `API key works (${me.status})`);
    assert((await me.json()).username === alice, 'key belongs to the user');
    await screen('09-settings-key-created');
    await box.getByRole('button', { name: 'I have stored it' }).click();
    await page.reload();
    await page.locator('main h1').waitFor();
    assert((await page.locator('input.token').count()) === 0, 'token not shown again');
    await page.locator('table tbody tr', { hasText: 'e2e script' }).waitFor();
    // revoke it
    const row = page.locator('table tbody tr', { hasText: 'e2e script' });
    await row.getByRole('button', { name: /Revoke key/ }).click();
    await row.getByRole('button', { name: 'Revoke now' }).click();
    await waitFor(async () => (await apiAs(token, '/api/auth/me')).status === 401, 'revoked key refused');
    await screen('10-settings');
  });

  await step('Settings: French and the light theme', async () => {
    await page.selectOption('#pref-lang', 'fr');
    await page.getByRole('heading', { name: 'Paramètres', level: 1 }).waitFor();
    assert((await page.getAttribute('html', 'lang')) === 'fr', 'html lang=fr');
    await screen('11-settings-fr');
    await go('/generate');
    await screen('12-generate-fr');
    await go('/settings');
    await page.selectOption('#pref-theme', 'light');
    await page.selectOption('#pref-lang', 'en');
    await screen('13-settings-light');
    await go('/jobs');
    await screen('14-jobs-light');
    await go('/settings');
    await page.selectOption('#pref-theme', 'dark');
  });

  await step('Settings: the language is saved to the account (it survives a reload and a cleared browser)', async () => {
    await go('/settings');
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/settings') && r.request().method() === 'PATCH');
    await page.selectOption('#pref-lang', 'fr');
    assert((await saved).ok(), 'PATCH /api/settings accepted');
    await page.getByRole('heading', { name: 'Paramètres', level: 1 }).waitFor();
    // Forget this browser's copy: the account's setting must bring French back.
    await page.evaluate(() => localStorage.removeItem('seidra.prefs'));
    await page.reload();
    await page.getByRole('heading', { name: 'Paramètres', level: 1 }).waitFor();
    await waitFor(async () => (await page.getAttribute('html', 'lang')) === 'fr', 'html lang=fr after reload');
    const token = await storedToken();
    const server = await (await apiAs(token, '/api/settings')).json();
    assert(server.language === 'fr', `server language ${server.language}`);
    await page.selectOption('#pref-lang', 'en');
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  });

  await step('Settings: notification matrix and content preferences (the server error shows on its field)', async () => {
    const box = page.locator('#np-job-webhook');
    const was = await box.isChecked();
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/settings') && r.request().method() === 'PATCH');
    await box.click();
    await saved;
    await waitFor(async () => (await box.isChecked()) !== was, 'the checkbox follows the server');
    const server = await (await apiAs(await storedToken(), '/api/settings')).json();
    assert(server.notifications.job.webhook === !was, 'matrix saved');
    // NSFW without the age confirmation: the server refuses and names content.nsfw.
    await page.locator('#content-nsfw').check();
    await page.getByRole('form', { name: 'Content' }).getByRole('button', { name: 'Save' }).click();
    await page.locator('#content-nsfw-error').waitFor();
    assert((await page.getAttribute('#content-nsfw', 'aria-invalid')) === 'true', 'nsfw marked invalid');
    await page.locator('#content-nsfw').uncheck();
    await page.fill('#content-blocked_terms', 'spiders\nclowns');
    await page.getByRole('form', { name: 'Content' }).getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved.').first().waitFor();
    const after = await (await apiAs(await storedToken(), '/api/settings')).json();
    assert(JSON.stringify(after.content.blocked_terms) === '["spiders","clowns"]', `terms ${JSON.stringify(after.content.blocked_terms)}`);
  });

  await step('Settings: webhooks — an internal URL is refused on the field; create one (secret shown once), test it, see the log', async () => {
    await page.fill('#url', 'http://127.0.0.1/');
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const err = page.locator('#url-error');
    await err.waitFor();
    assert((await err.textContent())?.trim(), 'server message on the URL field');
    assert((await page.getAttribute('#url', 'aria-invalid')) === 'true', 'URL marked invalid');
    await page.fill('#url', hooks.url);
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const secret = await page.locator('#hook-secret').inputValue();
    assert(secret.length >= 16, 'secret shown');
    const row = page.locator('table.hooks-table tbody tr', { hasText: hooks.url });
    await row.waitFor();
    await screen('10b-settings-webhook-created');
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await page.reload();
    await row.waitFor();
    assert((await page.locator('#hook-secret').count()) === 0, 'secret not shown again');
    await row.getByRole('button', { name: /^Send test/ }).click();
    await waitFor(() => hooks.received.some((r) => r.body.includes('webhook.test')), 'the test event reaches the receiver');
    const sig = hooks.received.find((r) => r.body.includes('webhook.test'))?.headers['x-seidra-signature'];
    assert(sig, 'signed delivery');
    await row.getByRole('button', { name: /^Deliveries/ }).click();
    const drawer = page.getByRole('dialog');
    await waitFor(async () => {
      await drawer.getByRole('button', { name: 'Refresh' }).click();
      return (await drawer.locator('.delivery-delivered').count()) > 0;
    }, 'the delivery logged as delivered', 20_000, 500);
    await screen('10c-webhook-log');
    await page.keyboard.press('Escape');
    await row.getByRole('button', { name: /^Disable/ }).click();
    await row.getByRole('button', { name: /^Enable/ }).waitFor();
    await row.getByRole('button', { name: /^Delete:/ }).click();
    await row.getByRole('button', { name: 'Delete', exact: true }).click();
    await row.waitFor({ state: 'detached' });
  });

  await step('Notifications: the bell counts finished jobs; the list shows them; mark all read zeroes the bell', async () => {
    const bell = page.locator('a.bell');
    await waitFor(async () => (await bellCount()) > 0, 'an unread count on the bell');
    await bell.click();
    await page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor();
    await page.locator('.notif-list li', { hasText: 'finished' }).first().waitFor();
    await screen('15b-notifications');
    await page.getByRole('button', { name: 'Mark all read' }).click();
    await waitFor(async () => (await bellCount()) === 0, 'the bell to clear');
    assert((await bell.getAttribute('aria-label')) === 'Notifications: none unread', 'bell label');
    await page.locator('.notif-unread').first().waitFor({ state: 'detached' });
    // delete one
    const first = page.locator('.notif-list li').first();
    const title = await first.locator('.notif-title').textContent();
    await first.getByRole('button', { name: /^Delete:/ }).click();
    await first.getByRole('button', { name: 'Delete', exact: true }).click();
    await waitFor(async () => (await page.locator('.notif-list li').first().locator('.notif-title').textContent()) !== title || (await page.locator('.notif-list li').count()) === 0, 'the notification deleted');
  });

  await step('Settings: change the password (and stay signed in)', async () => {
    await go('/settings');
    await page.fill('#current_password', 'wrong-current-password');
    await page.fill('#new_password', `${PASSWORD}-2`);
    await page.fill('#confirm_password', `${PASSWORD}-2`);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#current_password-error').waitFor();
    await page.fill('#current_password', PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText('Password changed').waitFor();
    await go('/jobs');
    await page.locator('table.jobs-table tbody tr').first().waitFor();
  });

  await step('System: dependencies, engines, workers and queue', async () => {
    await go('/system');
    await page.locator('table tbody tr', { hasText: 'database' }).getByText('OK').waitFor();
    await page.getByRole('heading', { name: /Procedural/ }).waitFor();
    await page.locator('table tbody tr', { hasText: 'embedded-0' }).waitFor();
    await screen('15-system');
  });

  let personaId = '';
  const aliceMedia = [];
  await step('Personas: create one (the server refuses a bad width on its field), save a version, view history, duplicate and delete the copy', async () => {
    await go('/personas');
    await page.getByText('No persona yet').waitFor();
    await page.getByRole('button', { name: 'New persona' }).click();
    await page.fill('#persona-name', 'Ink Heroine');
    await page.fill('#persona-prompt_template', '{prompt}, ink wash style');
    await page.fill('#persona-negative_prompt', 'blurry');
    await page.fill('#persona-tags', 'ink, heroine');
    await page.fill('#persona-image-width', '250');
    await page.fill('#persona-image-height', '256');
    await page.fill('#persona-image-num_inference_steps', '12');
    await page.getByRole('button', { name: 'Create persona' }).click();
    await page.locator('#persona-image-width-error').getByText(/multiple of 8/).waitFor();
    assert((await page.locator('#persona-image-width').getAttribute('aria-invalid')) === 'true', 'width marked invalid');
    await page.fill('#persona-image-width', '256');
    await page.getByRole('button', { name: 'Create persona' }).click();
    await page.getByRole('heading', { name: 'Ink Heroine (version 1)' }).waitFor();
    personaId = new URL(page.url()).searchParams.get('id') ?? '';
    assert(/^[0-9a-f-]{36}$/.test(personaId), `persona id in the URL (${personaId})`);
    await page.fill('#persona-description', 'A heroine drawn in ink.');
    await page.getByRole('button', { name: 'Save as a new version' }).click();
    await page.getByRole('heading', { name: 'Ink Heroine (version 2)' }).waitFor();
    const history = page.getByRole('region', { name: 'Version history' }).or(page.locator('section', { has: page.getByRole('heading', { name: 'Version history' }) }));
    await waitFor(async () => (await history.locator('.version-list li').count()) === 2, 'two versions listed');
    await history.getByRole('button', { name: 'Version 1' }).click();
    await page.getByRole('region', { name: 'Version 1' }).getByText('ink wash style').waitFor();
    await page.getByRole('button', { name: 'Duplicate' }).click();
    await page.getByRole('heading', { name: 'Ink Heroine (copy) (version 1)' }).waitFor();
    await page.getByRole('button', { name: 'Delete Ink Heroine (copy)' }).click();
    await page.getByRole('button', { name: 'Delete for good' }).click();
    await page.locator('.persona-list li', { hasText: '(copy)' }).waitFor({ state: 'detached' });
    await page.locator('.persona-list li', { hasText: 'Ink Heroine' }).getByRole('button', { name: 'Favourite: Ink Heroine' }).click();
    await waitFor(async () => (await page.getByRole('button', { name: 'Favourite: Ink Heroine' }).getAttribute('aria-pressed')) === 'true', 'favourite');
    await page.fill('#persona-search', 'nothing-like-this');
    await page.getByText('No persona matches.').waitFor();
    await page.fill('#persona-search', 'heroine');
    await page.locator('.persona-list li', { hasText: 'Ink Heroine' }).waitFor();
  });

  await step('Personas: a preview is a real job, followed live until its image shows', async () => {
    await page.locator('.persona-list li', { hasText: 'Ink Heroine' }).getByRole('button', { name: /Ink Heroine/ }).first().click();
    await page.getByRole('button', { name: 'Generate a preview' }).click();
    await waitFor(
      async () => (await page.locator('.persona-preview ul.outputs img').evaluateAll((els) => els.length > 0 && els.every((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth > 0))) === true,
      'the preview image',
      60_000,
    );
    await screen('16-personas');
  });

  await step('Generate with the persona: the picker fills its defaults; 2 images', async () => {
    await go('/generate');
    await page.selectOption('#persona_id', { label: '★ Ink Heroine' });
    assert((await page.inputValue('#width')) === '256' && (await page.inputValue('#num_inference_steps')) === '12', 'persona defaults filled the form');
    await fillGenerate({ prompt: 'a lamplighter at dusk', count: 2 });
    await page.click('form[aria-label="Generation settings"] button[type=submit]');
    const card = cardFor('a lamplighter at dusk');
    await card.locator('.badge-succeeded').waitFor({ timeout: 30_000 });
    const token = await storedToken();
    const media = await (await apiAs(token, '/api/media?q=lamplighter')).json();
    assert(media.total === 2, `2 media for the persona job (${media.total})`);
    assert(media.items.every((m) => m.persona_id === personaId && m.prompt.includes('ink wash style')), 'persona provenance recorded and template applied');
    aliceMedia.push(...media.items.map((m) => m.id));
  });

  await step('Library: the images are there; a job finishing meanwhile appears without reload; the lightbox shows provenance (←/→, Esc, focus kept inside)', async () => {
    await go('/library');
    const heading = page.locator('#library-gallery-title');
    await heading.getByText(/^\d+ items$/).waitFor();
    const before = Number(((await heading.textContent()) ?? '').split(' ')[0]);
    assert(before >= 3, `library lists the persona's images (${before})`);
    const token = await storedToken();
    const res = await apiAs(token, '/api/generate/single', { method: 'POST', body: JSON.stringify({ prompt: 'live tile of a kite', width: 256, height: 256, num_inference_steps: 5 }) });
    assert(res.status === 202, `submit ${res.status}`);
    await heading.getByText(`${before + 1} items`).waitFor({ timeout: 30_000 });
    await page.fill('#library-search', 'lamplighter');
    await heading.getByText('2 items').waitFor();
    await waitFor(async () => (await page.locator('.tile img').evaluateAll((els) => els.length === 2 && els.every((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth > 0))) === true, 'two thumbnails loaded');
    await page.locator('.tile-open').first().click();
    const box = page.getByRole('dialog', { name: 'Item 1 of 2' });
    await box.waitFor();
    const prov = box.locator('dl.provenance');
    await prov.getByText(/a lamplighter at dusk, ink wash style/).waitFor();
    await prov.getByText('blurry').first().waitFor();
    await prov.getByText('procedural', { exact: true }).waitFor();
    await prov.getByRole('link', { name: 'Open the job' }).waitFor();
    await box.getByText('All parameters').click();
    await box.getByText('"num_inference_steps": 12').waitFor();
    await waitFor(async () => box.locator('.lightbox-media img').evaluate((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth > 0), 'the large image');
    await screen('17b-library-lightbox', { full: false });
    await box.getByRole('heading').first().focus();
    await page.keyboard.press('ArrowRight');
    await page.getByRole('dialog', { name: 'Item 2 of 2' }).waitFor();
    await page.keyboard.press('ArrowLeft');
    await page.getByRole('dialog', { name: 'Item 1 of 2' }).waitFor();
    for (let i = 0; i < 25; i++) {
      await page.keyboard.press('Tab');
      assert(await page.evaluate(() => !!document.activeElement?.closest('.lightbox')), `focus left the lightbox after ${i + 1} Tabs`);
    }
    await page.keyboard.press('Escape');
    await box.waitFor({ state: 'detached' });
    assert(await page.evaluate(() => document.activeElement?.classList.contains('tile-open')), 'focus back on the tile');
  });

  await step('Library: select both (click, shift-click, keyboard), tag and favourite in bulk; search and filters find them', async () => {
    const checks = page.locator('.tile-check');
    await checks.nth(0).click();
    await checks.nth(1).click({ modifiers: ['Shift'] });
    await page.getByText('2 selected').waitFor();
    await page.locator('.tile-open').first().focus();
    await page.keyboard.press('Space');
    await page.getByText('1 selected').waitFor();
    await page.keyboard.press('Control+a');
    await page.getByText('2 selected').waitFor();
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.locator('#bulk-tag-error').getByText('Type a tag first.').waitFor();
    await page.fill('#bulk-tag', 'harbour');
    await page.getByRole('button', { name: 'Add tag' }).click();
    await page.getByText('Tagged 2 items.').waitFor();
    await page.getByRole('button', { name: '★ Mark favourite' }).click();
    await page.getByText('2 items marked favourite.').waitFor();
    await page.fill('#library-search', 'harbour');
    const heading = page.locator('#library-gallery-title');
    await heading.getByText('2 items').waitFor();
    await page.fill('#library-search', '');
    await page.getByRole('button', { name: '★ Favourites' }).click();
    await heading.getByText('2 items').waitFor();
    await page.fill('#filter-tag', 'harbour');
    await heading.getByText('2 items').waitFor();
    await waitFor(async () => (await page.locator('.tile-tags', { hasText: 'harbour' }).count()) === 2, 'tags on the tiles');
    await page.getByRole('button', { name: 'Reset filters' }).click();
    await page.selectOption('#filter-persona', { label: 'Ink Heroine' });
    await heading.getByText(/^[34] items$/).waitFor();
    await page.selectOption('#filter-persona', '');
    await page.fill('#library-search', 'lamplighter');
    await heading.getByText('2 items').waitFor();
    await screen('17-library');
  });

  await step('Library: export the selection as a ZIP, followed live; uploads (a refused type shows the server error)', async () => {
    await page.locator('.tile-check').nth(0).click();
    await page.locator('.tile-check').nth(1).click({ modifiers: ['Shift'] });
    await page.getByText('2 selected').waitFor();
    await page.getByRole('button', { name: 'Export as ZIP' }).click();
    const link = page.getByRole('link', { name: /Download the ZIP \(2 items/ });
    await link.waitFor({ timeout: 30_000 });
    const zip = await fetch(new URL((await link.getAttribute('href')) ?? '', base));
    assert(zip.ok && (await zip.arrayBuffer()).byteLength > 100, `the ZIP downloads (${zip.status})`);
    await page.fill('#library-search', '');
    await page.setInputFiles('#upload-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not media') });
    await page.getByRole('alert').filter({ hasText: 'Upload refused' }).waitFor();
    const token = await storedToken();
    const one = await (await apiAs(token, `/api/media/${aliceMedia[0]}`)).json();
    const png = Buffer.from(await (await fetch(new URL(one.file.url, base))).arrayBuffer());
    await page.fill('#upload-tags', 'uploaded');
    await page.setInputFiles('#upload-input', { name: 'fox.png', mimeType: 'image/png', buffer: png });
    await page.getByText('1 file uploaded.').waitFor();
    await page.fill('#library-search', 'uploaded');
    await page.locator('#library-gallery-title').getByText('1 item').waitFor();
    // Drag-and-drop onto the gallery uploads too.
    await page.fill('#upload-tags', 'dropped');
    await page.locator('.library-main').evaluate((el, bytes) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], 'dropped.png', { type: 'image/png' }));
      el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, [...png]);
    await page.fill('#library-search', 'dropped');
    await page.locator('#library-gallery-title').getByText('1 item').waitFor();
  });

  await step('Library: "Reuse settings" opens Generate prefilled', async () => {
    await page.fill('#library-search', 'lamplighter');
    await page.locator('#library-gallery-title').getByText('2 items').waitFor();
    await page.locator('.tile-open').first().click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reuse settings' }).click();
    await page.waitForURL(/\/generate/);
    assert((await page.inputValue('#prompt')).includes('a lamplighter at dusk'), 'prompt reused');
    assert((await page.inputValue('#width')) === '256', 'width reused');
    assert((await page.inputValue('#num_inference_steps')) === '12', 'steps reused');
    assert(await page.locator('#seed').isEnabled(), 'seed locked to the image seed');
  });

  await step('Generate: start from a library image (img2img) — a deleted pick is refused on its field; the job carries init_image and strength; its result shows', async () => {
    // On Generate with the lamplighter settings (256×256, 12 steps, seed locked).
    const token = await storedToken();
    const jobsBefore = (await (await apiAs(token, '/api/jobs?limit=1')).json()).total;
    const prompt = 'a harbour at night, from the lamplighter';
    await fillGenerate({ prompt, count: 1 });
    const section = page.locator('fieldset', { has: page.getByText('Start from an image', { exact: true }) });
    await section.getByText('Optional: an image from your library').waitFor();
    assert(!(await page.locator('#strength').count()), 'no strength without an init image');
    // The results list image jobs only (not the library's export and upload jobs).
    await page.locator('.generate-results article.job-card').first().waitFor();
    assert(!(await page.locator('.generate-results article.job-card', { hasText: /\binternal\b/ }).count()), 'no internal job among the results');
    // The picker: Enter in its search box searches; it must not submit the Generate form around it.
    await page.getByRole('button', { name: 'Init image Choose from the library' }).click();
    let picker = page.getByRole('dialog', { name: 'Choose from the library' });
    await picker.waitFor();
    await picker.locator('#picker-search').fill('dropped');
    await picker.locator('#picker-search').press('Enter');
    await waitFor(async () => (await picker.locator('.picker-item').count()) === 1, 'the dropped upload found');
    await sleep(300);
    assert((await (await apiAs(token, '/api/jobs?limit=1')).json()).total === jobsBefore, 'Enter in the picker search submitted no job');
    const dropped = (await (await apiAs(token, '/api/media?q=dropped')).json()).items[0];
    await picker.locator('.picker-item').first().click();
    await picker.waitFor({ state: 'detached' });
    const thumb = section.getByRole('img', { name: 'The chosen init image' });
    await waitFor(() => thumb.evaluate((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth > 0), 'the init image thumbnail');
    assert((await page.inputValue('#strength')) === '0.75', 'default strength 0.75');
    // Deleted meanwhile (another tab): the server's 422 lands on the init image field.
    assert((await apiAs(token, `/api/media/${dropped.id}`, { method: 'DELETE' })).status === 204, 'the pick deleted elsewhere');
    await page.click('form[aria-label="Generation settings"] button[type=submit]');
    await page.locator('#init_image-error').getByText(/media item/).waitFor();
    assert((await page.getAttribute('#init_image', 'aria-invalid')) === 'true', 'init image marked invalid');
    // Choose another one: a lamplighter image.
    await page.getByRole('button', { name: 'Init image Choose another image' }).click();
    picker = page.getByRole('dialog', { name: 'Choose from the library' });
    await picker.locator('#picker-search').fill('lamplighter');
    await waitFor(async () => (await picker.locator('.picker-item').count()) === 2, 'two lamplighter images');
    await picker.locator('.picker-item').first().click();
    await picker.waitFor({ state: 'detached' });
    assert(!(await page.locator('#init_image-error').count()), 'the error cleared by a new pick');
    await waitFor(() => thumb.evaluate((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth > 0), 'the new thumbnail');
    // Strength by keyboard: 0.75 − 7 × 0.05.
    await page.locator('#strength').focus();
    for (let i = 0; i < 7; i++) await page.keyboard.press('ArrowLeft');
    assert((await page.inputValue('#strength')) === '0.4', `strength ${await page.inputValue('#strength')}`);
    await section.getByText('Strength: 0.4').waitFor();
    await page.click('form[aria-label="Generation settings"] button[type=submit]');
    const card = cardFor(prompt);
    await card.locator('.badge-succeeded').waitFor({ timeout: 90_000 });
    // The outputs load lazily: bring the card into view (the form was scrolled to its strength slider).
    await card.scrollIntoViewIfNeeded();
    await waitFor(
      async () => (await card.locator('ul.outputs img').evaluateAll((els) => els.length === 1 && els.every((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth === 256))) === true,
      'the img2img result loaded at 256 px',
      30_000,
    );
    await shot('04b-generate-img2img', { full: false });
    const found = await (await apiAs(token, `/api/jobs?search=${encodeURIComponent(prompt)}`)).json();
    assert(found.items.length === 1, `one img2img job (${found.items.length})`);
    const job = await page.evaluate(async (id) => {
      const t = JSON.parse(localStorage.getItem('seidra.session') ?? 'null')?.accessToken;
      return (await fetch(`/api/jobs/${id}`, { headers: { authorization: `Bearer ${t}` } })).json();
    }, found.items[0].id);
    assert(job.status === 'succeeded', `job ${job.status}`);
    assert(aliceMedia.includes(job.request.init_image), `request.init_image is a lamplighter image (${job.request.init_image})`);
    // The server keeps strength as a 32-bit float: 0.4 reads back as 0.4000000059604645.
    const near = (/** @type {unknown} */ v) => typeof v === 'number' && Math.abs(v - 0.4) < 1e-6;
    assert(near(job.request.strength), `request.strength ${job.request.strength}`);
    const out = await (await apiAs(token, `/api/media?q=${encodeURIComponent('a harbour at night')}`)).json();
    assert(out.total === 1 && near(out.items[0].parameters?.strength), `the output records the strength (${JSON.stringify(out.items[0]?.parameters?.strength)})`);
    // Reuse settings brings the init image and the strength back, as typed.
    await page.locator('#init_image').getByText('Choose another image').waitFor();
    await section.getByRole('button', { name: 'Remove' }).click();
    assert(!(await page.locator('#strength').count()), 'init image removed');
    await card.getByRole('button', { name: 'Reuse settings' }).click();
    await section.getByText('Strength: 0.4', { exact: true }).waitFor();
    assert((await page.inputValue('#strength')) === '0.4', 'strength reused');
    await waitFor(() => thumb.evaluate((e) => e instanceof HTMLImageElement && e.complete && e.naturalWidth > 0), 'the reused init image thumbnail');
  });

  await step('Library: 10,000 rows stay windowed (only visible tiles in the DOM)', async () => {
    // The real API answers with a total of 10,000 here; the pages are the same two items repeated.
    await page.route('**/api/media?*', async (route) => {
      const url = new URL(route.request().url());
      const res = await route.fetch({ url: `${url.origin}/api/media?q=lamplighter` });
      const body = await res.json();
      const offset = Number(url.searchParams.get('offset') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 100);
      const items = Array.from({ length: Math.min(limit, 10_000 - offset) }, (_, i) => ({ ...body.items[i % 2], id: `00000000-0000-4000-8000-${String(offset + i).padStart(12, '0')}` }));
      await route.fulfill({ json: { items, total: 10_000, limit, offset } });
    });
    await go('/library');
    await page.locator('#library-gallery-title').getByText('10,000 items').or(page.locator('#library-gallery-title').getByText('10000 items')).waitFor();
    const inDom = await page.locator('.tile').count();
    assert(inDom > 0 && inDom < 120, `tiles in the DOM: ${inDom}`);
    await page.locator('.gallery-scroll').evaluate((el) => {
      el.scrollTop = el.scrollHeight / 2;
    });
    await waitFor(async () => (await page.locator('.tile[aria-posinset="5001"]').count()) === 1 || (await page.locator('.tile').first().getAttribute('aria-posinset')) !== '1', 'middle rows rendered');
    await waitFor(async () => (await page.locator('.tile .tile-open:not([disabled])').count()) > 0, 'middle page loaded');
    assert((await page.locator('.tile').count()) < 120, 'still windowed in the middle');
    await page.unroute('**/api/media?*');
  });

  let timelineUrl = '';
  await step('Video Studio: timelines are created, renamed and deleted from the list', async () => {
    await go('/video');
    await page.getByText('No timelines yet').waitFor();
    assert(!(await page.locator('.soon-tag').count()), 'no "Soon" tag left in the navigation');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.locator('#new-timeline-name-error').waitFor();
    await page.fill('#new-timeline-name', 'Scratch');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL(/\/video\?id=/);
    await page.getByRole('heading', { name: 'Editing “Scratch”' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Video Studio' }).click();
    await page.waitForURL(/\/video$/);
    await page.getByRole('button', { name: 'Rename Scratch' }).click();
    await page.locator('.video-rename input').fill('Scratch two');
    await page.keyboard.press('Enter');
    await page.locator('.video-open', { hasText: 'Scratch two' }).waitFor();
    await page.getByRole('button', { name: 'Delete Scratch two' }).click();
    await page.getByRole('button', { name: 'Delete for good' }).click();
    await page.getByText('No timelines yet').waitFor();
  });

  await step('Video Studio: 2 library images on a timeline, moved by keyboard and pointer, saved (a 422 lands on its field)', async () => {
    await page.fill('#new-timeline-name', 'Fox story');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/video\?id=/);
    timelineUrl = new URL(page.url()).pathname + new URL(page.url()).search;
    await page.getByRole('heading', { name: 'Editing “Fox story”' }).waitFor();
    for (const [field, value] of [['#tl-width', '320'], ['#tl-height', '180']]) {
      await page.fill(field, value);
      await page.keyboard.press('Enter');
    }
    for (const n of [0, 1]) {
      await page.getByRole('button', { name: 'Add to track 1 (Images) from the library' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.locator('.picker-item').nth(n).click();
      await dialog.waitFor({ state: 'detached' });
    }
    const clips = page.locator('.tl-clip-image');
    await waitFor(async () => (await clips.count()) === 2, '2 clips on the image track');
    // Keyboard: the second clip (3–6 s) moves 1 s later with Shift+→.
    await clips.nth(1).focus();
    await page.keyboard.press('Shift+ArrowRight');
    await waitFor(async () => /from 0:04\.0 to 0:07\.0/.test((await clips.nth(1).getAttribute('aria-label')) ?? ''), 'the clip moved to 4 s');
    // Pointer: dragging the first clip's end edge 2 s to the right stops at the next clip (4 s).
    const edge = clips.nth(0).locator('.tl-edge-end');
    const box = await edge.boundingBox();
    if (!box) throw new Error('the end edge is not visible');
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + 60, box.y + box.height / 2, { steps: 5 });
    await page.mouse.move(box.x + 130, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await waitFor(async () => /from 0:00\.0 to 0:04\.0/.test((await clips.nth(0).getAttribute('aria-label')) ?? ''), 'the first clip resized to 4 s');
    // Dragged onto the second clip (4–7 s), the first one goes to the nearest gap: after it, at 7 s.
    const first = await clips.nth(0).boundingBox();
    if (!first) throw new Error('the first clip is not visible');
    await page.mouse.move(first.x + first.width / 2, first.y + first.height / 2);
    await page.mouse.down();
    for (const dx of [20, 120, 240, 360]) await page.mouse.move(first.x + first.width / 2 + dx, first.y + first.height / 2, { steps: 4 });
    await page.mouse.up();
    await waitFor(async () => /from 0:07\.0 to 0:11\.0/.test((await clips.nth(1).getAttribute('aria-label')) ?? ''), 'the dragged clip placed after the other');
    // The server's validation error is shown on the field it names.
    await page.fill('#tl-fps', '0');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('#tl-fps-error').waitFor();
    assert((await page.locator('#tl-fps').getAttribute('aria-invalid')) === 'true', 'fps marked invalid');
    await page.getByRole('alert').filter({ hasText: 'At fps:' }).waitFor();
    await page.fill('#tl-fps', '25');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText(/“Fox story” saved \(revision 2\)/).waitFor();
    const token = await storedToken();
    const id = new URL(page.url()).searchParams.get('id');
    const saved = await (await apiAs(token, `/api/video/timelines/${id}`)).json();
    const starts = saved.spec.tracks[0].clips.map((c) => [c.start, c.duration]);
    assert(JSON.stringify(starts) === '[[4,3],[7,4]]', `saved clips ${JSON.stringify(starts)}`);
  });

  await step('Video Studio: narration becomes a sound clip with its waveform', async () => {
    await page.fill('#narration-text', 'Once upon a time, a red fox crossed the snow.');
    await page.getByRole('button', { name: 'Speak and add' }).click();
    const audio = page.locator('.tl-clip-audio');
    await audio.waitFor({ timeout: 30_000 });
    await page.locator('.tl-clip-audio .tl-wave path').waitFor({ timeout: 15_000 });
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText(/“Fox story” saved \(revision 3\)/).waitFor();
  });

  await step('Video Studio: a save made elsewhere meanwhile is caught (409), then overwritten on request', async () => {
    const token = await storedToken();
    const id = new URL(page.url()).searchParams.get('id');
    const current = await (await apiAs(token, `/api/video/timelines/${id}`)).json();
    const elsewhere = await apiAs(token, `/api/video/timelines/${id}`, {
      method: 'PUT',
      headers: { 'if-match': `"${current.revision}"` },
      body: JSON.stringify({ ...current.spec, name: 'Fox story (other tab)' }),
    });
    assert(elsewhere.status === 200, `the other tab's save: ${elsewhere.status}`);
    await page.fill('#tl-fps', '24');
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'saved elsewhere meanwhile (now revision 4)' }).waitFor();
    const untouched = await (await apiAs(token, `/api/video/timelines/${id}`)).json();
    assert(untouched.spec.fps === 25 && untouched.revision === 4, `the other save stands (${untouched.spec.fps} fps, revision ${untouched.revision})`);
    await page.getByRole('button', { name: 'Overwrite' }).click();
    await page.getByText(/“Fox story” saved \(revision 5\)/).waitFor();
  });

  await step('Video Studio: render → live progress → the MP4 plays; the proxy preview too', async () => {
    await page.getByRole('button', { name: 'Render MP4' }).click();
    const player = page.locator('.video-player video');
    await player.waitFor({ timeout: 120_000 });
    assert(((await player.getAttribute('src')) ?? '').length > 0, 'the player has a source');
    await waitFor(() => player.evaluate((v) => v instanceof HTMLVideoElement && v.readyState >= 1 && v.duration > 10.5), 'the MP4 loads (11 s)', 30_000);
    await page.getByRole('link', { name: 'Download MP4' }).waitFor();
    // Seeking the player draws its position across the tracks (at 5 s: 300 px at 60 px/s).
    await player.evaluate((v) => {
      if (v instanceof HTMLVideoElement) v.currentTime = 5;
    });
    await page.locator('.tl-playhead').waitFor();
    const token = await storedToken();
    const renders = await (await apiAs(token, '/api/jobs?type=storyboard&limit=1')).json();
    assert(renders.items[0]?.status === 'succeeded', `the render job succeeded (${renders.items[0]?.status})`);
    assert((await page.locator('.render-row').filter({ hasText: 'Render MP4' }).locator('.badge-succeeded').count()) === 1, 'the render row says Succeeded');
    await screen('21d-video-studio');
    await page.getByRole('button', { name: 'Proxy preview' }).click();
    await page.getByRole('figure').getByText('Proxy preview of Fox story').waitFor({ timeout: 120_000 });
    await waitFor(() => player.evaluate((v) => v instanceof HTMLVideoElement && v.readyState >= 1 && v.videoHeight === 180), 'the proxy loads', 30_000);
    await axe('/video (editor)');
  });

  await step('Video Studio: a talking head — local checks name their fields; a portrait and spoken text go to the SadTalker engine; a refusal fails the job with its detail; then the video plays', async () => {
    await go('/video');
    const panel = page.locator('form[aria-labelledby="th-title"]');
    await panel.getByRole('heading', { name: 'Talking head' }).waitFor();
    const submit = panel.getByRole('button', { name: 'Make the video' });
    await panel.getByRole('radio', { name: 'Text, spoken first' }).check();
    await page.fill('#th-pose', '46');
    await submit.click();
    await page.locator('#th-image-error').getByText('Choose a portrait.').waitFor();
    await page.locator('#th-text-error').getByText('Write what should be said.').waitFor();
    await page.locator('#th-pose-error').getByText('Pose style is a whole number from 0 to 45.').waitFor();
    assert((await page.getAttribute('#th-pose', 'aria-invalid')) === 'true', 'pose marked invalid');
    await panel.getByRole('button', { name: 'Portrait Choose a portrait' }).click();
    const picker = page.getByRole('dialog', { name: 'Choose a portrait' });
    await picker.locator('#picker-search').fill('dusk');
    await picker.locator('#picker-search').press('Enter');
    await waitFor(async () => (await picker.locator('.picker-item').count()) === 2, 'two lamplighter-at-dusk portraits');
    await picker.locator('.picker-item').first().click();
    await picker.waitFor({ state: 'detached' });
    await page.locator('#th-image-name').getByText(/lamplighter/).waitFor();
    assert(!(await page.locator('.tl-job').count()), 'Enter in the picker search submitted nothing');
    await page.fill('#th-text', 'Good evening. The lamps are lit along the harbour.');
    await page.fill('#th-pose', '7');
    await page.selectOption('#th-preprocess', 'full');
    await panel.getByRole('checkbox', { name: 'Keep the head still' }).check();
    // The engine refuses this one (SadTalker's "no face"): the job fails at once with the detail.
    sadtalker.failNext('No face is detected in the input file');
    await submit.click();
    await panel.locator('.badge-failed').waitFor({ timeout: 90_000 });
    await panel.locator('.tl-job .field-error').getByText(/No face is detected in the input file/).waitFor();
    // Again: rendered this time, followed live, and played in place.
    await submit.click();
    const video = panel.locator('.video-player video');
    await video.waitFor({ timeout: 120_000 });
    await panel.locator('.badge-succeeded').waitFor();
    assert(((await video.getAttribute('src')) ?? '').length > 0, 'the player has a source');
    await waitFor(() => video.evaluate((v) => v instanceof HTMLVideoElement && v.readyState >= 1 && v.duration > 1 && v.videoWidth === 256), 'the talking-head MP4 loads (256×256, over 1 s)', 30_000);
    const token = await storedToken();
    const heads = await (await apiAs(token, '/api/jobs?type=talking_head&limit=5')).json();
    assert(heads.items.length === 2, `two talking-head jobs (${heads.items.length})`);
    const [done, refused] = heads.items;
    assert(done.status === 'succeeded' && refused.status === 'failed', `statuses ${done.status}, ${refused.status}`);
    assert(refused.error?.code === 'engine_error', `the refusal is an engine error (${JSON.stringify(refused.error)})`);
    const stored = (await (await apiAs(token, `/api/jobs/${done.id}`)).json()).request;
    assert(aliceMedia.includes(stored.image) && stored.speech?.text === 'Good evening. The lamps are lit along the harbour.', `the stored request (${JSON.stringify(stored)})`);
    // What the engine received: both files and every parameter, as chosen in the form.
    const generates = sadtalker.calls.filter((c) => c.path === '/generate');
    assert(generates.length === 2 && generates.every((c) => c.fields), `two /generate calls (${JSON.stringify(generates)})`);
    const sent = /** @type {Record<string, any>} */ (generates[1].fields ?? {});
    assert(generates[1].status === 200, 'the second render answered 200');
    assert(sent.source_image.content_type === 'image/png' && sent.source_image.bytes > 0, `source_image ${JSON.stringify(sent.source_image)}`);
    assert(/^audio\//.test(sent.driven_audio.content_type) && sent.driven_audio.bytes > 1000, `driven_audio ${JSON.stringify(sent.driven_audio)}`);
    const params = { preprocess: sent.preprocess, still: sent.still, enhancer: sent.enhancer, pose_style: sent.pose_style, size: sent.size };
    assert(JSON.stringify(params) === JSON.stringify({ preprocess: 'full', still: 'true', enhancer: 'none', pose_style: '7', size: '256' }), `parameters ${JSON.stringify(params)}`);
    assert(sadtalker.calls.some((c) => c.path === '/health' && c.status === 200), 'the engine was health-checked');
    // The MP4 is a video in the library, with its duration.
    const videos = await (await apiAs(token, '/api/media?type=video&limit=20')).json();
    const item = videos.items.find((m) => m.job_id === done.id);
    assert(item && item.duration_secs > 1, `the video in the library (${JSON.stringify(item?.duration_secs)})`);
    await screen('21f-video-talking-head');
  });

  await step('unknown addresses get a page of their own', async () => {
    await go('/no-such-page');
    await axe('/no-such-page');
  });

  await step('375 px wide: no horizontal scrolling; the menu opens and navigates', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    for (const [path, name] of [
      ['/generate', '18-mobile-generate'],
      ['/jobs', '19-mobile-jobs'],
      ['/settings', '20-mobile-settings'],
      ['/notifications', '20b-mobile-notifications'],
      ['/system', '21-mobile-system'],
      ['/personas', '21b-mobile-personas'],
      ['/library', '21c-mobile-library'],
      [timelineUrl, '21e-mobile-video'],
    ]) {
      await go(path);
      await page.waitForLoadState('networkidle').catch(() => undefined);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert(width <= 375, `${path} scrolls horizontally (${width}px)`);
      await screen(name);
    }
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs' }).click();
    await page.waitForURL(/\/jobs/);
    assert(!(await page.locator('#primary-nav.open').count()), 'menu closes after navigating');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step("admin: Users lists the new account; create, disable and re-enable a user (Generate keeps nothing of alice's draft)", async () => {
    await signOut();
    await login('admin', ADMIN_PASSWORD);
    // Generate in this tab starts afresh: nothing of the previous account's draft (prompt, init image).
    assert((await page.inputValue('#prompt')) === '', `the previous account's prompt is gone (${await page.inputValue('#prompt')})`);
    assert(!(await page.locator('#strength').count()), "the previous account's init image is gone");
    await go('/admin/users');
    await page.locator('table tbody tr', { hasText: alice }).waitFor();
    await page.fill('#new-username', 'bob');
    await page.fill('#new-password', PASSWORD);
    await page.getByRole('button', { name: 'Create user' }).last().click();
    const bob = page.locator('table tbody tr', { hasText: 'bob' });
    await bob.waitFor();
    await bob.getByRole('button', { name: 'Disable bob' }).click();
    await bob.getByRole('button', { name: 'Disable now' }).click();
    await bob.getByText('Disabled', { exact: true }).waitFor();
    const refused = await fetch(`${base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'bob', password: PASSWORD }),
    });
    assert(refused.status === 403, `disabled bob cannot sign in (${refused.status})`);
    await bob.getByRole('button', { name: 'Enable' }).click();
    await bob.getByText('Active', { exact: true }).waitFor();
    await page.locator('.audit-list li').first().waitFor();
    await screen('22-admin-users');
  });

  await step("admin: Jobs can show every user's jobs", async () => {
    await go('/jobs?all=1');
    await page.locator('table.jobs-table tbody tr', { hasText: 'a red fox in the snow' }).waitFor();
    await screen('23-admin-all-jobs');
    const token = await storedToken();
    const list = await (await apiAs(token, `/api/jobs?all=true&search=fox`)).json();
    aliceJobIds.push(...list.items.map((j) => j.id));
  });

  await step('admin: a broadcast arrives live — the bell counts it and the list shows it', async () => {
    await go('/notifications');
    await page.waitForLoadState('networkidle').catch(() => undefined);
    if (await page.getByRole('button', { name: 'Mark all read' }).isEnabled()) await page.getByRole('button', { name: 'Mark all read' }).click();
    await waitFor(async () => (await bellCount()) === 0, 'no unread before');
    await page.fill('#title', 'Maintenance tonight');
    await page.fill('#body', 'The studio restarts at 22:00.');
    await page.fill('#link', '/system');
    await page.getByRole('button', { name: 'Send to everyone' }).click();
    await page.getByText(/Sent to \d+ accounts?/).waitFor();
    await waitFor(async () => (await bellCount()) === 1, 'the bell counts the broadcast, live');
    await page.locator('.notif-list li', { hasText: 'Maintenance tonight' }).waitFor();
    await screen('23b-admin-notifications');
    await page.locator('.notif-list li', { hasText: 'Maintenance tonight' }).getByRole('button', { name: /^Mark read/ }).click();
    await waitFor(async () => (await bellCount()) === 0, 'bell cleared after mark read');
  });

  await step('admin: Models — rescan finds a checkpoint and refuses a pickle; a LoRA download lands live; removal', async () => {
    const models = join(backend.dataDir, 'models');
    mkdirSync(models, { recursive: true });
    writeFileSync(join(models, 'dreamshaper-tiny.safetensors'), safetensors({ 'model.diffusion_model.out.0.weight': [8], 'cond_stage_model.transformer.text_model.embeddings.position_ids': [1, 77] }));
    writeFileSync(join(models, 'legacy.ckpt'), Buffer.from([0x80, 0x02, 0x7d]));
    await go('/models');
    await page.getByRole('heading', { name: 'Download a model' }).waitFor();
    await page.getByRole('button', { name: 'Rescan' }).click();
    await page.getByText('1 added, 0 updated, 0 removed.').waitFor();
    await page.locator('.rescan-report li', { hasText: 'legacy.ckpt' }).getByText(/pickle/).waitFor();
    await page.locator('table.models-table tbody tr', { hasText: 'dreamshaper-tiny' }).getByText('SD 1.5').waitFor();
    // The server refuses a pickle URL on its field.
    await page.fill('#model-url', `${hooks.files}/model.ckpt`);
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    await page.locator('#model-url-error').getByText(/pickle/).waitFor();
    await page.fill('#model-url', `${hooks.files}/ink-wash.safetensors`);
    await page.fill('#model-name', 'Ink wash');
    await page.getByRole('button', { name: 'Download', exact: true }).click();
    await page.locator('.download-item', { hasText: 'ink-wash.safetensors' }).getByText('100%').waitFor();
    await page.getByRole('button', { name: 'LoRA', exact: true }).click();
    const lora = page.locator('table.models-table tbody tr', { hasText: 'Ink wash' });
    await lora.getByText('SDXL').waitFor();
    await lora.getByText('Downloaded').waitFor();
    await screen('23d-admin-models');
    await lora.getByRole('button', { name: 'Remove Ink wash' }).click();
    await lora.getByRole('button', { name: 'Remove from the catalogue' }).click();
    await lora.waitFor({ state: 'detached' });
  });

  await step('admin: Settings shows the content policy editor', async () => {
    await go('/settings');
    await page.getByRole('heading', { name: 'Content policy' }).waitFor();
    await page.getByRole('button', { name: 'Add a category' }).click();
    await page.fill('#policy-0-name', 'e2e_words');
    await page.fill('#policy-0-terms', 'forbiddenword');
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/admin/content-policy') && r.request().method() === 'PUT');
    await page.getByRole('form', { name: 'Content policy' }).getByRole('button', { name: 'Save' }).click();
    assert((await saved).ok(), 'policy saved');
    await page.getByText('Version 1').waitFor();
    await screen('23c-admin-settings');
  });

  await step("a second user cannot see the first user's jobs", async () => {
    await signOut();
    await login('bob', PASSWORD);
    await page.locator('.generate-results .empty').waitFor();
    await go('/jobs');
    await page.getByText('No jobs yet').waitFor();
    await screen('24-second-user-jobs');
    await go(`/jobs?job=${aliceJobIds[0]}`);
    await page.getByRole('dialog').getByText('does not exist or is not yours').waitFor();
    const token = await storedToken();
    for (const id of aliceJobIds) {
      const res = await apiAs(token, `/api/jobs/${id}`);
      assert(res.status === 404, `bob reads alice's job ${id}: ${res.status}`);
    }
    const stats = await (await apiAs(token, '/api/jobs/stats')).json();
    assert(stats.total === 0, `bob's stats count ${stats.total} jobs`);
  });

  await step("a second user sees none of the first user's personas or media", async () => {
    await go('/personas');
    await page.getByText('No persona yet').waitFor();
    await go('/library');
    await page.getByText('Your library is empty').waitFor();
    await screen('24b-second-user-library');
    const token = await storedToken();
    for (const id of aliceMedia) {
      for (const init of [{}, { method: 'PATCH', body: JSON.stringify({ favorite: false }) }, { method: 'DELETE' }]) {
        const res = await apiAs(token, `/api/media/${id}`, init);
        assert(res.status === 404, `bob ${init.method ?? 'GET'}s alice's media ${id}: ${res.status}`);
      }
    }
    const persona = await apiAs(token, `/api/personas/${personaId}`);
    assert(persona.status === 404, `bob reads alice's persona: ${persona.status}`);
    const preview = await apiAs(token, `/api/personas/${personaId}/preview`, { method: 'POST', body: '{}' });
    assert(preview.status === 404, `bob previews alice's persona: ${preview.status}`);
    const bulk = await apiAs(token, '/api/media/bulk', { method: 'POST', body: JSON.stringify({ action: 'delete', ids: aliceMedia }) });
    const bulkBody = await bulk.json();
    assert(bulkBody.succeeded === 0, `bob bulk-deletes alice's media: ${JSON.stringify(bulkBody)}`);
    const list = await (await apiAs(token, '/api/media')).json();
    assert(list.total === 0, `bob's library lists ${list.total}`);
    const exp = await apiAs(token, '/api/media/export', { method: 'POST', body: JSON.stringify({ ids: aliceMedia }) });
    assert(exp.status === 404 || exp.status === 422, `bob exports alice's media: ${exp.status}`);
    await go('/jobs');
  });

  await step('an expired access token is refreshed once, transparently', async () => {
    // Age the stored access token so the app must refresh before its next call.
    // Read the refresh token in the same tick that ages the access token: the running app may
    // refresh as soon as it notices, even before the reload.
    const before = await page.evaluate(() => {
      const s = JSON.parse(localStorage.getItem('seidra.session') ?? 'null');
      s.expiresAt = Date.now() - 1000;
      localStorage.setItem('seidra.session', JSON.stringify(s));
      return s.refreshToken;
    });
    await page.reload();
    await page.locator('main h1').waitFor();
    await page.locator('.live-open').waitFor();
    // The refresh runs before the first API call; the page may paint before it is stored.
    const rotated = async () => (await page.evaluate(() => JSON.parse(localStorage.getItem('seidra.session') ?? 'null').refreshToken)) !== before;
    await waitFor(rotated, 'refresh token rotated', 10_000);
    assert(page.url().includes('/jobs'), 'still signed in');
  });

  assert(consoleProblems.length === 0, `browser errors:\n${consoleProblems.join('\n')}`);
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(`\n✗ ${err instanceof Error ? err.stack : String(err)}`);
  if (page) await page.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => undefined);
  try {
    const log = readFileSync(join(artifacts, 'backend.log'), 'utf8').split('\n').slice(-25).join('\n');
    console.error(`\n--- backend log (tail) ---\n${log}`);
  } catch {
    // no log
  }
  if (consoleProblems.length) console.error(`\n--- browser errors ---\n${consoleProblems.join('\n')}`);
} finally {
  await cleanup();
}
writeFileSync(join(artifacts, 'axe-report.json'), JSON.stringify(axeReport, null, 2));
const minor = axeReport.flatMap((r) => r.violations.filter((v) => v.impact === 'moderate' || v.impact === 'minor').map((v) => `${r.screen}: ${v.impact} ${v.id}`));
console.log(`\n${results.filter((r) => r.ok).length}/${results.length} steps passed; screenshots in e2e/screenshots/`);
if (minor.length) console.log(`axe (moderate/minor, not failing): ${[...new Set(minor)].join('; ')}`);
process.exit(failed ? 1 : 0);
