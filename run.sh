#!/usr/bin/env bash
# Speech emotion recognition after Xie et al., "Speech Emotion Classification
# Using Attention-Based LSTM" (IEEE/ACM TASLP 27(11), 2019).
#
#   ./run.sh                              everything, on the embedded synth corpus
#   ./run.sh --corpus casia --casia-dir /data/casia --stage 1 --stop-stage 3
#
# Stages: 0 environment, 1 corpus preparation, 2 folds, 3 features,
#         4 normalisation statistics, 5 training, 6 scoring and summary,
#         7 the final model on the whole corpus, exported as a bundle for ser infer.
# Each stage skips work that is already complete.
set -euo pipefail
cd "$(dirname "$0")"

stage=0               # first stage to run
stop_stage=6          # last stage to run
corpus=synth          # synth, casia, enterface, gemep, emodb, ravdess, iemocap
corpus_opts=""        # options of the corpus's prepare function, "key=value ..."
synth_dir=data/synth/corpus  # where the synth corpus is made
synth_speakers=4      # synth: number of speakers (at most 6)
synth_sentences=20    # synth: sentences per speaker and emotion (at most 24)
casia_dir=""          # CASIA root: <speaker>/<emotion>/<id>.wav
enterface_dir=""      # eNTERFACE'05 root: subject N/<emotion>/sentence N/*.avi
gemep_dir=""          # GEMEP audio root
emodb_dir=""          # EmoDB root (with wav/)
ravdess_dir=""        # RAVDESS root: Actor_NN/*.wav
iemocap_dir=""        # IEMOCAP root: Session1..5
protocol=""           # loso, speaker_kfold, session, random [default: the corpus registry's]
num_folds=""          # K for speaker_kfold, repeats for random
fold_seed=0           # seed of the random splits
test_share=""         # random protocol: test share [default: 1000/7200, the paper's]
feat=lld93            # fbank, mfcc, lld93, egemaps_lld, compare_lld
feat_opts=""          # overrides of conf/feats/<feat>.yaml, "key=value ..."
nj=2                  # parallel feature jobs
max_fail_share=""     # stage 3 fails when more than this share of files cannot be read [ser/bin/merge_feats.py: 0.05]
speed_perturb=""      # speed factors of extra training copies, e.g. "0.9 1.1" ("" = none)
prepare_opts=""       # options of ser.bin.prepare_data, e.g. "--exclude-low-rate"
cmvn=utt              # utt (each utterance by itself), train (fold's training part), speaker (uses test speakers), none
model=lstm_tf_at      # lstm, lstm_t, lstm_f, lstm_at, lstm_tf, lstm_tf_at, gru
model_opts=""         # overrides of conf/model/<model>.yaml, "key=value ..."
baseline=svm          # also run this system (svm: ComParE functionals + LinearSVC) in stages 3-6; "" = none
train_opts=""         # overrides of conf/train.yaml, "key=value ..."
seeds=1               # training seeds, e.g. "1 2 3"
gpu=0                 # 1: train on CUDA where present
exp_tag=""            # suffix of the system name, to keep variants apart

