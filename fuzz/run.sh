#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 30) each, from the committed seeds (fuzz/seeds/) and
# the local corpus (fuzz/corpus/, not committed). A crash, a hang over 10 s or more than 2 GiB of
# memory fails the run; libFuzzer leaves the input in fuzz/artifacts/. Needs nightly Rust and
# cargo-fuzz; where nightly is absent it says so and exits 0 (CI then reports the skip).
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_parse decode corrupt_frame roundtrip)
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no nightly Rust toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked -q
fi
cargo +nightly fuzz build -O -s none
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "fuzz: $t for ${secs}s"
  cargo +nightly fuzz run -O -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done|INFO: Running)|cov:.*(DONE|REDUCE|NEW)" | tail -6
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz: $t FAILED (see fuzz/artifacts/$t)"; exit 1; }
done
echo "fuzz: all targets ran for ${secs}s each without a crash, hang or memory blow-up"
