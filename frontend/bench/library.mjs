// Web studio performance budget (issue 6): the initial load of the built app, and scrolling a
// Library of 10,000 items in Debian's Chromium against a real `seidra up` (SQLite).
//
//   cd frontend && npm run build && node bench/library.mjs [--items 10000] [--out FILE]
//
// Environment: SEIDRA_BIN (default ../target/debug/seidra), CHROMIUM (default /usr/bin/chromium).
// Needs sqlite3 (seeding). Method and latest numbers: docs/BENCHMARKS.md, "Web studio".
//
// What it measures:
//   load    gzipped JS and CSS the first page pulls (resource timing), DOMContentLoaded and the
//           largest contentful paint of `/login`, cold cache;
//   scroll  the Library with N items, scrolled from top to bottom at a steady 10,000 px/s (a fast fling) by
//           requestAnimationFrame in the page: frame intervals (p50/p95/p99/max), frames over
//           50 ms, long tasks (> 50 ms main-thread work), and how many tiles exist in the DOM at
//           the end (a virtualised grid keeps a screenful, not N).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const items = Number(opt('--items', '10000'));
const out = opt('--out', null);
const bin = process.env.SEIDRA_BIN ?? resolve(root, '../target/debug/seidra');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PASSWORD = 'a-long-enough-passphrase';

