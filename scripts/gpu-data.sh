#!/usr/bin/env bash
# Gather what scripts/gpu-check.sh needs on a GPU machine that cannot see ../shared, into
# target/gpu-data (ignored by git; carry it together with target/release/nnz):
#   small/  excerpts of bench files (text, log, binary) for the byte-identity checks
#   text.xz about 100 MiB of prose from the training corpus (two shards' "text" fields), for speed
# Usage: scripts/gpu-data.sh [shared dir]   (default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${1:-../shared}"
out=target/gpu-data
rm -rf "$out"
mkdir -p "$out/small"
head -c 65536 "$shared/bench/canterbury/alice29.txt" > "$out/small/alice64k.txt"
head -c 65536 "$shared/bench/canterbury/kennedy.xls" > "$out/small/kennedy64k.xls"
head -c 65536 "$shared/bench/logs/Apache_2k.log" > "$out/small/apache64k.log"
head -c 30011 "$shared/bench/misc/urls.10K" > "$out/small/urls30k"
for shard in prose-00 prose-01; do
  xz -dc "$shared/corpus/train/$shard.jsonl.xz"
done | python3 -c '
import json, sys
out = sys.stdout.buffer
for line in sys.stdin:
    out.write(json.loads(line)["text"].encode("utf-8"))
' | head -c 104857600 | xz -1 -T0 > "$out/text.xz"
du -sh "$out"/*
