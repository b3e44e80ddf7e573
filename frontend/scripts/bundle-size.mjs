// Measures what the browser must download before the app starts: the JS (and CSS) that
// dist/index.html references (entry script + modulepreloads), gzipped. Fails above the budget.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET_JS = 300 * 1024; // initial JS, gzipped (issue #6)
const dist = resolve(dirname(fileURLToPath(import.meta.url)), '../dist');
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const refs = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
let js = 0;
let css = 0;
const rows = [];
for (const ref of new Set(refs)) {
  const raw = readFileSync(join(dist, ref));
  const gz = gzipSync(raw, { level: 9 }).length;
  if (ref.endsWith('.js')) js += gz;
  else css += gz;
  rows.push(`  ${ref}  ${(raw.length / 1024).toFixed(1)} KiB raw, ${(gz / 1024).toFixed(1)} KiB gzipped`);
}
console.log(rows.join('\n'));
console.log(`initial JS: ${(js / 1024).toFixed(1)} KiB gzipped (budget ${BUDGET_JS / 1024} KiB); CSS: ${(css / 1024).toFixed(1)} KiB gzipped`);
if (js === 0) {
  console.error('bundle-size: no script found in dist/index.html');
  process.exit(1);
}
if (js > BUDGET_JS) {
  console.error('bundle-size: over budget');
  process.exit(1);
}
