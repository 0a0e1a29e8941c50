#!/usr/bin/env bash
# Speech emotion recognition after Xie et al., "Speech Emotion Classification
# Using Attention-Based LSTM" (IEEE/ACM TASLP 27(11), 2019).
#
#   ./run.sh                              everything, on the embedded synth corpus
#   ./run.sh --corpus casia --casia-dir /data/casia --stage 1 --stop-stage 3
#   ./run.sh --corpus casia --casia-dir /data/casia --test-corpus emodb --emodb-dir /data/emodb
#                                         cross-corpus: train on CASIA, test on EmoDB
#   ./run.sh --train-corpora "casia emodb" --casia-dir ... --emodb-dir ...
#                                         multi-corpus: LOSO over the union
#   ./run.sh --corpus casia --casia-dir /data/casia --feat external --feats-scp feats.scp
#                                         features computed elsewhere (Kaldi feats.scp)
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
train_corpora=""      # training corpora, e.g. "casia emodb" (multi-corpus) [default: --corpus]
test_corpus=""        # cross-corpus: test on this corpus, train on the training corpora
emotion_variants=""   # variants of conf/emotions.yaml, "<corpus>:<variant> ...", e.g. "ravdess:calm_as_neutral"
synth_dir=data/synth/corpus  # where the synth corpus is made
synth_speakers=""     # synth: number of speakers (at most 6) [default: conf/corpus/synth.conf]
synth_sentences=""    # synth: sentences per speaker and emotion (at most 24) [default: conf/corpus/synth.conf]
casia_dir=""          # CASIA root: <speaker>/<emotion>/<id>.wav
enterface_dir=""      # eNTERFACE'05 root: subject N/<emotion>/sentence N/*.avi
gemep_dir=""          # GEMEP audio root
emodb_dir=""          # EmoDB root (with wav/)
ravdess_dir=""        # RAVDESS root: Actor_NN/*.wav
iemocap_dir=""        # IEMOCAP root: Session1..5
protocol=""           # loso, speaker_kfold, session, random, cross_corpus [default: the corpus registry's; cross_corpus with --test-corpus]
num_folds=""          # K for speaker_kfold, repeats for random
fold_seed=0           # seed of the random splits
test_share=""         # random protocol: test share [default: 1000/7200, the paper's]
feat=lld93            # lld93 (the paper's), whisper, ssl (pretrained encoders), fbank, mfcc, egemaps_lld, compare_lld, compare_functionals (the svm's), external (--feats-scp)
feat_opts=""          # overrides of conf/feats/<feat>.yaml, "key=value ...", e.g. "model=small" for whisper
feats_scp=""          # --feat external: Kaldi feats.scp file(s), T x D or 1 x D per utterance
feats_frame_shift=""  # --feat external: frame shift, seconds [default: estimated from the durations]
nj=2                  # parallel feature jobs
max_fail_share=""     # stage 3 fails when more than this share of files cannot be read [default: ser/external_feats.py's DEFAULT_MAX_FAIL_SHARE]
speed_perturb=auto    # speed factors of extra training copies, e.g. "0.9 1.1" ("" = none); auto: for a recurrent model on one corpus's audio, the corpus conf's auto_speed_factors or else ser/speed.py's AUTO_FACTORS (0.8 0.9 1.1 1.2); none for the svm, external features or several corpora
prepare_opts=""       # options of ser.bin.prepare_data, e.g. "--exclude-low-rate"
cmvn=utt              # utt (each utterance by itself), train (fold's training part), speaker (uses test speakers), corpus (each corpus's own: the test corpus's from its unlabelled features), none
model=lstm_tf_at      # lstm, lstm_t, lstm_f, lstm_at, lstm_tf, lstm_tf_at, gru, svm (LinearSVC on each utterance's pooled features)
model_opts=""         # overrides of conf/model/<model>.yaml, "key=value ..."
baseline=svm          # also run this system (svm: ComParE functionals + LinearSVC) in stages 3-6; "" = none
train_opts=""         # overrides of conf/train.yaml, "key=value ..."
seeds=1               # training seeds, e.g. "1 2 3"
gpu=0                 # 1: train, and compute encoder features, on CUDA where present
exp_tag=""            # suffix of the system name, to keep variants apart
show_exp_dir=false    # true: print the system's exp dir (exp/<data>/<system>/<folds>) for these settings and exit, running no stage

