#!/usr/bin/env bash
# Training cost of the recipe's defaults: wall time of stage 5 (training, through
# $train_cmd) for the full cross-validation of a corpus with 1 seed, for lstm_tf_at
# and the svm baseline, measured one after the other in this command. Both train
# into fresh exp dirs (--exp-tag bench-<time>), so nothing is skipped; stages 1-4
# are run first and not timed. Prints one line:
#   bench_train corpus=casia protocol=loso seeds=1 lstm_tf_at_s=... svm_s=... ratio=...
#
#   local/bench_train.sh --casia-dir /data/casia
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=casia          # corpus to train on
casia_dir=""          # CASIA root
emodb_dir=""          # EmoDB root
protocol=loso         # protocol of the cross-validation
seed=1                # the one training seed
model=lstm_tf_at      # the system timed against svm
gpu=0                 # 1: train on CUDA
keep=false            # true: keep the bench exp dirs

help_message="Usage: $0 [options]"
. ./utils/lib.sh
. ./utils/parse_options.sh
dir_var=${corpus}_dir
[ -n "${!dir_var}" ] || { echo "$0: give --${corpus}-dir" >&2; exit 1; }
common=(--corpus "$corpus" "--${corpus}-dir" "${!dir_var}" --protocol "$protocol" --seeds "$seed"
        --gpu "$gpu" --baseline "")
tag=bench-$(date +%Y%m%d%H%M%S)

declare -A seconds
for system in "$model" svm; do
  feat=lld93; [ "$system" = svm ] && feat=compare_functionals
  ./run.sh "${common[@]}" --feat "$feat" --model "$system" --stage 1 --stop-stage 4 >/dev/null 2>&1
  start=$(date +%s%N)
  ./run.sh "${common[@]}" --feat "$feat" --model "$system" --exp-tag "$tag" --stage 5 --stop-stage 5 \
    > "exp/$corpus/bench_$system.log" 2>&1
  seconds[$system]=$(( ($(date +%s%N) - start) / 1000000 ))  # ms
  # the system name may carry more than feat and model (e.g. its speed copies), never another tag
  $keep || rm -rf "exp/$corpus/${feat}_${system}"*"_$tag"
done
awk -v c="$corpus" -v p="$protocol" -v n="$(env -u OMP_NUM_THREADS nproc)" -v m="$model" \
  -v a="${seconds[$model]}" -v b="${seconds[svm]}" \
  'BEGIN { printf "bench_train corpus=%s protocol=%s seeds=1 cores=%s %s_s=%.0f svm_s=%.0f ratio=%.2f\n", c, p, n, m, a / 1000, b / 1000, a / b }'
