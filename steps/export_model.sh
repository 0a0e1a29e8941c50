#!/usr/bin/env bash
# Exports a trained run as a self-contained model bundle (ser/export.py): TorchScript
# and ONNX model (svm runs: svm.joblib), feature extractor and its files, normalisation statistics, labels, settings,
# the system's cross-validation results and SHA256SUMS.
set -euo pipefail

results_dir=""        # a system dir whose summary.json and RESULTS.md go into the bundle

help_message="Usage: $0 [options] <run-dir> <bundle-dir>
e.g.: $0 --results-dir exp/casia/lld93_lstm_tf_at exp/casia/lld93_lstm_tf_at/final_train/seed1/fold1 exp/casia/lld93_lstm_tf_at/final"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 2 ]; then echo "$help_message" >&2; exit 1; fi
run=$1; dir=$2
[ -f "$run/.done" ] || { echo "$0: $run is not trained (no .done); run the training first" >&2; exit 1; }
results=$(cksum 2>/dev/null < "$results_dir/summary.json" || true)
# onnx: bundles exported before model.onnx existed are exported again.
settings="run=$run trained=$(cat "$run/.done") results=$results onnx=1"
# Nothing is built on a bundle, so unlike is_done, other settings mean: export again.
if [ "$(cat "$dir/.done" 2>/dev/null)" = "$settings" ]; then log "$dir is complete; skipping"; exit 0; fi
python -m ser.bin.export_model --run-dir "$run" --out "$dir" ${results_dir:+--results-dir "$results_dir"}
mark_done "$dir" "$settings"
log "exported $dir ($(du -sh "$dir" | cut -f1))"