_all_args=("$@")  # leading _: internal, neither an option nor in --help
. ./utils/lib.sh
become_driver  # every process of this run ends with it, kill -9 included (utils/lib.sh)
# Defaults of systems on a feature type (conf/feat_defaults/<feat>.conf) and of a corpus
# (conf/corpus/<corpus>.conf) come before the command line, so find --feat and --corpus first
# (here for --help; ser/recipe.py reads them the same way for the stages).
for ((i = 1; i <= $#; i++)); do
  case ${!i} in
    --corpus=*) corpus=${!i#--corpus=} ;;
    --corpus) j=$((i + 1)); corpus=${!j:-} ;;
    --train-corpora=*) tc=${!i#--train-corpora=}; corpus=${tc%% *} ;;
    --train-corpora) j=$((i + 1)); tc=${!j:-}; corpus=${tc%% *} ;;
    --feat=*) feat=${!i#--feat=} ;;
    --feat) j=$((i + 1)); feat=${!j:-} ;;
  esac
done
feat_train_opts=""     # the feature type's overrides of conf/train.yaml, before the corpus's (conf/feat_defaults/<feat>.conf)
[ -f "conf/feat_defaults/$feat.conf" ] && . "conf/feat_defaults/$feat.conf"
corpus_train_opts=""   # the corpus's overrides of conf/train.yaml, before --train-opts (conf/corpus/<corpus>.conf)
auto_speed_factors=""  # the factors of --speed-perturb auto where a corpus conf sets them [default: ser/speed.py's AUTO_FACTORS]
[ -f "conf/corpus/$corpus.conf" ] && . "conf/corpus/$corpus.conf"
. ./utils/parse_options.sh

if [ $# -ne 0 ]; then echo "$0: unexpected argument(s): $*; see $0 --help" >&2; exit 1; fi
for v in stage stop_stage nj; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "$0: --${v//_/-} ${!v}: expected a whole number" >&2; exit 1; }
done
[[ $num_folds =~ ^[0-9]*$ ]] || { echo "$0: --num-folds $num_folds: expected a whole number" >&2; exit 1; }
[ "$nj" -ge 1 ] || { echo "$0: --nj 0: at least one job is needed" >&2; exit 1; }

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

# One Python process checks the settings (a misspelt one stops here, before any stage has
# run) and names every dir from them (ser/recipe.py, which local/make_results.py asks too):
#   train_list, test_corpus, combined (several corpora, joined into one data dir),
#   corpus_data[<corpus>] (each corpus's own data dir), synth_speakers and synth_sentences (the
#   synth corpus's size, where not given), data, data_name, protocol, fold_name, folds,
#   systems: main, then the baseline if there is one, each an associative array <role>_system of
#   its feat, feat_opts, feats_scp, feat_name, feat_dir, speed_perturb, aug_feat_dir, cmvn,
#   model, model_opts, train_opts (the feature type's, the corpus's, then --train-opts), system, exp.
names=$(python -m ser.bin.recipe_info names "${_all_args[@]}")
eval "$names"
use_system() {  # sets feat, model, exp, ... to those of system $1 (main or baseline)
  local -n chosen=$1_system
  local key
  for key in "${!chosen[@]}"; do printf -v "$key" '%s' "${chosen[$key]}"; done
}
use_system main
# Scripts that tabulate systems ask ser/recipe.py; users ask here.
case $show_exp_dir in
  true) echo "$exp"; exit 0 ;;
  false) ;;
  *) echo "$0: --show-exp-dir $show_exp_dir: expected true or false" >&2; exit 1 ;;
esac
corpus=${train_list[0]}
all_corpora=("${train_list[@]}")
[ -n "$test_corpus" ] && all_corpora+=("$test_corpus")

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  for c in "${all_corpora[@]}"; do
    log "Stage 1: prepare $c"
    c_dir_var=${c}_dir
    if [ -z "${!c_dir_var-}" ]; then
      echo "$0: give the corpus location with --${c}-dir DIR" >&2; exit 1
    fi
    c_opts=""
    [ "$c" = "$corpus" ] && c_opts=$corpus_opts  # --corpus-opts are --corpus's
    steps/prepare_data.sh --corpus-opts "$c_opts" --prepare-opts "$prepare_opts" \
      --emotion-variants "$emotion_variants" \
      --synth-speakers "$synth_speakers" --synth-sentences "$synth_sentences" \
      "$c" "${!c_dir_var}" "${corpus_data[$c]}"
  done
  if $combined; then
    log "Stage 1: join ${train_list[*]}${test_corpus:+ (test: $test_corpus)} into $data"
    members=()
    for c in "${train_list[@]}"; do members+=("$c=${corpus_data[$c]}"); done
    steps/combine_data.sh --test-corpus "${test_corpus:+$test_corpus=${corpus_data[$test_corpus]:-}}" \
      "$data" "${members[@]}"
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "Stage 2: $protocol folds"
  steps/make_folds.sh --protocol "$protocol" --num-folds "$num_folds" --fold-seed "$fold_seed" \
    --test-share "$test_share" "$data" "$folds"
