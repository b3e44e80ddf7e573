// A tiny static server for the built app (SPA fallback, long-cache hashed assets) that proxies
// the backend's paths — HTTP and WebSocket — to a running `seidra up`.
//
// It exists only until `seidra up` serves frontend/dist itself; then the e2e tests run with
// SEIDRA_E2E_BACKEND_SERVES_UI=1 and this file can be deleted. It mirrors the backend's
// Content-Security-Policy so the app is tested under the same rules it will meet in production.
//
// Usage as a module: `startServer({ root, backend, port })`; from the command line:
//   node e2e/serve.mjs [--port 5173] [--backend http://127.0.0.1:8080] [--root dist]
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const BACKEND_PREFIXES = ['/api/', '/ws', '/files/', '/metrics', '/healthz', '/readyz'];
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
// Same policy as crates/seidra-api/src/server.rs (security_headers).
const CSP =
  "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; " +
  "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'";

const isBackendPath = (path) => BACKEND_PREFIXES.some((p) => path === p.replace(/\/$/, '') || path.startsWith(p));

/**
 * @param {{ root: string, backend: string, port?: number, host?: string }} options
 * @returns {Promise<{ url: string, server: http.Server, dropWebSockets: () => void, blockWebSockets: (on: boolean) => void, close: () => Promise<void> }>}
 */
export function startServer({ root, backend, port = 0, host = '127.0.0.1' }) {
  const target = new URL(backend);
  const dist = resolve(root);
  /** @type {Set<import('node:stream').Duplex>} */
  const upgraded = new Set();
  let blockWs = false;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (isBackendPath(url.pathname)) {
      const upstream = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'bad_gateway', message: 'the backend is unreachable' } }));
      });
      req.pipe(upstream);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    let file = normalize(join(dist, decodeURIComponent(url.pathname)));
    if (!file.startsWith(dist + sep) && file !== dist) {
      res.writeHead(400).end();
      return;
    }
    const isFile = existsSync(file) && statSync(file).isFile();
    if (!isFile) file = join(dist, 'index.html'); // SPA fallback
    const headers = {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': url.pathname.startsWith('/assets/') && isFile ? 'public, max-age=31536000, immutable' : 'no-cache',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    res.writeHead(200, headers);
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });

  // WebSocket: replay the upgrade request to the backend, then splice the two sockets.
  server.on('upgrade', (req, socket, head) => {
    if (blockWs || !isBackendPath(new URL(req.url ?? '/', 'http://x').pathname)) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const up = net.connect(Number(target.port), target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        const value = name.toLowerCase() === 'host' ? target.host : req.rawHeaders[i + 1];
        lines.push(`${name}: ${value}`);
      }
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    upgraded.add(socket);
    const cleanup = () => {
      upgraded.delete(socket);
      up.destroy();
      socket.destroy();
    };
    up.on('error', cleanup);
    socket.on('error', cleanup);
    up.on('close', cleanup);
    socket.on('close', cleanup);
  });

  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolvePromise({
        url: `http://${host}:${address.port}`,
        server,
        dropWebSockets: () => {
          for (const s of upgraded) s.destroy();
        },
        blockWebSockets: (on) => {
          blockWs = on;
        },
        close: () =>
          new Promise((done) => {
            for (const s of upgraded) s.destroy();
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
  };
  const here = fileURLToPath(new URL('..', import.meta.url));
  const { url } = await startServer({
    root: arg('--root', join(here, 'dist')),
    backend: arg('--backend', 'http://127.0.0.1:8080'),
    port: Number(arg('--port', '5173')),
  });
  console.log(`serving the app at ${url}`);
}
