#!/usr/bin/env bash
# Writes the folds of an evaluation protocol to <folds-dir>/fold<k>/{train,valid,test}.
set -euo pipefail

protocol=""           # required: loso, speaker_kfold, session, random or all (see ser/folds.py)
num_folds=""          # K for speaker_kfold; repeats for random
fold_seed=0           # seed of the random splits
valid_share=""        # share of the training part held out for model selection [default: ser/folds.py]
test_share=""         # random only: test share (default: the paper's 1000/7200)

help_message="Usage: $0 [options] <data-dir> <folds-dir>
e.g.: $0 --protocol loso data/casia data/casia/folds/loso"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 2 ] || [ -z "$protocol" ]; then echo "$help_message" >&2; exit 1; fi
data=$1; dir=$2
require_done "$data" corpus
settings="stage=make_folds
protocol=$protocol
num_folds=$num_folds
fold_seed=$fold_seed
valid_share=$valid_share
test_share=$test_share
data=$(record_id "$data")"
lock_dir "$dir"
if is_done "$dir" "$settings"; then log "$dir is complete; skipping"; exit 0; fi

opts=(--protocol "$protocol" --seed "$fold_seed")
[ -n "$valid_share" ] && opts+=(--valid-share "$valid_share")
[ -n "$num_folds" ] && opts+=(--num-folds "$num_folds")
[ -n "$test_share" ] && opts+=(--test-share "$test_share")
python -m ser.bin.make_folds --data-dir "$data" --out-dir "$dir" "${opts[@]}"
mark_done "$dir" "$settings"
