import { defineConfig } from 'vitest/config';

// The dev server proxies the API to a running `seidra up` (SEIDRA_DEV_BACKEND, default :8080),
// so the app always talks to its own origin, exactly as in production.
const backend = process.env.SEIDRA_DEV_BACKEND ?? 'http://127.0.0.1:8080';

export default defineConfig({
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
