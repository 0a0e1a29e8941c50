#!/usr/bin/env bash
# Computes the normalisation statistics of --cmvn: "train" from each fold's
# training part only (<feat-dir>/cmvn/<protocol>/fold<k>.npz), "speaker" per
# speaker (<feat-dir>/cmvn/speaker.npz), "corpus" per corpus and fold, the test
# corpus's from its unlabelled test utterances (<feat-dir>/cmvn/corpus_<protocol>/);
# the other modes need none.
set -euo pipefail

cmvn=""               # required: train, speaker, corpus, or a mode without statistics (see ser/cmvn.py)

help_message="Usage: $0 [options] <data-dir> <feat-dir> <folds-dir>
e.g.: $0 --cmvn train data/casia data/casia/feats/lld93 data/casia/folds/loso"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 3 ] || [ -z "$cmvn" ]; then echo "$help_message" >&2; exit 1; fi
data=$1; feat_dir=$2; folds=$3
case $cmvn in
  speaker) dir=$feat_dir/cmvn/speaker ;;
  train) dir=$feat_dir/cmvn/$(basename "$folds") ;;
  corpus) dir=$feat_dir/cmvn/corpus_$(basename "$folds") ;;
  *) log "--cmvn $cmvn: no statistics"; exit 0 ;;  # the training stage checks the mode
esac
settings="stage=compute_cmvn
cmvn=$cmvn
feats=$(record_id "$feat_dir")"
# Per-speaker statistics do not depend on the folds.
[ "$cmvn" != speaker ] && settings+="
folds=$(record_id "$folds")"
lock_dir "$dir"
if is_done "$dir" "$settings"; then log "$dir is complete; skipping"; exit 0; fi
mkdir -p "$dir"
python -m ser.bin.compute_cmvn --mode "$cmvn" --data-dir "$data" --feat-dir "$feat_dir" \
  --folds-dir "$folds" --out-dir "$dir"
mark_done "$dir" "$settings"
