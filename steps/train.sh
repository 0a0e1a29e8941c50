#!/usr/bin/env bash
# Trains one model per fold and seed through $cmd (one job-array task each) into
# <exp-dir>/seed<s>/fold<k>/. A run is complete when its .done holds the record of
# these settings and inputs (ser/provenance.py); it is then skipped. A complete run
# made from anything else stops the stage, saying what differs: its results are
# never handed back as the new ones. An interrupted run resumes from its checkpoint.
set -euo pipefail

cmd=run.pl            # job runner with its options, e.g. "slurm.pl --mem 4G"
cmvn=""               # required: normalisation mode (see ser/cmvn.py), as in the cmvn stage
model=""              # required: conf/model/<model>.yaml
model_opts=""         # overrides of the model config, "key=value ..."
train_conf=conf/train.yaml  # training settings
train_opts=""         # overrides of the training config, "key=value ..."
aug_feat_dir=""       # features of speed-perturbed copies, added to each fold's training part
seeds=1               # training seeds, e.g. "1 2 3"
gpu=0                 # 1: train on CUDA where present
verify_only=false     # true: only check that every run is complete with these settings

help_message="Usage: $0 [options] <data-dir> <feat-dir> <folds-dir> <exp-dir>
e.g.: $0 --model lstm_tf_at data/casia data/casia/feats/lld93 data/casia/folds/loso exp/casia/lld93_lstm_tf_at/loso"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 4 ] || [ -z "$model" ] || [ -z "$cmvn" ]; then echo "$help_message" >&2; exit 1; fi
data=$1; feat_dir=$2; folds=$3; dir=$4
case $cmvn in
  train) cmvn_dir=$feat_dir/cmvn/$(basename "$folds") ;;
  speaker) cmvn_dir=$feat_dir/cmvn/speaker ;;
  corpus) cmvn_dir=$feat_dir/cmvn/corpus_$(basename "$folds") ;;
  *) cmvn_dir="" ;;
esac
opts=(--data-dir "$data" --feat-dir "$feat_dir" --folds-dir "$folds" --cmvn "$cmvn"
      --model "$model" --model-opts "$model_opts" --train-conf "$train_conf" --train-opts "$train_opts")
[ -n "$cmvn_dir" ] && opts+=(--cmvn-dir "$cmvn_dir")
[ -n "$aug_feat_dir" ] && opts+=(--aug-feat-dir "$aug_feat_dir")

mkdir -p "$dir/log"
lock_dir "$dir"
verify=()
$verify_only && verify=(--verify)
ntasks=$(python -m ser.bin.train --plan "${verify[@]}" "${opts[@]}" --seeds "$seeds" \
  --exp-dir "$dir" --task-list "$dir/tasks.txt.next")
if [ "$ntasks" -eq 0 ]; then
  rm -f "$dir/tasks.txt.next"
  log "all runs in $dir are complete with these settings; skipping"
  exit 0
fi
keep_job_logs "$dir/log" train "$dir/tasks.txt"
mv "$dir/tasks.txt.next" "$dir/tasks.txt"

log "training $ntasks run(s) of $model (tasks: $dir/tasks.txt)"
$cmd JOB=1:"$ntasks" "$dir/log/train.JOB.log" \
  python -m ser.bin.train "${opts[@]}" --gpu "$gpu" --task-list "$dir/tasks.txt" --task JOB
log "trained $ntasks run(s) in $dir"
