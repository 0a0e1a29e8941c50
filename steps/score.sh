#!/usr/bin/env bash
# Scores every trained run of <exp-dir> (<system>/<protocol>) on its fold's test
# set, then writes the system's RESULTS.md and the corpus's exp/<corpus>/RESULTS.md.
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
  for fold in $(python -c "from ser.folds import list_folds; print(' '.join(list_folds('$folds')))"); do
    run=$dir/seed$seed/$fold
    [ -f "$run/.done" ] || { echo "$0: $run is not trained (no .done); run the training stage" >&2; exit 1; }
    # Scored already, and not trained since: nothing to do.
    [ -f "$run/results.json" ] && [ "$run/results.json" -nt "$run/best.pt" ] && continue
    runs+=("$run")
  done
done
mkdir -p "$dir/log"
if [ ${#runs[@]} -gt 0 ]; then
  log "scoring ${#runs[@]} run(s)"
  python -m ser.bin.score "${runs[@]}" 2> >(tee "$dir/log/score.log" >&2)
fi
python -m ser.bin.summarize "$(dirname "$dir")" 2>> "$dir/log/score.log"