fi

# Stages 3-6 for each system: the main one, then the paper's baseline (svm: ComParE
# functionals, LinearSVC) on the same folds, with its own features and none of the main
# system's feature, model or training options.
for role in "${systems[@]}"; do
  use_system "$role"
  if [ "$role" = baseline ]; then
    [ "$stage" -le 6 ] && [ "$stop_stage" -ge 3 ] || break
    log "Baseline $model (stages $((stage > 3 ? stage : 3))-$((stop_stage < 6 ? stop_stage : 6)))"
    exec {run_stdout}>&1 >/dev/null  # its table is printed with the main system's, below
  fi

  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    log "Stage 3: $feat features"
    if $combined && [ "$feat" != external ]; then
      # Each corpus's own features (shared with its other runs), then joined.
      member_feats=()
      for c in "${all_corpora[@]}"; do
        member_feats+=("${corpus_data[$c]}/feats/$feat_name")
        steps/make_feats.sh --nj "$nj" --cmd "$feat_cmd" --gpu "$gpu" --feat "$feat" --feat-opts "$feat_opts" \
          --max-fail-share "$max_fail_share" "${corpus_data[$c]}" "${member_feats[-1]}"
      done
      steps/combine_feats.sh --max-fail-share "$max_fail_share" "$data" "$feat_dir" "${member_feats[@]}"
    else
      steps/make_feats.sh --nj "$nj" --cmd "$feat_cmd" --gpu "$gpu" --feat "$feat" --feat-opts "$feat_opts" \
        --feats-scp "$feats_scp" --frame-shift "$feats_frame_shift" \
        --max-fail-share "$max_fail_share" "$data" "$feat_dir"
    fi
    if [ -n "$speed_perturb" ]; then
      $combined && { echo "$0: --speed-perturb is for single-corpus runs" >&2; exit 1; }
      log "Stage 3: $feat features of speed-perturbed copies ($speed_perturb)"
      steps/make_feats.sh --nj "$nj" --cmd "$feat_cmd" --gpu "$gpu" --feat "$feat" --feat-opts "$feat_opts" \
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
      --train-opts "$train_opts" --aug-feat-dir "$aug_feat_dir" --seeds "$seeds" \
      --gpu "$gpu" "$data" "$feat_dir" "$folds" "$exp"
  fi

  if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
    log "Stage 6: score and summarise"
    # Only models trained with exactly these settings and inputs are scored.
    steps/train.sh --verify-only true --cmvn "$cmvn" --model "$model" --model-opts "$model_opts" \
      --train-opts "$train_opts" --aug-feat-dir "$aug_feat_dir" --seeds "$seeds" \
      "$data" "$feat_dir" "$folds" "$exp"
    steps/score.sh --seeds "$seeds" "$folds" "$exp"
    log "Results: $(dirname "$exp")/RESULTS.md and exp/$data_name/RESULTS.md"
  fi

  if [ "$role" = baseline ]; then exec >&"$run_stdout" {run_stdout}>&-; fi
done
if [ "${#systems[@]}" -gt 1 ] && [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  log "Both systems, on the same folds: exp/$data_name/RESULTS.md"
  cat "exp/$data_name/RESULTS.md"
fi
use_system main

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ] && [ -n "$test_corpus" ]; then
  log "Stage 7: skipped: a cross-corpus run's model is the one of stage 5 (trained on ${train_list[*]});" \
    "a final model is made by a run without --test-corpus"
elif [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  # One model on every utterance, with the cross-validation's settings and first seed;
  # protocol all holds out a stratified validation split to select the epoch.
  final_folds=$data/folds/all
  read -r final_seed _ <<< "$seeds"
  final_exp=$(dirname "$exp")/final_train
  log "Stage 7: final $model on all of $data_name (seed $final_seed), bundle $(dirname "$exp")/final"
  steps/make_folds.sh --protocol all --fold-seed "$fold_seed" "$data" "$final_folds"
  steps/compute_cmvn.sh --cmvn "$cmvn" "$data" "$feat_dir" "$final_folds"
  steps/train.sh --cmd "$train_cmd" --cmvn "$cmvn" --model "$model" --model-opts "$model_opts" \
    --train-opts "$train_opts" --aug-feat-dir "$aug_feat_dir" \
    --seeds "$final_seed" --gpu "$gpu" "$data" "$feat_dir" "$final_folds" "$final_exp"
  steps/export_model.sh --results-dir "$(dirname "$exp")" "$final_exp/seed$final_seed/fold1" \
    "$(dirname "$exp")/final"
  log "Classify audio: local/infer.sh --model $(dirname "$exp")/final <files|dirs|wav.scp>"
fi
