import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import type { Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

/** Writes `.br` and `.gz` beside each text asset of the build; `seidra up` serves them as is. */
function precompress(): Plugin {
  let outDir = 'dist';
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  return {
    name: 'seidra-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      for (const file of walk(outDir).filter((f) => /\.(js|css|html|svg|json|txt)$/.test(f))) {
        const raw = readFileSync(file);
        if (raw.length < 1024) continue;
        writeFileSync(`${file}.gz`, gzipSync(raw, { level: 9 }));
        writeFileSync(`${file}.br`, brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
      }
    },
  };
}

// The dev server proxies the API to a running `seidra up` (SEIDRA_DEV_BACKEND, default :8080),
// so the app always talks to its own origin, exactly as in production.
const backend = process.env.SEIDRA_DEV_BACKEND ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [precompress()],
  // JSX/TSX is compiled by Vite's built-in transformer (no React plugin: no fast refresh, one less dependency).
  server: {
    proxy: {
      '/api': backend,
      '/files': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
    },
  },
  build: {
    target: 'es2022',
    sourcemap: false,
    // Fail loudly if the initial chunk grows past the budget (checked precisely by scripts/bundle-size.mjs).
    chunkSizeWarningLimit: 600,
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
