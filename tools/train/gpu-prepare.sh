#!/usr/bin/env bash
# Prepares the folder a lent GPU machine needs for tools/train/gpu-session.sh (that machine has PyTorch but no
# Node, so everything the dllm-farm CLI makes is made here first):
#   tools/train/gpu-prepare.sh [DIR] [DISTILL_DATASET_DIR]      (DIR default .gpu, listed in .git/info/exclude)
# DIR/data: 800k arith + 500k string train-split problems (seed 1), xz-compressed (train.py reads PATH.xz);
# DIR/val: 500 + 500 train-split problems of the unused seed 424242 (the validation set that picks checkpoints);
# DIR/init-dllm, DIR/init-ar: the bundled models exported to safetensors; DIR/distill: a /v1/distill dataset
# (download its files with GET /v1/distill/:id/files/<name>) when given. ~35 MB in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
G=${1:-.gpu}
CLI="node dist/apps/cli/src/main.js"
mkdir -p "$G/data" "$G/val"
$CLI tasks --family arith --split train --n 800000 --seed 1 --jsonl "$G/data/arith-train.jsonl"
$CLI tasks --family string --split train --n 500000 --seed 1 --jsonl "$G/data/string-train.jsonl"
xz -T0 -6 -f "$G/data/arith-train.jsonl" "$G/data/string-train.jsonl"
$CLI tasks tokenizer --out "$G/data/tokenizer.json"
for fam in arith string; do
  $CLI tasks --family $fam --split train --n 500 --unique --seed 424242 --jsonl "$G/val/$fam-test.jsonl"
done
cp "$G/data/tokenizer.json" "$G/val/"
rm -rf "$G/init-dllm" "$G/init-ar"
$CLI export models/tiny-dllm "$G/init-dllm"
$CLI export models/tiny-ar "$G/init-ar"
if [ -n "${2:-}" ]; then rm -rf "$G/distill"; cp -r "$2" "$G/distill"; fi
du -sh "$G"