const freePort = () =>
  new Promise((ok, fail) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const dataDir = mkdtempSync(join(tmpdir(), 'seidra-ui-bench-'));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
/** @type {Record<string, string | undefined>} */
const env = {
  ...process.env,
  SEIDRA_BIND: `127.0.0.1:${port}`,
  SEIDRA_DATA_DIR: dataDir,
  SEIDRA_ADMIN_PASSWORD: PASSWORD,
  SEIDRA_ALLOW_REGISTRATION: 'true',
  SEIDRA_RATE_LIMIT__ENABLED: 'false',
  SEIDRA_UI_DIR: join(root, 'dist'),
  SEIDRA_LOG_LEVEL: 'warn',
};
delete env.SEIDRA_BIN;
const server = spawn(bin, ['up'], { env, stdio: 'ignore' });
let browser;
try {
  for (let i = 0; ; i++) {
    if (i > 300) throw new Error('seidra up did not become ready');
    if (await fetch(`${base}/readyz`).then((r) => r.ok, () => false)) break;
    await sleep(100);
  }
  const api = async (path, token, body) => {
    const res = await fetch(`${base}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const username = 'bench';
  const { access_token: token } = await api('/api/auth/register', null, { username, password: PASSWORD });
  // One real item with its thumbnails, cloned N times by SQL (as bench/jobs.sh seeds the API).
  const submitted = await api('/api/generate/single', token, { prompt: 'a lighthouse at dusk', width: 256, height: 256, num_inference_steps: 2 });
  const jobId = submitted.job_ids[0];
  let template;
  for (let i = 0; ; i++) {
    if (i > 600) throw new Error('the template item never got its thumbnails');
    const page = await api(`/api/media?job_id=${jobId}`, token);
    template = page.items[0];
    if (template?.thumbnail_state === 'ready') break;
    await sleep(100);
  }
  const hex = template.id.replaceAll('-', '');
  const columns =
    'owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, created_at, kind, source, favorite, prompt, ' +
    'negative_prompt, engine, model, parameters, persona_id, persona_version, tags, updated_at, original_name, duration_ms, ' +
    'thumb_state, thumb_256_key, thumb_768_key, thumb_attempts, thumb_lease_until';
  const sql = `.timeout 30000
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${items - 1})
INSERT INTO media (id, ${columns})
SELECT randomblob(16), t.owner_id, t.job_id, n.i, t.storage_key || '#' || n.i, t.mime, t.bytes, t.width, t.height, t.sha256, t.seed + n.i,
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.created_at, printf('%d seconds', -10 * n.i)), t.kind, t.source, n.i % 7 = 0,
       t.prompt || ' #' || n.i, t.negative_prompt, t.engine, t.model, t.parameters, NULL, NULL, '[]',
       strftime('%Y-%m-%dT%H:%M:%f+00:00', t.created_at, printf('%d seconds', -10 * n.i)), NULL, NULL, 'ready',
       t.thumb_256_key, t.thumb_768_key, 0, NULL
FROM media t, n WHERE t.id = X'${hex}';
`;
  execFileSync('sqlite3', [join(dataDir, 'seidra.db')], { input: sql });
  const listed = await api('/api/media?limit=1', token);
  if (listed.total !== items) throw new Error(`seeded ${listed.total} items, wanted ${items}`);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', colorScheme: 'dark' });
  const page = await context.newPage();

  // Initial load, cold cache.
  await page.goto(`${base}/login`, { waitUntil: 'load' });
  await page.locator('#username').waitFor();
  await sleep(500);
  const load = await page.evaluate(
    () =>
      new Promise((done) => {
        let lcp = 0;
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) lcp = Math.max(lcp, e.startTime);
        }).observe({ type: 'largest-contentful-paint', buffered: true });
        setTimeout(() => {
          const nav = /** @type {PerformanceNavigationTiming} */ (performance.getEntriesByType('navigation')[0]);
          const res = /** @type {PerformanceResourceTiming[]} */ (performance.getEntriesByType('resource'));
          const sum = (ext) => res.filter((r) => r.name.split('?')[0].endsWith(ext)).reduce((a, r) => a + r.encodedBodySize, 0);
          done({ js_bytes: sum('.js'), css_bytes: sum('.css'), dom_content_loaded_ms: nav.domContentLoadedEventEnd, lcp_ms: lcp });
        }, 300);
      }),
  );

  // Sign in, open the Library.
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.click('form button[type=submit]');
  await page.waitForURL(/\/generate/);
  await page.goto(`${base}/library`);
  await page.locator('.gallery-scroll .tile').first().waitFor({ timeout: 30_000 });
  await sleep(1000);
  const scroll = await page.evaluate(
    () =>
      new Promise((done) => {
        const el = /** @type {HTMLElement} */ (document.querySelector('.gallery-scroll'));
        const longTasks = [];
        new PerformanceObserver((list) => longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: 'longtask' });
        const speed = 10; // px per ms
        const frames = [];
        let last = performance.now();
        const start = last;
        const step = (now) => {
          frames.push(now - last);
          last = now;
          el.scrollTop = Math.min(el.scrollHeight, (now - start) * speed);
          if (el.scrollTop + el.clientHeight >= el.scrollHeight - 2) {
            setTimeout(() => done({ frames, longTasks, height: el.scrollHeight, tiles: el.querySelectorAll('.tile').length, seconds: (now - start) / 1000 }), 200);
          } else {
            requestAnimationFrame(step);
          }
        };
        requestAnimationFrame(step);
      }),
  );
  const sorted = scroll.frames.slice(1).sort((a, b) => a - b);
  const result = {
    items,
    load: {
      js_gzip_kib: +(load.js_bytes / 1024).toFixed(1),
      css_gzip_kib: +(load.css_bytes / 1024).toFixed(1),
      dom_content_loaded_ms: Math.round(load.dom_content_loaded_ms),
      lcp_ms: Math.round(load.lcp_ms),
    },
    scroll: {
      seconds: +scroll.seconds.toFixed(1),
      scroll_height_px: scroll.height,
      frames: sorted.length,
      frame_ms: { p50: +pct(sorted, 50).toFixed(1), p95: +pct(sorted, 95).toFixed(1), p99: +pct(sorted, 99).toFixed(1), max: +sorted[sorted.length - 1].toFixed(1) },
      frames_over_50ms: sorted.filter((f) => f > 50).length,
      long_tasks: scroll.longTasks.length,
      longest_task_ms: Math.round(Math.max(0, ...scroll.longTasks)),
      tiles_in_dom: scroll.tiles,
    },
    load_average_1m: +(await import('node:os')).loadavg()[0].toFixed(2),
  };
  console.log(JSON.stringify(result, null, 2));
  if (out) writeFileSync(out, JSON.stringify(result, null, 2));
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  await sleep(500);
  rmSync(dataDir, { recursive: true, force: true });
}
