#!/bin/bash
# One lent-GPU session (issue 10), as run on 2026-11-30 to make tiny-dllm 1.3.0 (models/tiny-dllm/TRAINING.md):
# base adaptation in 3 configurations in parallel, each fitted to a time budget (train.py --time-budget), checkpoints
# chosen on the validation set (--eval-data, train split, unused seed; never the test split); certainty-forcing
# distillation of the starting model on its /v1/distill dataset (learn.py distill --no-register), then of the best
# new base. Results are tars under $OUT (weights, train_log.json, the learner's state): unpack them where the farm
# runs and rerun the same `learn.py distill` without --no-register to convert + register a distilled model.
# Prepare the folder with tools/train/gpu-prepare.sh (needs Node); run it from the repo root on the GPU machine:
#   OUT=<results dir> tools/train/gpu-session.sh        (env: G=.gpu, BUDGET=290 s per base run, DEADLINE=540 s,
#                                                          D1/D2/D3 distillation steps, DEVICE=cuda)
set -u
export PYTHONUNBUFFERED=1 TRAIN_THREADS=2
G=${G:-.gpu}; export W=${W:-/tmp/w}; mkdir -p $W; T0=$(date +%s)
LOG=$OUT/log.txt
say() { echo "[run +$(( $(date +%s) - T0 ))s] $*" | tee -a $LOG; }
say "$(python3 -c 'import torch;print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))' 2>&1)"
BUDGET=${BUDGET:-290}
common=(--data $G/data --steps 1000000 --time-budget $BUDGET --budget-probe 40 --eval-count 6 --eval-seconds 8 --eval-every 1000000
  --eval-data $G/val --eval-mode dllm-threshold --eval-n 500 --keep-best --log-every 200 --device ${DEVICE:-cuda})
timeout $((BUDGET + 80)) python3 tools/train/train.py dllm --init $G/init-dllm --out $W/A --batch 256 --lr 5e-4 --warmup 100 --seed 11 "${common[@]}" > $W/A.log 2>&1 &
timeout $((BUDGET + 80)) python3 tools/train/train.py dllm --init $G/init-dllm --out $W/B --batch 512 --lr 1e-3 --warmup 100 --seed 12 "${common[@]}" > $W/B.log 2>&1 &
timeout $((BUDGET + 80)) python3 tools/train/train.py dllm --init $G/init-ar --out $W/C --batch 512 --lr 1.5e-3 --warmup 200 --seed 13 "${common[@]}" > $W/C.log 2>&1 &
dist=(--gateway http://127.0.0.1:9 --key none --model tiny-dllm --dataset-dir $G/distill --model-root /tmp/mr --batch 64 --lr 1e-4
  --no-register --device ${DEVICE:-cuda} --save-every 250 --log-every 100)
timeout 300 python3 tools/learn/learn.py distill "${dist[@]}" --init $G/init-dllm --out $W/D1 --steps ${D1:-1000} --seed 21 > $W/D1.log 2>&1 &
timeout 300 python3 tools/learn/learn.py distill "${dist[@]}" --init $G/init-dllm --out $W/D2 --steps ${D2:-3000} --seed 22 > $W/D2.log 2>&1 &
sleep 60; say "after 60s"; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >> $LOG; tail -n 2 $W/*.log >> $LOG
wait
say "phase 1 done"
for r in A B C; do tail -n 12 $W/$r.log >> $LOG; [ -d $W/$r/best ] && tar -C $W/$r -cf $OUT/$r.tar best train_log.json; done
for r in D1 D2; do tail -n 4 $W/$r.log >> $LOG; rm -f $W/$r/ckpt/optimizer.pt; tar -C $W -cf $OUT/$r.tar $r/ckpt $r/state.json $r/log.jsonl; done
BEST=$(python3 - <<'PY'
import json, os
w = os.environ["W"]
runs = [r for r in "ABC" if os.path.exists(f"{w}/{r}/train_log.json")]
print(max(runs, key=lambda r: (json.load(open(f"{w}/{r}/train_log.json")).get("best") or {}).get("mean_accuracy", -1)) if runs else "none")
PY
)
say "best base: $BEST"; left=$(( ${DEADLINE:-540} - ($(date +%s) - T0) - 25 ))
if [ -d $W/$BEST/best ] && [ $left -gt 60 ]; then
  timeout $left python3 tools/learn/learn.py distill "${dist[@]}" --init $W/$BEST/best --out $W/D3 --steps ${D3:-1500} --seed 23 > $W/D3.log 2>&1
  tail -n 4 $W/D3.log >> $LOG; rm -f $W/D3/ckpt/optimizer.pt; echo "$BEST" > $W/D3/from.txt
  tar -C $W -cf $OUT/D3.tar D3/ckpt D3/state.json D3/log.jsonl D3/from.txt
fi
say "all done"; ls -la $OUT >> $LOG
