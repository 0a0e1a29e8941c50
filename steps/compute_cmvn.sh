#!/usr/bin/env bash
# Computes the normalisation statistics of --cmvn: "train" from each fold's
# training part only (<feat-dir>/cmvn/<protocol>/fold<k>.npz), "speaker" per
# speaker (<feat-dir>/cmvn/speaker.npz), "none" nothing.
set -euo pipefail

cmvn=train            # train, speaker or none

help_message="Usage: $0 [options] <data-dir> <feat-dir> <folds-dir>
e.g.: $0 --cmvn train data/casia data/casia/feats/lld93 data/casia/folds/loso"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 3 ]; then echo "$help_message" >&2; exit 1; fi
data=$1; feat_dir=$2; folds=$3
case $cmvn in
  none) log "--cmvn none: no statistics"; exit 0 ;;
  speaker) dir=$feat_dir/cmvn/speaker ;;
  train) dir=$feat_dir/cmvn/$(basename "$folds") ;;
  *) echo "$0: unknown --cmvn $cmvn (train, speaker, none)" >&2; exit 1 ;;
esac
settings="cmvn=$cmvn feats=$(cat "$feat_dir/.done" 2>/dev/null)"
# Per-speaker statistics do not depend on the folds.
[ "$cmvn" = train ] && settings+=" folds=$(cat "$folds/.done" 2>/dev/null)"
if is_done "$dir" "$settings"; then log "$dir is complete; skipping"; exit 0; fi
mkdir -p "$dir"
python -m ser.bin.compute_cmvn --mode "$cmvn" --data-dir "$data" --feat-dir "$feat_dir" \
  --folds-dir "$folds" --out-dir "$dir"
mark_done "$dir" "$settings"
