#!/usr/bin/env bash
# One device call: the inner-validation sweep of plan_device.tsv on the GPU,
# 16 runs at a time; results stream to $OUT/results.jsonl.
export PYTHONPATH=$PWD:$PWD/.tune_dev/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
logs=$(mktemp -d)  # the sweep's per-run logs, packed into $OUT/logs.tgz
nvidia-smi --query-gpu=name --format=csv,noheader
if [ -n "$SMOKE" ]; then
  python3 local/tune/tune.py run --data .tune_dev/emodb.npz --name smoke --train-opts epochs=1 \
    --model-opts frame_stack=2 --splits 0 --device cuda --results $OUT/smoke.jsonl > $OUT/smoke.log 2>&1 \
    || { tail -30 $OUT/smoke.log; exit 1; }
fi
timeout ${SWEEP_SECONDS:-480} python3 local/tune/tune.py sweep --plan local/tune/plan_device.tsv --jobs ${JOBS:-16} \
  --results $OUT/results.jsonl --logdir "$logs"
echo "sweep rc $?"; wc -l $OUT/results.jsonl*
tar czf "$OUT/logs.tgz" -C "$logs" . ; grep -l Traceback "$logs"/* | head
