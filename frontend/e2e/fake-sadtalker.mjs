// A fake SadTalker-compatible server for the e2e tests, speaking SEIDRA's protocol
// (docs/ENGINES.md, "SadTalker: talking heads"; the Rust twin is
// crates/seidra-testkit/src/fake_engines.rs, FakeEngine::sadtalker):
//
//   GET  /health    → 200 {"status":"ok"}
//   POST /generate  multipart/form-data: files `source_image` (PNG/JPEG/WebP) and `driven_audio`
//                   (WAV/MP3/Ogg/FLAC), text fields preprocess, still, enhancer, pose_style,
//                   expression_scale, size, batch_size (every one always sent)
//                   → 200 video/mp4: the image looped over the audio (H.264 + AAC, made by ffmpeg)
//
// Refusals use FastAPI's shape, `{"detail": "…"}`: 400 for a body that is not multipart, 422 for
// a missing or invalid field, 413 for a body over 64 MiB. `failNext(detail)` makes the next
// /generate answer 400 with that detail (SadTalker's "no face" refusal). Every call is recorded
// in `calls` (files as {filename, content_type, bytes}, text fields as strings).
//
// Usage as a module: `startFakeSadTalker({ host, port })`; from the command line:
//   node e2e/fake-sadtalker.mjs [--port 8002]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_BODY = 64 * 1024 * 1024;
const FILES = ['source_image', 'driven_audio'];
/** Text fields and their checks, as the wrapper's form declaration would have them. */
const TEXT = {
  preprocess: (v) => ['crop', 'resize', 'full', 'extcrop', 'extfull'].includes(v),
  still: (v) => v === 'true' || v === 'false',
  enhancer: (v) => ['none', 'gfpgan', 'RestoreFormer'].includes(v),
  pose_style: (v) => /^\d+$/.test(v) && Number(v) <= 45,
  expression_scale: (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  size: (v) => v === '256' || v === '512',
  batch_size: (v) => /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 10,
};

class Refusal extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Parses a multipart/form-data body into parts {name, filename?, contentType?, data}. */
export function parseMultipart(body, boundary) {
  const delimiter = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  const parts = [];
  let pos = body.indexOf(delimiter);
  if (pos !== 0) throw new Refusal(400, 'malformed multipart body: no opening boundary');
  for (;;) {
    pos += delimiter.length;
    if (body.subarray(pos, pos + 2).toString() === '--') return parts; // closing delimiter
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Refusal(400, 'malformed multipart body: bad boundary line');
    pos += 2;
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw new Refusal(400, 'malformed multipart body: unterminated part headers');
    const headers = {};
    for (const line of body.subarray(pos, headerEnd).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const disposition = headers['content-disposition'] ?? '';
    const name = /(?:^|;)\s*name="([^"]*)"/i.exec(disposition)?.[1];
    if (!/^form-data\b/i.test(disposition) || name === undefined) throw new Refusal(400, 'malformed multipart body: a part without a form-data name');
    const filename = /;\s*filename="([^"]*)"/i.exec(disposition)?.[1];
    const end = body.indexOf(next, headerEnd + 4);
    if (end < 0) throw new Refusal(400, 'malformed multipart body: unterminated part');
    parts.push({ name, filename, contentType: headers['content-type'], data: body.subarray(headerEnd + 4, end) });
    pos = end + 2;
  }
}

