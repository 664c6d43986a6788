#!/usr/bin/env bash
# Reproducible training of the bundled models, one command:
#   tools/train/train.sh [OUT_DIR]          (default: train-out/, gitignored)
# 1. dumps seeded training data and the tokenizer with the dllm-farm CLI (the TypeScript task suite is
#    the single source of truth for problems and vocabulary),
# 2. pre-trains the AR model (the baseline), 3. adapts it into a block-diffusion model (Fast-dLLM v2),
# 4. evaluates both on held-out problems, 5. converts both to dllm-farm model directories when the
#    `convert` command exists. Prints the wall time of each stage.
# Environment: PYTHON (default: /usr/bin/python3 if it has torch, else python3), TRAIN_THREADS
# (default 1: on the shared 2-core CI box one thread was 2.5x faster than two, because OpenMP threads
# spin against other processes; on a free machine set it to the core count), SEED (default 1),
# AR_STEPS (3000: the length of the lr schedule), AR_STOP_AT (1000: where the bundled AR model stopped;
# set it to 3000 for the full schedule), AR2_STEPS (1200), AR2_STOP_AT (700), DLLM_STEPS (2000),
# DEVICE (cuda when available), AR_FROM (a dllm-farm model directory, e.g. models/tiny-ar: export it
# with `dllm-farm export` as the AR checkpoint and skip AR pre-training), DLLM2_STEPS (1500: the
# continuation that made tiny-dllm 1.2.0; 0 skips it), DLLM_FROM (a block-diffusion model directory,
# e.g. models/tiny-dllm: export it and run only the continuation from it). Every training stage runs
# with --resume: rerunning the script after an interruption continues from the last checkpoint.
# The defaults reproduce the bundled models/tiny-ar and models/tiny-dllm (see their TRAINING.md);
# `AR_FROM=models/tiny-ar tools/train/train.sh` reproduces tiny-dllm 1.2.0 alone (~80 min on one core); 1.3.0, the
# bundled version, continues 1.2.0 on a GPU: tools/train/gpu-prepare.sh, then tools/train/gpu-session.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-train-out}
SEED=${SEED:-1}
AR_STEPS=${AR_STEPS:-3000}
AR_STOP_AT=${AR_STOP_AT:-1000}
AR2_STEPS=${AR2_STEPS:-1200}
AR2_STOP_AT=${AR2_STOP_AT:-700}
DLLM_STEPS=${DLLM_STEPS:-2000}
DLLM2_STEPS=${DLLM2_STEPS:-1500}
SIZE=${SIZE:-small}
export TRAIN_THREADS=${TRAIN_THREADS:-1}
if [ -z "${PYTHON:-}" ]; then
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
DEV=()
[ -n "${DEVICE:-}" ] && DEV=(--device "$DEVICE")
CLI="node dist/apps/cli/src/main.js"
start=$(date +%s)
stamp() { echo "[train.sh] $1 at +$(( $(date +%s) - start ))s"; }

if [ ! -f dist/apps/cli/src/commands/tasks.js ]; then
  npm run build || true   # other packages' type errors must not stop the data dump; tsc still emits
  npx tsc-alias -p tsconfig.build.json
fi
mkdir -p "$OUT/data"
for fam in arith string; do
  $CLI tasks --family $fam --split test --n 500 --unique --seed 0 --jsonl "$OUT/data/$fam-test.jsonl"
done
$CLI tasks --family arith --split train --n 300000 --seed "$SEED" --jsonl "$OUT/data/arith-train.jsonl"
$CLI tasks --family string --split train --n 200000 --seed "$SEED" --jsonl "$OUT/data/string-train.jsonl"
$CLI tasks tokenizer --out "$OUT/data/tokenizer.json"
stamp "data written"

# tiny-ar was made in two runs because CPU time on the shared machine came in bursts: AR (schedule
# 3000 steps, stopped at 1000) -> continued AR (fresh optimizer, 1200-step schedule, stopped at 700).
# tiny-dllm 1.1.0 is the Fast-dLLM v2 adaptation of tiny-ar's weights (2000 steps); 1.2.0 continues it for
# 1500 more steps with a fresh optimizer and a second cosine schedule (peak 4e-4, seed SEED+2).
if [ -n "${DLLM_FROM:-}" ]; then
  $CLI export "$DLLM_FROM" "$OUT/dllm"
  stamp "block-diffusion checkpoint exported from $DLLM_FROM (continuation only)"
elif [ -n "${AR_FROM:-}" ]; then
  $CLI export "$AR_FROM" "$OUT/ar"
  stamp "AR checkpoint exported from $AR_FROM"
else
  $PYTHON tools/train/train.py ar --data "$OUT/data" --out "$OUT/ar1" --size "$SIZE" --steps "$AR_STEPS" --stop-at "$AR_STOP_AT" \
    --batch 64 --lr 2e-3 --warmup 100 --seed "$SEED" "${DEV[@]}"
  stamp "AR pre-training done"
  $PYTHON tools/train/train.py ar --init "$OUT/ar1" --data "$OUT/data" --out "$OUT/ar" --steps "$AR2_STEPS" --stop-at "$AR2_STOP_AT" \
    --batch 64 --lr 1e-3 --warmup 20 --save-every 100 --eval-every 100000 --eval-n 50 --seed $((SEED + 1)) "${DEV[@]}"
  stamp "AR continuation done"
fi
if [ -z "${DLLM_FROM:-}" ]; then
  $PYTHON tools/train/train.py dllm --data "$OUT/data" --init "$OUT/ar" --out "$OUT/dllm" --steps "$DLLM_STEPS" \
    --batch 16 --lr 1e-3 --warmup 30 --save-every 250 --eval-every 100000 --eval-n 50 --seed "$SEED" --resume "${DEV[@]}"
  stamp "block-diffusion adaptation done"
fi
FINAL="$OUT/dllm"
if [ "$DLLM2_STEPS" -gt 0 ]; then
  $PYTHON tools/train/train.py dllm --data "$OUT/data" --init "$OUT/dllm" --out "$OUT/dllm2" --steps "$DLLM2_STEPS" \
    --batch 16 --lr 4e-4 --warmup 50 --save-every 100 --snapshot-every 250 --eval-every 100000 --eval-n 50 --seed $((SEED + 2)) --resume "${DEV[@]}"
  stamp "block-diffusion continuation done"
  FINAL="$OUT/dllm2"
fi
[ -d "$OUT/ar" ] && $PYTHON tools/train/train.py eval --data "$OUT/data" --model "$OUT/ar" --mode ar --n 200 --json "$OUT/ar/eval.json" "${DEV[@]}"
$PYTHON tools/train/train.py eval --data "$OUT/data" --model "$FINAL" --mode dllm-ar --mode dllm-threshold --n 200 --json "$FINAL/eval.json" "${DEV[@]}"
stamp "evaluation done"

if [ -f dist/apps/cli/src/commands/convert.js ]; then
  if [ -d "$OUT/ar" ]; then
    $CLI convert "$OUT/ar" "$OUT/tiny-ar" --name tiny-ar --version "1.1.0" --kind autoregressive || echo "[train.sh] convert failed for the AR model"
  fi
  $CLI convert "$FINAL" "$OUT/tiny-dllm" --name tiny-dllm --version "1.2.0" --kind block-diffusion || echo "[train.sh] convert failed for the dLLM model"
fi
stamp "all done"
