#!/usr/bin/env bash
# The paper's table (Xie et al. 2019, Table IV-style): every system on every setup,
# each through run.sh's stages and so through $train_cmd (cmd.sh: local, slurm,
# sge), then local/make_results.py writes RESULTS.md. Resumable: run.sh skips every
# complete stage and run, so a second call trains only what is missing, and a row
# once measured stays in local/results/ with the commit it was measured at.
#
#   local/run_ablation.sh --casia-dir /data/casia --emodb-dir /data/emodb
#   local/run_ablation.sh --systems "svm lstm_tf_at" --setups "casia:loso" --seeds "1 2 3"
#   local/run_ablation.sh --systems "whisper:svm whisper:lstm whisper:lstm_tf_at" --casia-dir ...
set -euo pipefail
cd "$(dirname "$0")/.."

casia_dir=""          # CASIA root (setups casia:*)
emodb_dir=""          # EmoDB root (setups emodb:*)
setups="casia:loso casia:random emodb:loso"  # corpus:protocol pairs
random_repeats=5      # folds of the random protocol (the paper's hold-out, repeated)
systems="svm lstm lstm_t lstm_f lstm_at lstm_tf lstm_tf_at gru"  # svm: ComParE functionals + LinearSVC; FEAT:MODEL on other features, e.g. whisper:svm whisper:lstm_tf_at
seeds="1 2 3"         # training seeds of every system
lld_feat=lld93        # frame features of the recurrent systems
gpu=0                 # 1: train on CUDA (run.sh --gpu 1)
parallel=1            # systems run at once (each runs its folds x seeds through $train_cmd)
extra_opts=""         # more run.sh options for every system, e.g. "--nj 8"

help_message="Usage: $0 [options]"
. ./utils/lib.sh
. ./utils/parse_options.sh
if [ $# -ne 0 ]; then echo "$0: unexpected argument(s): $*; see $0 --help" >&2; exit 1; fi
for v in parallel random_repeats gpu; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "$0: --${v//_/-} ${!v}: expected a whole number" >&2; exit 1; }
done
[ "$parallel" -ge 1 ] || { echo "$0: --parallel 0: at least one system must run at a time" >&2; exit 1; }

mkdir -p exp/ablation/log
commands=()
logs=()  # one per setup and system, so that a later call with other systems keeps this one's
for setup in $setups; do
  corpus=${setup%%:*}; protocol=${setup#*:}
  dir_var=${corpus}_dir
  [ -n "${!dir_var}" ] || { echo "$0: setup $setup needs --${corpus}-dir" >&2; exit 1; }
  folds_opt=""
  [ "$protocol" = random ] && folds_opt="--num-folds $random_repeats"
  for system in $systems; do
    # FEAT:MODEL, or a model on the paper's features (the svm's are ComParE functionals)
    case $system in
      *:*) feat=${system%%:*}; model=${system#*:} ;;
      svm) feat=compare_functionals; model=svm ;;
      *) feat=$lld_feat; model=$system ;;
    esac
    commands+=("./run.sh --corpus $corpus --${corpus}-dir $(printf %q "${!dir_var}") --protocol $protocol $folds_opt --feat $feat --model $model --seeds $(printf %q "$seeds") --gpu $gpu --baseline \"\" --stage 1 --stop-stage 6 $extra_opts")
    logs+=("exp/ablation/log/${corpus}_${protocol}_${system/:/_}.log")
  done
done

# Systems of one corpus share stages 1-4, which lock_dir serialises; training runs in parallel.
failed=0
for i in "${!commands[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || failed=1; done
  log "${commands[$i]}"
  (eval "${commands[$i]}" > "${logs[$i]}" 2>&1 || { echo "failed: ${commands[$i]} (${logs[$i]})" >&2; exit 1; }) &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
[ "$failed" -eq 0 ] || { echo "$0: some systems failed; see exp/ablation/log/" >&2; exit 1; }

log "writing RESULTS.md"
. ./path.sh
python local/make_results.py --setups "$setups" --systems "$systems" --lld-feat "$lld_feat" \
  --random-repeats "$random_repeats" --extra-opts "$extra_opts"
