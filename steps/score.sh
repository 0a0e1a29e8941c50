#!/usr/bin/env bash
# Scores every trained run of <exp-dir> (<system>/<protocol>) on its fold's test
# set, then writes the system's RESULTS.md and the corpus's exp/<corpus>/RESULTS.md.
# Scoring checks that the fold lists, features and data are those the model was
# trained with; a run already scored from the same record is not scored again.
set -euo pipefail

seeds=1               # the seeds whose runs to score

help_message="Usage: $0 [options] <folds-dir> <exp-dir>
e.g.: $0 data/casia/folds/loso exp/casia/lld93_lstm_tf_at/loso"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 2 ]; then echo "$help_message" >&2; exit 1; fi
folds=$1; dir=$2
runs=()
for seed in $seeds; do
  for fold in $(python -m ser.bin.list_folds "$folds"); do
    run=$dir/seed$seed/$fold
    [ -f "$run/.done" ] || { echo "$0: $run is not trained (no .done); run the training stage" >&2; exit 1; }
    runs+=("$run")
  done
done
mkdir -p "$dir/log"
lock_dir "$dir"
python -m ser.bin.score --folds-dir "$folds" "${runs[@]}" 2> >(tee -a "$dir/log/score.log" >&2)
python -m ser.bin.summarize "$(dirname "$dir")" 2>> "$dir/log/score.log"
