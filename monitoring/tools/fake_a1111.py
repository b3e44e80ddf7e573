#!/usr/bin/env python3
"""A tiny AUTOMATIC1111/Forge server for scripts/check-monitoring.sh (Python 3 standard library).

It speaks the part of the real API that SEIDRA's `a1111` remote engine uses
(crates/seidra-engines/src/remote/a1111.rs; the Rust fake in crates/seidra-testkit/src/
fake_engines.rs emulates the same):

  GET  /sdapi/v1/sd-models   health check: the checkpoint list
  POST /sdapi/v1/txt2img     takes ~0.6 s (progress advances meanwhile), answers base64 PNGs of
                             the requested size (`batch_size` of them; a grid first when > 1)
  GET  /sdapi/v1/progress    progress of the running txt2img
  POST /sdapi/v1/interrupt   stops the running txt2img early

Usage: fake_a1111.py PORT [LOG]   (listens on 127.0.0.1:PORT; `METHOD /path` per request to LOG)
"""

from __future__ import annotations

import base64
import json
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STEPS = 6
STEP_DELAY = 0.1
MAX_SIDE = 2048

state = {"step": 0, "steps": 0, "interrupted": False}
lock = threading.Lock()
log_file = None


def png(width: int, height: int, shade: int) -> bytes:
    """A real RGB PNG of one colour."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes([shade, shade // 2, 255 - shade]) * width
    raw = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-a1111/1"

    def log_message(self, fmt, *args):  # one line per request, to LOG only
        if log_file:
            with lock:
                log_file.write(f"{self.command} {self.path.split('?', 1)[0]}\n")
                log_file.flush()

    def reply(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return None

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/sdapi/v1/sd-models":
            self.reply(200, [{"title": "sd15.safetensors [31e35c80fc]", "model_name": "sd15", "hash": "31e35c80fc",
                              "filename": "/models/Stable-diffusion/sd15.safetensors", "config": None}])
        elif path == "/sdapi/v1/progress":
            with lock:
                step, steps = state["step"], state["steps"]
            self.reply(200, {"progress": step / steps if steps else 0.0, "eta_relative": 0.5,
                             "state": {"job_count": int(steps > 0), "sampling_step": step, "sampling_steps": steps},
                             "current_image": None, "textinfo": None})
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        body = self.body()
        if path == "/sdapi/v1/interrupt":
            with lock:
                state["interrupted"] = True
            self.reply(200, {})
            return
        if path != "/sdapi/v1/txt2img":
            self.reply(404, {"detail": "Not Found"})
            return
        width, height = (body or {}).get("width"), (body or {}).get("height")
        if not isinstance(width, int) or not isinstance(height, int) or not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            self.reply(422, {"detail": [{"loc": ["body", "width"], "msg": "value is not a valid integer"}]})
            return
        with lock:
            state.update(step=0, steps=STEPS, interrupted=False)
        for step in range(1, STEPS + 1):
            time.sleep(STEP_DELAY)
            with lock:
                if state["interrupted"]:
                    break
                state["step"] = step
        with lock:
            state.update(step=0, steps=0)
        batch = max(1, int(body.get("batch_size") or 1))
        images = [base64.b64encode(png(width * 2, height, 255)).decode()] if batch > 1 else []
        images += [base64.b64encode(png(width, height, (i * 40) % 256)).decode() for i in range(batch)]
        seed = int(body.get("seed") or 0)
        info = json.dumps({"prompt": body.get("prompt"), "all_seeds": [seed + i for i in range(batch)],
                           "seed": seed, "width": width, "height": height})
        self.reply(200, {"images": images, "parameters": body, "info": info})


def main(argv: list[str]) -> None:
    global log_file
    if len(argv) < 2:
        raise SystemExit(__doc__)
    if len(argv) > 2:
        log_file = open(argv[2], "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler)
    server.daemon_threads = True
    print(f"fake-a1111 listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
