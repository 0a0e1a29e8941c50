#!/usr/bin/env bash
# Training cost of the recipe's defaults: wall time of stage 5 (training, through
# $train_cmd) for the full cross-validation of a corpus with 1 seed, for lstm_tf_at
# and the svm baseline, measured one after the other in this command. Both train
# into fresh exp dirs (--exp-tag bench-<time>), so nothing is skipped; stages 1-4
# are run first and not timed (their logs: exp/<corpus>/bench_<system>_stages1-4.log).
# The last line is
#   bench_train corpus=casia protocol=loso seeds=1 cores=<n> lstm_tf_at_s=<s> svm_s=<s> ratio=<lstm_tf_at_s / svm_s>
#
#   local/bench_train.sh --casia-dir /data/casia
#   local/bench_train.sh --casia-dir /data/casia --quick true   checks that it works (tiny model, 1 epoch)
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=casia          # corpus to train on
casia_dir=""          # CASIA root
emodb_dir=""          # EmoDB root
protocol=loso         # protocol of the cross-validation
seed=1                # the one training seed
model=lstm_tf_at      # the system timed against svm
feat=lld93            # the timed system's features (the svm has its own: compare_functionals)
model_opts=""         # the timed system's overrides of conf/model/<model>.yaml (run.sh --model-opts)
train_opts=""         # the timed system's overrides of conf/train.yaml (run.sh --train-opts)
speed_perturb=auto    # the timed system's speed copies (run.sh --speed-perturb; "" = none)
gpu=0                 # 1: train on CUDA
quick=false           # true: fbank, hidden_size=8, 1 epoch, no speed copies; checks the script, its figures mean nothing
keep=false            # true: keep the bench exp dirs

help_message="Usage: $0 [options]"
. ./utils/lib.sh
. ./utils/parse_options.sh
if [ $# -ne 0 ]; then echo "$0: unexpected argument(s): $*; see $0 --help" >&2; exit 1; fi
dir_var=${corpus}_dir
[ -n "${!dir_var-}" ] || { echo "$0: give --${corpus}-dir" >&2; exit 1; }
if [ "$quick" = true ]; then
  feat=fbank; model_opts="hidden_size=8 num_layers=1 fc_dim=8"; train_opts="epochs=1"; speed_perturb=""
fi
common=(--corpus "$corpus" "--${corpus}-dir" "${!dir_var}" --protocol "$protocol" --seeds "$seed"
        --gpu "$gpu" --baseline "")
tag=bench-$(date +%Y%m%d%H%M%S)
mkdir -p "exp/$corpus"

declare -A seconds
for system in "$model" svm; do
  if [ "$system" = svm ]; then
    opts=(--feat compare_functionals --model svm)
    sys_feat=compare_functionals
  else
    opts=(--feat "$feat" --model "$system" --model-opts "$model_opts" --train-opts "$train_opts"
          --speed-perturb "$speed_perturb")
    sys_feat=$feat
  fi
  prep_log=exp/$corpus/bench_${system}_stages1-4.log
  ./run.sh "${common[@]}" "${opts[@]}" --stage 1 --stop-stage 4 > "$prep_log" 2>&1 || {
    tail -n 20 "$prep_log" >&2; echo "$0: stages 1-4 of $system failed; see $prep_log" >&2; exit 1; }
  log=exp/$corpus/bench_$system.log
  start=$(date +%s%N)
  ./run.sh "${common[@]}" "${opts[@]}" --exp-tag "$tag" --stage 5 --stop-stage 5 > "$log" 2>&1 || {
    tail -n 20 "$log" >&2; echo "$0: stage 5 of $system failed; see $log" >&2; exit 1; }
  seconds[$system]=$(( ($(date +%s%N) - start) / 1000000 ))  # ms
  # the system name may carry more than feat and model (e.g. its speed copies), never another tag
  [ "$keep" = true ] || rm -rf "exp/$corpus/${sys_feat}_${system}"*"_$tag"
done
awk -v c="$corpus" -v p="$protocol" -v n="$(env -u OMP_NUM_THREADS nproc)" -v m="$model" \
  -v a="${seconds[$model]}" -v b="${seconds[svm]}" \
  'BEGIN { printf "bench_train corpus=%s protocol=%s seeds=1 cores=%s %s_s=%.0f svm_s=%.0f ratio=%.2f\n", c, p, n, m, a / 1000, b / 1000, a / b }'
