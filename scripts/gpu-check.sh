#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU, with a release binary built elsewhere:
#   scripts/gpu-check.sh [path/to/nnz] [bench dir]
# Checks that GPU archives are byte-identical to CPU archives, that each side decodes the other's,
# saves a GPU-made archive (to $OUT if set) for testdata/, and prints a timing table last.
set -uo pipefail
nnz="${1:-target/release/nnz}"
bench="${2:-../shared/bench}"
out="${OUT:-/tmp/nnz-gpu-check}"
mkdir -p "$out"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# inputs: text, logs, binary, empty, odd sizes
cp testdata/golden/sample.txt "$work/sample.txt"
: > "$work/empty"
printf 'x' > "$work/one"
head -c 100003 /dev/urandom > "$work/random.bin"
for f in canterbury/alice29.txt canterbury/kennedy.xls logs/Apache_2k.log misc/urls.10K; do
  [ -f "$bench/$f" ] && cp "$bench/$f" "$work/"
done
fail=0
for f in "$work"/*; do
  case "$f" in *.nnz) continue;; esac
  n=$(basename "$f")
  "$nnz" -q --device cpu -c "$f" > "$work/$n.cpu.nnz" || { echo "FAIL cpu compress $n"; fail=1; continue; }
  "$nnz" -q --device cuda -c "$f" > "$work/$n.gpu.nnz" || { echo "FAIL gpu compress $n"; fail=1; continue; }
  if cmp -s "$work/$n.cpu.nnz" "$work/$n.gpu.nnz"; then echo "same archive: $n"; else echo "FAIL archives differ: $n"; fail=1; fi
  "$nnz" -q --device cuda -d -c "$work/$n.cpu.nnz" | cmp -s - "$f" || { echo "FAIL gpu decode of cpu archive: $n"; fail=1; }
  "$nnz" -q --device cpu -d -c "$work/$n.gpu.nnz" | cmp -s - "$f" || { echo "FAIL cpu decode of gpu archive: $n"; fail=1; }
done
cp "$work/sample.txt.gpu.nnz" "$out/sample.txt.gpu.nnz" 2>/dev/null
# timing table (last)
big="$work/big.txt"
for i in $(seq 1 40); do cat "$work/sample.txt"; [ -f "$work/alice29.txt" ] && cat "$work/alice29.txt"; done > "$big"
size=$(stat -c %s "$big")
echo
echo "| device | bytes | compress s | MB/s | decompress s | MB/s |"
echo "|---|---:|---:|---:|---:|---:|"
for dev in cpu cuda; do
  t0=$(date +%s.%N); "$nnz" -q --device $dev -c "$big" > "$work/big.$dev.nnz"; t1=$(date +%s.%N)
  "$nnz" -q --device $dev -d -c "$work/big.$dev.nnz" > /dev/null; t2=$(date +%s.%N)
  awk -v d=$dev -v s=$size -v a=$t0 -v b=$t1 -v c=$t2 'BEGIN{printf "| %s | %d | %.2f | %.3f | %.2f | %.3f |\n", d, s, b-a, s/(b-a)/1e6, c-b, s/(c-b)/1e6}'
done
[ $fail -eq 0 ] && echo "gpu-check: OK" || echo "gpu-check: FAILURES"
exit $fail
