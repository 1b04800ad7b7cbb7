#!/usr/bin/env bash
# Compress and decompress every file of a folder with every nnz level and the peers (xz -9e,
# zstd -19, brotli -q 11, bzip3 -b 511, 7-Zip PPMd, zpaq -m5); check every round trip; write a
# markdown table, CSV, JSON and an SVG chart. `--only NAME...` (after the two folders) runs some,
# and with `--merge OLD/results.json` the tables keep the others' rows from that earlier run (say a
# new model changes only the levels that run it); `--no-warm` skips touching free memory first (see
# warm_memory in bench.py).
#   bench/run.sh [DIR] [OUTDIR]      (defaults: ../shared/bench, bench/results)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/../../shared/bench}"
out="${2:-$here/results}"
need=()
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
command -v brotli >/dev/null || need+=(brotli)
command -v bzip3 >/dev/null || need+=(bzip3)
command -v 7zz >/dev/null || need+=(7zip)
command -v zpaq >/dev/null || need+=(zpaq)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  (apt-get update -qq && apt-get install -y -qq "${need[@]}") >/dev/null
fi
nnz="${NNZ:-$here/../target/release/nnz}"
[ -x "$nnz" ] || (cd "$here/.." && cargo build --release -q)
exec python3 "$here/bench.py" --nnz "$nnz" --dir "$dir" --out "$out" "${@:3}"