all_args=("$@")
cmvn_default=$cmvn
. ./utils/lib.sh
# Corpus defaults (conf/corpus/<corpus>.conf) come before the command line, so
# find --corpus first.
for ((i = 1; i <= $#; i++)); do
  case ${!i} in
    --corpus=*) corpus=${!i#--corpus=} ;;
    --corpus) j=$((i + 1)); corpus=${!j:-} ;;
  esac
done
corpus_train_opts=""
[ -f "conf/corpus/$corpus.conf" ] && . "conf/corpus/$corpus.conf"
. ./utils/parse_options.sh

if [ $# -ne 0 ]; then echo "$0: unexpected argument(s): $*; see $0 --help" >&2; exit 1; fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  log "Stage 0: environment (tools/install.sh)"
  tools/install.sh
fi
if [ ! -x tools/venv/bin/python ]; then
  echo "$0: no environment in tools/venv; run stage 0 (./run.sh --stage 0 --stop-stage 0)" >&2
  exit 1
fi
. ./path.sh
. ./cmd.sh

corpus_dir_var=${corpus}_dir
corpus_dir=${!corpus_dir_var-}
[ -n "$protocol" ] || protocol=$(python -m ser.bin.recipe_info default-protocol "$corpus")
# The svm's features are one vector per utterance, which per-utterance normalisation would
# zero: it uses the training part's statistics (then its own StandardScaler, fitted there too).
if [ "$model" = svm ] && [ "$cmvn" = utt ]; then cmvn=train; fi

# Output dirs are named from the settings that make them (the ESPnet way), so that
# output made with other settings never lands in an old dir; each dir's .done
# record (utils/lib.sh) then catches what a name does not show.
data=data/$corpus
fold_name=$protocol
[ -n "$num_folds" ] && fold_name+=_k$num_folds
[ "$fold_seed" != 0 ] && fold_name+=_seed$fold_seed
[ -n "$test_share" ] && fold_name+=_test$test_share
folds=$data/folds/$fold_name
feat_name=$feat
feat_tag=$(python -m ser.bin.recipe_info tag "$feat_opts")
[ -n "$feat_tag" ] && feat_name+=_$feat_tag
feat_dir=$data/feats/$feat_name
aug_feat_dir=""
if [ -n "$speed_perturb" ]; then
  aug_feat_dir=${feat_dir}_sp$(echo $speed_perturb | tr ' ,' '__')
fi
system=${feat_name}_${model}
[ "$cmvn" != "$cmvn_default" ] && [ "$model" != svm ] && system+=_cmvn-$cmvn
[ -n "$speed_perturb" ] && system+=_sp
model_tag=$(python -m ser.bin.recipe_info tag "$model_opts")
train_tag=$(python -m ser.bin.recipe_info tag "$train_opts")
[ -n "$model_tag" ] && system+=_$model_tag
[ -n "$train_tag" ] && system+=_$train_tag
[ -n "$exp_tag" ] && system+=_$exp_tag
exp=exp/$corpus/$system/$fold_name

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "Stage 1: prepare $corpus"
  if [ -z "$corpus_dir" ]; then
    echo "$0: give the corpus location with --${corpus}-dir DIR" >&2; exit 1
  fi
  steps/prepare_data.sh --corpus-opts "$corpus_opts" --prepare-opts "$prepare_opts" \
    --synth-speakers "$synth_speakers" --synth-sentences "$synth_sentences" \
    "$corpus" "$corpus_dir" "$data"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "Stage 2: $protocol folds"
  steps/make_folds.sh --protocol "$protocol" --num-folds "$num_folds" --fold-seed "$fold_seed" \
    --test-share "$test_share" "$data" "$folds"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "Stage 3: $feat features"
  steps/make_feats.sh --nj "$nj" --cmd "$feat_cmd" --feat "$feat" --feat-opts "$feat_opts" \
    --max-fail-share "$max_fail_share" "$data" "$feat_dir"
  if [ -n "$speed_perturb" ]; then
    log "Stage 3: $feat features of speed-perturbed copies ($speed_perturb)"
    steps/make_feats.sh --nj "$nj" --cmd "$feat_cmd" --feat "$feat" --feat-opts "$feat_opts" \
      --max-fail-share "$max_fail_share" --speed-perturb "$speed_perturb" "$data" "$aug_feat_dir"
  fi
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "Stage 4: normalisation statistics ($cmvn)"
  steps/compute_cmvn.sh --cmvn "$cmvn" "$data" "$feat_dir" "$folds"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "Stage 5: train $model ($protocol, seeds: $seeds)"
  steps/train.sh --cmd "$train_cmd" --cmvn "$cmvn" --model "$model" --model-opts "$model_opts" \
    --train-opts "$corpus_train_opts $train_opts" --aug-feat-dir "$aug_feat_dir" --seeds "$seeds" \
    --gpu "$gpu" "$data" "$feat_dir" "$folds" "$exp"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "Stage 6: score and summarise"
  # Only models trained with exactly these settings and inputs are scored.
  steps/train.sh --verify-only true --cmvn "$cmvn" --model "$model" --model-opts "$model_opts" \
    --train-opts "$corpus_train_opts $train_opts" --aug-feat-dir "$aug_feat_dir" --seeds "$seeds" \
    "$data" "$feat_dir" "$folds" "$exp"
  steps/score.sh --seeds "$seeds" "$folds" "$exp"
  log "Results: $(dirname "$exp")/RESULTS.md and exp/$corpus/RESULTS.md"
fi

# The paper's baseline on the same folds, with its own features and no option of the model's.
if [ -n "$baseline" ] && [ "$model" != "$baseline" ] && [ "$stage" -le 6 ] && [ "$stop_stage" -ge 3 ]; then
  log "Baseline $baseline (stages $((stage > 3 ? stage : 3))-$((stop_stage < 6 ? stop_stage : 6)))"
  ./run.sh "${all_args[@]}" --stage $((stage > 3 ? stage : 3)) --stop-stage $((stop_stage < 6 ? stop_stage : 6)) \
    --feat compare_functionals --feat-opts "" --model "$baseline" --model-opts "" --train-opts "" \
    --speed-perturb "" --exp-tag "" --baseline "" > /dev/null
  if [ "$stop_stage" -ge 6 ]; then
    log "Both systems, on the same folds: exp/$corpus/RESULTS.md"
    cat "exp/$corpus/RESULTS.md"
  fi
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  # One model on every utterance, with the cross-validation's settings and first seed;
  # protocol all holds out a stratified validation split to select the epoch.
  final_folds=$data/folds/all
  read -r final_seed _ <<< "$seeds"
  final_exp=$(dirname "$exp")/final_train
  log "Stage 7: final $model on all of $corpus (seed $final_seed), bundle $(dirname "$exp")/final"
  steps/make_folds.sh --protocol all --fold-seed "$fold_seed" "$data" "$final_folds"
  steps/compute_cmvn.sh --cmvn "$cmvn" "$data" "$feat_dir" "$final_folds"
  steps/train.sh --cmd "$train_cmd" --cmvn "$cmvn" --model "$model" --model-opts "$model_opts" \
    --train-opts "$corpus_train_opts $train_opts" --aug-feat-dir "$aug_feat_dir" \
    --seeds "$final_seed" --gpu "$gpu" "$data" "$feat_dir" "$final_folds" "$final_exp"
  steps/export_model.sh --results-dir "$(dirname "$exp")" "$final_exp/seed$final_seed/fold1" \
    "$(dirname "$exp")/final"
  log "Classify audio: local/infer.sh --model $(dirname "$exp")/final <files|dirs|wav.scp>"
fi
