#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer, nightly toolchain) of the pure input
# handling in fuzz/fuzz_targets: image/speech request parsing and validation (job_request),
# the persona merge (persona_merge), timeline validation (timeline) and the upload route's
# multipart parsing, name sanitiser and type sniffer (multipart). Each target runs for a
# fixed time from the committed seeds in fuzz/corpus/<target>; what it learns goes to a
# scratch corpus, so the tree stays clean. A crash or a broken invariant fails the run and
# leaves the input in fuzz/artifacts/<target>/ with the command that replays it.
#
#   scripts/check-fuzz.sh                          every target, 20 s each
#   SEIDRA_FUZZ_SECONDS=600 scripts/check-fuzz.sh  longer runs
#   SEIDRA_FUZZ_TARGETS="timeline multipart" scripts/check-fuzz.sh
#
# Needs `rustup toolchain install nightly` and `cargo install --locked cargo-fuzz@0.13.2`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${SEIDRA_FUZZ_SECONDS:-20}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "check-fuzz: no nightly toolchain (libFuzzer's instrumentation needs it): rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "check-fuzz: cargo-fuzz is not installed: cargo install --locked cargo-fuzz@0.13.2" >&2
  exit 1
fi

# The fuzz crate is its own workspace: the top-level `cargo fmt --all` does not see it.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

read -r -a targets <<<"${SEIDRA_FUZZ_TARGETS:-$(cargo +nightly fuzz list | tr '\n' ' ')}"
# One build of every target first (a build error shows here, not as a fuzzing failure).
for t in "${targets[@]}"; do
  cargo +nightly fuzz build "$t"
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  printf '\n--> %s (%s s)\n' "$t" "$seconds"
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  touch "$scratch/$t.log.start"
  dict=()
  [[ -f fuzz/dicts/$t.dict ]] && dict=("-dict=fuzz/dicts/$t.dict")
  # The scratch corpus comes first: libFuzzer writes new inputs there, and only reads the seeds.
  if ! cargo +nightly fuzz run "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    >"$scratch/$t.log" 2>&1; then
    grep -E -A30 'panicked|ERROR: libFuzzer|SUMMARY' "$scratch/$t.log" | head -n 60 >&2 || tail -n 40 "$scratch/$t.log" >&2
    # cargo fuzz puts the failing input under fuzz/artifacts/<target>/ (crash-…, timeout-…, oom-…).
    artifact="$(find "fuzz/artifacts/$t" -type f -newer "$scratch/$t.log.start" 2>/dev/null | head -n 1)"
    if [[ -n $artifact ]]; then
      echo "check-fuzz: $t failed on $artifact; replay: cargo +nightly fuzz run $t $artifact" >&2
    else
      echo "check-fuzz: $t failed (no input saved; log above)" >&2
    fi
    failed+=("$t")
    continue
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$scratch/$t.log" | tr '\n' ' '
  printf 'corpus %s inputs\n' "$(find "$scratch/$t" -type f | wc -l)"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "check-fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
echo "check-fuzz: ${#targets[@]} targets, ${seconds} s each, no crash and no broken invariant"