function imageExt(b) {
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpg';
  if (b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP') return 'webp';
  return null;
}

function audioExt(b) {
  if (b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WAVE') return 'wav';
  if (b.subarray(0, 3).toString('latin1') === 'ID3' || (b[0] === 0xff && (b[1] & 0xe0) === 0xe0)) return 'mp3';
  if (b.subarray(0, 4).toString('latin1') === 'OggS') return 'ogg';
  if (b.subarray(0, 4).toString('latin1') === 'fLaC') return 'flac';
  return null;
}

/** The still image looped over the audio: H.264 + AAC, size×size, as long as the audio. */
function renderMp4(image, imageType, audio, audioType, size) {
  const dir = mkdtempSync(join(tmpdir(), 'fake-sadtalker-'));
  const img = join(dir, `source.${imageType}`);
  const wav = join(dir, `audio.${audioType}`);
  const out = join(dir, 'out.mp4');
  writeFileSync(img, image);
  writeFileSync(wav, audio);
  const args = ['-v', 'error', '-nostdin', '-loop', '1', '-framerate', '25', '-i', img, '-i', wav];
  args.push('-vf', `scale=${size}:${size},format=yuv420p`, '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'stillimage');
  args.push('-c:a', 'aac', '-b:a', '64k', '-shortest', '-movflags', '+faststart', '-y', out);
  return new Promise((resolve, reject) => {
    const ff = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    ff.stderr.on('data', (c) => (stderr += c));
    ff.on('error', (e) => {
      rmSync(dir, { recursive: true, force: true });
      reject(e);
    });
    ff.on('close', (code) => {
      try {
        if (code === 0) resolve(readFileSync(out));
        else reject(new Error(`ffmpeg exited with ${code}: ${stderr.trim()}`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/** Checks a /generate body; returns the recorded fields and the inputs to render. */
function checkGenerate(req, body) {
  const type = req.headers['content-type'] ?? '';
  const boundary = /^multipart\/form-data\s*;.*\bboundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
  if (!boundary) throw new Refusal(400, 'expected a multipart/form-data body');
  /** @type {Record<string, any>} */
  const fields = {};
  /** @type {Record<string, Buffer>} */
  const files = {};
  for (const part of parseMultipart(body, boundary[1] ?? boundary[2])) {
    if (part.name in fields) throw new Refusal(422, `${part.name}: sent twice`);
    if (FILES.includes(part.name)) {
      if (part.filename === undefined) throw new Refusal(422, `${part.name}: expected an uploaded file`);
      fields[part.name] = { filename: part.filename, content_type: part.contentType ?? null, bytes: part.data.length };
      files[part.name] = part.data;
    } else if (part.name in TEXT) {
      const value = part.data.toString('utf8');
      if (!TEXT[part.name](value)) throw new Refusal(422, `${part.name}: invalid value \`${value}\``);
      fields[part.name] = value;
    } else {
      throw new Refusal(422, `unexpected field \`${part.name}\``);
    }
  }
  for (const name of [...FILES, ...Object.keys(TEXT)]) {
    if (!(name in fields)) throw new Refusal(422, `${name}: field required`);
  }
  const imageType = imageExt(files.source_image);
  if (!imageType) throw new Refusal(422, 'source_image: not a PNG, JPEG or WebP image');
  const audioType = audioExt(files.driven_audio);
  if (!audioType) throw new Refusal(422, 'driven_audio: not a WAV, MP3, Ogg or FLAC file');
  return { fields, image: files.source_image, imageType, audio: files.driven_audio, audioType };
}

/**
 * @param {{ host?: string, port?: number }} [options]
 * @returns {Promise<{ url: string, calls: { method: string, path: string, status: number, fields?: Record<string, any>, detail?: string }[], failNext: (detail: string) => void, close: () => Promise<void> }>}
 */
export function startFakeSadTalker({ host = '127.0.0.1', port = 0 } = {}) {
  /** @type {{ method: string, path: string, status: number, fields?: Record<string, any>, detail?: string }[]} */
  const calls = [];
  /** @type {string | null} */
  let refuseNext = null;

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const answer = (status, json, fields) => {
      calls.push({ method: req.method ?? '', path, status, ...(fields ? { fields } : {}), ...(json?.detail ? { detail: json.detail } : {}) });
      if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    };
    if (path === '/health') {
      if (req.method !== 'GET') return answer(405, { detail: 'Method Not Allowed' });
      return answer(200, { status: 'ok', device: 'cpu' });
    }
    if (path !== '/generate') return answer(404, { detail: 'Not Found' });
    if (req.method !== 'POST') return answer(405, { detail: 'Method Not Allowed' });
    const chunks = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => void respond());
    const respond = async () => {
      if (tooBig) return answer(413, { detail: 'request body too large' });
      let checked;
      try {
        checked = checkGenerate(req, Buffer.concat(chunks));
      } catch (err) {
        if (err instanceof Refusal) return answer(err.status, { detail: err.message });
        return answer(500, { detail: String(err) });
      }
      if (refuseNext !== null) {
        const detail = refuseNext;
        refuseNext = null;
        return answer(400, { detail }, checked.fields);
      }
      try {
        const video = await renderMp4(checked.image, checked.imageType, checked.audio, checked.audioType, checked.fields.size);
        calls.push({ method: 'POST', path, status: 200, fields: checked.fields });
        res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': video.length }).end(video);
      } catch (err) {
        answer(500, { detail: `ffmpeg failed: ${err instanceof Error ? err.message : String(err)}` }, checked.fields);
      }
    };
  });

  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolvePromise({
        url: `http://${host}:${address.port}`,
        calls,
        failNext: (detail) => {
          refuseNext = detail;
        },
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const { url } = await startFakeSadTalker({ port: i > 0 ? Number(process.argv[i + 1]) : 8002 });
  console.log(`fake SadTalker at ${url}`);
}
