#!/usr/bin/env bash
# Run on a machine with an NVIDIA GPU, with a release binary and data prepared elsewhere:
#   here:  cargo build --release && scripts/gpu-data.sh
#   there: scripts/gpu-check.sh        (carry target/release/nnz and target/gpu-data)
# 0. The GPU backend starts, with the built-in PTX (if the binary has it) and with NVRTC.
# 1. Byte identity: for text, log, binary, empty and odd-sized inputs, in the default mode and in
#    --direct, the GPU's archive equals the CPU's; each side decodes the other's archive.
# 2. GPU-made archives of testdata/golden/sample.txt (tiny model, 4 KiB chunks, as the goldens) go
#    to $OUT, to be committed as testdata/golden/*.gpu.nnz.
# 3. Speed on ~100 MiB of prose (target/gpu-data/text.xz), end to end, file in -> file out; a
#    timing table is printed last. Every step has a time limit, and speed runs that would start
#    after BUDGET_S seconds (default 540) are skipped, so the check fits one 10-minute call.
#    PARTS=identity or PARTS=speed runs one half only.
set -uo pipefail
cd "$(dirname "$0")/.."
parts="${PARTS:-identity speed}"
budget="${BUDGET_S:-540}"
nnz="${NNZ:-target/release/nnz}"
data="${DATA:-target/gpu-data}"
out="${OUT:-/tmp/nnz-gpu-check}"
mkdir -p "$out"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$nnz" -v --device cuda -c testdata/golden/sample.txt > /dev/null || { echo "gpu-check: the GPU backend does not start"; exit 1; }
# the other way to get the kernels: NVRTC at start-up (the binary above may use built-in PTX)
"$nnz" -v --device cuda --kernels nvrtc --ptx-cache "$(mktemp -d)" -c testdata/golden/sample.txt > /tmp/nnz-nvrtc.nnz \
  && "$nnz" -q --device cpu -c testdata/golden/sample.txt | cmp -s - /tmp/nnz-nvrtc.nnz \
  && echo "same archive: sample.txt (kernels from NVRTC)" || { echo "FAIL kernels from NVRTC"; nvrtc_fail=1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=${nvrtc_fail:-0}
note() { echo "$*"; }
bad() { echo "FAIL $*"; fail=1; }

# 1. byte identity (with --cuda-graphs for the direct mode: decoding steps replay graphs)
mkdir -p "$work/in"
if [[ $parts == *identity* ]]; then
cp testdata/golden/sample.txt testdata/golden/server.log "$work/in/"
: > "$work/in/empty"
printf 'x' > "$work/in/one"
head -c 100003 /dev/urandom > "$work/in/random.bin"
[ -d "$data/small" ] && cp "$data"/small/* "$work/in/"
for f in "$work"/in/*; do
  n=$(basename "$f")
  for mode in default direct; do
    flag=""; [ $mode = direct ] && flag="--direct"
    c="$work/$n.$mode"
    timeout 120 "$nnz" -q $flag --device cpu -c "$f" > "$c.cpu" || { bad "cpu compress $n $mode"; continue; }
    graphs=""; [ $mode = direct ] && graphs="--cuda-graphs"
    timeout 120 "$nnz" -q $flag $graphs --device cuda -c "$f" > "$c.gpu" || { bad "gpu compress $n $mode"; continue; }
    if cmp -s "$c.cpu" "$c.gpu"; then note "same archive: $n ($mode)"; else bad "archives differ: $n ($mode)"; fi
    timeout 120 "$nnz" -q $graphs --device cuda -d -c "$c.cpu" | cmp -s - "$f" || bad "gpu decode of cpu archive: $n ($mode)"
    timeout 120 "$nnz" -q --device cpu -d -c "$c.gpu" | cmp -s - "$f" || bad "cpu decode of gpu archive: $n ($mode)"
  done
done

# 2. GPU-made archives for testdata/golden
tiny=(--model testdata/tiny.safetensors --chunk-kib 4 --device cuda)
"$nnz" -q "${tiny[@]}" -c testdata/golden/sample.txt > "$out/sample.txt.gpu.nnz"
"$nnz" --only model -q "${tiny[@]}" --direct -c testdata/golden/sample.txt > "$out/sample.txt.direct.gpu.nnz"
cmp -s "$out/sample.txt.gpu.nnz" testdata/golden/sample.txt.nnz || bad "GPU golden differs from testdata/golden/sample.txt.nnz"
cmp -s "$out/sample.txt.direct.gpu.nnz" testdata/golden/sample.txt.direct.nnz || bad "GPU golden differs from testdata/golden/sample.txt.direct.nnz"
fi

# 3. speed
rows=()
timed() { # label file limit_s args...: compress then decompress on the GPU, check, add a row
  local label=$1 f=$2 limit=$3; shift 3
  local size t0 t1 t2 ok="ok" packed
  size=$(stat -c %s "$f")
  if [ "$SECONDS" -ge "$budget" ]; then rows+=("| $label | $size | skipped (time budget) | | | | |"); return; fi
  [ $((SECONDS + 2 * limit)) -gt $((budget + 60)) ] && limit=$(( (budget + 60 - SECONDS) / 2 ))
  t0=$(date +%s.%N)
  if ! timeout "$limit" "$nnz" -q "$@" -c "$f" > "$work/t.nnz"; then rows+=("| $label | $size | timeout/fail | | | | |"); return; fi
  t1=$(date +%s.%N)
  if ! timeout "$limit" "$nnz" -q "$@" -d -c "$work/t.nnz" > "$work/t.out"; then ok="decode timeout/fail"; fi
  t2=$(date +%s.%N)
  cmp -s "$work/t.out" "$f" || { [ "$ok" = ok ] && ok="MISMATCH"; fail=1; }
  packed=$(stat -c %s "$work/t.nnz")
  rows+=("$(awk -v l="$label" -v s="$size" -v p="$packed" -v a="$t0" -v b="$t1" -v c="$t2" -v ok="$ok" \
    'BEGIN{printf "| %s | %d | %.3f | %.1f | %.2f | %.1f | %s |", l, s, 8*p/s, b-a, s/(b-a)/1e6, s/(c-b)/1e6, ok}')")
}
if [[ $parts != *speed* ]]; then
  :
elif [ -f "$data/text.xz" ]; then
  xz -dc "$data/text.xz" > "$work/text100" 2>/dev/null || python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" "$data/text.xz" "$work/text100"
  head -c 8388608 "$work/text100" > "$work/text8"
  head -c 1048576 "$work/text100" > "$work/text1"
  timed "cpu --direct, 1 MiB, 64 KiB chunks" "$work/text1" 60 --device cpu --direct --chunk-kib 64
  timed "cuda --direct, 1 MiB, 64 KiB chunks" "$work/text1" 60 --device cuda --direct --chunk-kib 64
  timed "cuda --direct, 8 MiB" "$work/text8" 60 --device cuda --direct
  timed "cuda --direct, 100 MiB" "$work/text100" 150 --device cuda --direct
  timed "cuda --direct, 100 MiB, 256 KiB chunks" "$work/text100" 150 --device cuda --direct --chunk-kib 256
  timed "cuda --direct, 8 MiB, 64 KiB chunks, graphs" "$work/text8" 60 --device cuda --direct --chunk-kib 64 --cuda-graphs
  timed "cuda --direct, 8 MiB, 64 KiB chunks" "$work/text8" 60 --device cuda --direct --chunk-kib 64
  timed "cuda default, 8 MiB" "$work/text8" 120 --device cuda
else
  note "no $data/text.xz (run scripts/gpu-data.sh here first): speed not measured"
fi
echo
echo "| run | bytes | bpb | compress s | compress MB/s | decompress MB/s | check |"
echo "|---|---:|---:|---:|---:|---:|---|"
for r in "${rows[@]}"; do echo "$r"; done
[ $fail -eq 0 ] && echo "gpu-check: OK" || echo "gpu-check: FAILURES"
exit $fail
