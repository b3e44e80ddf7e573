# shellcheck shell=bash
# Shared by the small bench scripts (sourced): the binary under test and a free loopback port.

# The seidra binary to measure: SEIDRA_BENCH_BIN, else a release build of the working tree.
bench_seidra_bin() {
  if [[ -n ${SEIDRA_BENCH_BIN:-} ]]; then
    echo "$SEIDRA_BENCH_BIN"
  else
    cargo build --quiet --release -p seidra --manifest-path "$ROOT/Cargo.toml"
    echo "$ROOT/target/release/seidra"
  fi
}

# A TCP port free on 127.0.0.1 right now.
bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
