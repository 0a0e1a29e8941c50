#!/usr/bin/env bash
# Trains one model per fold and seed through $cmd (one job-array task each) into
# <exp-dir>/seed<s>/fold<k>/. Runs only what is not complete: a finished run has
# .done, an interrupted one resumes from its last checkpoint.
set -euo pipefail

cmd=run.pl            # job runner with its options, e.g. "slurm.pl --mem 4G"
cmvn=train            # train, speaker or none (must match the cmvn stage)
model=lstm_tf_at      # conf/model/<model>.yaml
model_opts=""         # overrides of the model config, "key=value ..."
train_conf=conf/train.yaml  # training settings
train_opts=""         # overrides of the training config, "key=value ..."
seeds=1               # training seeds, e.g. "1 2 3"
gpu=0                 # 1: train on CUDA where present

help_message="Usage: $0 [options] <data-dir> <feat-dir> <folds-dir> <exp-dir>
e.g.: $0 --model lstm_tf_at data/casia data/casia/feats/lld93 data/casia/folds/loso exp/casia/lld93_lstm_tf_at/loso"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 4 ]; then echo "$help_message" >&2; exit 1; fi
data=$1; feat_dir=$2; folds=$3; dir=$4
mkdir -p "$dir/log"

folds_list=$(python -c "from ser.folds import list_folds; print(' '.join(list_folds('$folds')))")
: > "$dir/tasks.txt.tmp"
for seed in $seeds; do
  for fold in $folds_list; do
    [ -f "$dir/seed$seed/$fold/.done" ] || echo "$fold $seed $dir/seed$seed/$fold" >> "$dir/tasks.txt.tmp"
  done
done
mv "$dir/tasks.txt.tmp" "$dir/tasks.txt"
ntasks=$(wc -l < "$dir/tasks.txt")
if [ "$ntasks" -eq 0 ]; then log "all runs in $dir are complete; skipping"; exit 0; fi

case $cmvn in
  train) cmvn_dir=$feat_dir/cmvn/$(basename "$folds") ;;
  speaker) cmvn_dir=$feat_dir/cmvn/speaker ;;
  none) cmvn_dir=$feat_dir ;;  # unused
  *) echo "$0: unknown --cmvn $cmvn (train, speaker, none)" >&2; exit 1 ;;
esac
log "training $ntasks run(s) of $model (tasks: $dir/tasks.txt)"
$cmd JOB=1:"$ntasks" "$dir/log/train.JOB.log" \
  python -m ser.bin.train --data-dir "$data" --feat-dir "$feat_dir" --folds-dir "$folds" \
    --cmvn "$cmvn" --cmvn-dir "$cmvn_dir" --model "$model" --model-opts "$model_opts" \
    --train-conf "$train_conf" --train-opts "$train_opts" --gpu "$gpu" \
    --task-list "$dir/tasks.txt" --task JOB
log "trained $ntasks run(s) in $dir"
