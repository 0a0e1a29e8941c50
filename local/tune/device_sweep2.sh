#!/usr/bin/env bash
# Second device sweep (259f48a, 2026-11-26): plan_device2.tsv, one job per (config, corpus, inner
# split), 16 at a time; on the CPU cores when 16 processes really run in parallel there,
# else on the GPU. Results stream to $OUT/results.jsonl(.splits).
export PYTHONPATH=$PWD:$PWD/.tune_dev/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
logs=$(mktemp -d)  # the sweep's per-run logs, packed into $OUT/logs.tgz
python3 -c "import os; print('cpus', os.cpu_count(), len(os.sched_getaffinity(0)))"
plan=${PLAN:-local/tune/plan_device2.tsv}
if python3 - <<'PY'
import multiprocessing as mp, sys, time
def busy(_): return sum(range(20_000_000))
t = time.time(); busy(0); one = time.time() - t
t = time.time(); mp.Pool(16).map(busy, range(16)); many = time.time() - t
print(f"one busy loop {one:.2f}s, 16 at once {many:.2f}s")
sys.exit(0 if many < 2.5 * one else 1)
PY
then echo "device cpu"
else echo "device cuda"; sed 's/--device cpu/--device cuda/' $plan > "$logs.plan.tsv"; plan=$logs.plan.tsv; fi
timeout ${SWEEP_SECONDS:-500} python3 local/tune/tune.py sweep --plan $plan \
  --jobs ${JOBS:-16} --results $OUT/results.jsonl --logdir "$logs"
echo "sweep rc $?"; wc -l $OUT/results.jsonl*
grep -l Traceback "$logs"/* | head -3 | xargs -r tail -n 5
tar czf "$OUT/logs.tgz" -C "$logs" .
