#!/usr/bin/env bash
# Storyboard render speed: a 30 s 1280×720 timeline of 6 stills (pan/zoom, crossfades) with
# narration over music, rendered by `seidra up` (SQLite, one embedded worker) through the API.
# Prints the render time (job started → finished) and the real-time factor (render / 30 s).
# Goal (issue 5): ≤ 1× real time on 2 cores.
#
# Usage: bench/storyboard.sh [--runs N]
#   SEIDRA_BENCH_BIN  seidra binary (default: target/release/seidra, built if missing)
#   SEIDRA_BENCH_PORT port (default 18680)
# Needs curl, jq, ffmpeg, espeak-ng.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="${SEIDRA_BENCH_BIN:-$ROOT/target/release/seidra}"
if [[ ! -x $BIN ]]; then
  (cd "$ROOT" && cargo build --release -p seidra)
fi
PORT="${SEIDRA_BENCH_PORT:-18680}"
BASE="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
PASSWORD="bench-admin-password-01"
cleanup() {
  [[ -n ${SERVER_PID:-} ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Fixtures: six 1920×1080 stills and 30 s of music.
for i in 1 2 3 4 5 6; do
  ffmpeg -v error -f lavfi -i "testsrc2=size=1920x1080:duration=1,hue=h=$((i * 60))" -frames:v 1 -y "$WORK/still$i.png"
done
ffmpeg -v error -f lavfi -i "sine=frequency=220:duration=30" -ar 44100 -y "$WORK/music.wav"

env SEIDRA_BIND="127.0.0.1:$PORT" SEIDRA_DATA_DIR="$WORK/data" SEIDRA_ADMIN_PASSWORD="$PASSWORD" \
  SEIDRA_RATE_LIMIT__ENABLED=false SEIDRA_LOG_LEVEL=warn SEIDRA_WORKER__CONCURRENCY=1 \
  "$BIN" up >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server.log"; exit 1; }
  sleep 0.1
done
TOKEN="$(curl -fsS -X POST "$BASE/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | jq -r .access_token)"
upload() {
  curl -fsS -X POST "$BASE/api/media/uploads" -H "authorization: Bearer $TOKEN" -F "file=@$1" | jq -r '.items[0].id'
}
IDS=()
for i in 1 2 3 4 5 6; do IDS+=("$(upload "$WORK/still$i.png")"); done
MUSIC="$(upload "$WORK/music.wav")"

# Six 5.5 s stills overlapping by 0.5 s crossfades (30 s), narration in three sentences.
SPEC="$(jq -n --argjson ids "$(printf '%s\n' "${IDS[@]}" | jq -R . | jq -s .)" --arg music "$MUSIC" '{
  name: "bench 30 s", width: 1280, height: 720, fps: 25,
  tracks: [
    { kind: "image", clips: [range(0; 6) as $i | {
        start: ($i * 5), duration: (if $i == 5 then 5 else 5.5 end), media_id: $ids[$i],
        pan_zoom: { start_zoom: 1, end_zoom: 1.2, x: 0.5, y: 0.5 }
      } + (if $i > 0 then { transition: { kind: "crossfade", duration: 0.5 } } else {} end)] },
    { kind: "audio", clips: [{ start: 0, duration: 30, media_id: $music, volume: 0.6 }] },
    { kind: "narration", clips: [
        { start: 1, duration: 8, text: "Welcome to the studio. These six pictures tell a short story." },
        { start: 11, duration: 8, text: "Each one slowly zooms in while the music plays underneath." },
        { start: 21, duration: 8, text: "And when the narrator speaks, the music steps back." } ] },
    { kind: "title", clips: [{ start: 27, duration: 3, text: "The End", transition: { kind: "crossfade", duration: 0.5 } }] }
  ] }')"
TL="$(curl -fsS -X POST "$BASE/api/video/timelines" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$SPEC" | jq -r .id)"

for run in $(seq "$RUNS"); do
  JOB="$(curl -fsS -X POST "$BASE/api/video/timelines/$TL/render" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{}' | jq -r '.job_ids[0]')"
  while :; do
    J="$(curl -fsS "$BASE/api/jobs/$JOB" -H "authorization: Bearer $TOKEN")"
    case "$(jq -r .status <<<"$J")" in
      succeeded) break ;;
      failed | cancelled) echo "render failed: $(jq -c .error <<<"$J")" >&2; exit 1 ;;
    esac
    sleep 0.2
  done
  echo "run $run: job $JOB"
  python3 - "$J" <<'PY'
import json, sys
from datetime import datetime
j = json.loads(sys.argv[1])
p = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
secs = (p(j["finished_at"]) - p(j["started_at"])).total_seconds()
print(f"render {secs:.2f} s for 30 s of video: {secs / 30:.2f}x real time (goal <= 1.0x)")
PY
done
