#!/usr/bin/env bash
# Computes features for a Kaldi data dir in $nj parallel JOB splits through $cmd,
# then merges them into <feat-dir>/feats.scp. With --speed-perturb, computes them
# instead for speed-perturbed copies of every utterance, keyed sp<factor>-<utt> as
# in Kaldi, so that they can never be taken for the originals (training reads the
# copies of its own utterances only).
# With --feat external, computes nothing: checks the Kaldi feats.scp of --feats-scp
# against the data dir and makes the same feature dir from it (ser/external_feats.py).
set -euo pipefail

nj=2                  # parallel jobs
cmd=run.pl            # job runner: run.pl, slurm.pl or queue.pl with its options
feat=""               # required: feature type, see ser/features.py
feat_opts=""          # overrides of conf/feats/<feat>.yaml, e.g. "frame_shift=0.01"
max_fail_share=""     # fail when more than this share of files fail [default: ser/external_feats.py]
compress=false        # store kaldi compressed matrices
speed_perturb=""      # speed factors of perturbed copies, e.g. "0.9 1.1" (sox speed)
feats_scp=""          # --feat external: Kaldi feats.scp file(s), frame-level (T x D) or 1 x D per utterance
frame_shift=""        # --feat external: frame shift in seconds [default: estimated from the durations]
gpu=0                 # 1: compute encoder features (whisper, ssl) on CUDA

help_message="Usage: $0 [options] <data-dir> <feat-dir>
e.g.: $0 --nj 4 --feat lld93 data/casia data/casia/feats/lld93"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 2 ] || [ -z "$feat" ]; then echo "$help_message" >&2; exit 1; fi
data=$1
dir=$2
python -m ser.bin.recipe_info check --feat "$feat"
require_done "$data" corpus
if [ "$feat" = external ]; then
  [ -n "$feats_scp" ] || { echo "$0: --feat external needs --feats-scp PATH" >&2; exit 1; }
  [ -z "$speed_perturb" ] || { echo "$0: --speed-perturb needs audio; external features have none" >&2; exit 1; }
  scps=()
  for scp in $feats_scp; do
    [ -f "$scp" ] || { echo "$0: --feats-scp $scp: no such file" >&2; exit 1; }
    scps+=("$(realpath "$scp")")
  done
  # The scp files' contents and the size and time of every ark they name: features
  # written anew under the same paths are imported anew.
  contents=$(for scp in "${scps[@]}"; do cat "$scp"; awk '{ sub(/:[0-9]+$/, "", $2); print $2 }' "$scp" \
    | sort -u | xargs -r stat -L -c '%n %s %Y' 2>/dev/null; done | sha1sum | cut -c1-12)
  settings="stage=make_feats
feat=external
feats_scp=${scps[*]}
contents=$contents
frame_shift=$frame_shift
data=$(record_id "$data")"
  detail=$(record_detail data "$data")
  lock_dir "$dir"
  if is_done "$dir" "$settings" "$detail"; then log "$dir is complete; skipping"; exit 0; fi
  mkdir -p "$dir/log"
  rm -f "$dir/.done" "$dir/feats.scp"
  python -m ser.bin.import_feats --data-dir "$data" --feat-dir "$dir" --feats-scp "${scps[@]}" \
    ${frame_shift:+--frame-shift "$frame_shift"} ${max_fail_share:+--max-fail-share "$max_fail_share"} \
    2> >(tee "$dir/log/import_feats.log" >&2)
  mark_done "$dir" "$settings" "$detail"
  log "wrote $dir/feats.scp ($(wc -l < "$dir/feats.scp") utterances, dim $(cat "$dir/feat_dim"), frame shift $(cat "$dir/frame_shift") s)"
  exit 0
fi
# The feature type's config files are part of the record: a changed default is a new feature;
# so is the copies' sox command (copies made before sox -R had random dither).
conf_hash=$(cat "$SER_ROOT"/conf/feats/"$feat".* 2>/dev/null | sha1sum | cut -c1-12)
# Features computed on CUDA are recorded as such (CPU records, made before --gpu, stay valid).
# Only feature types with a device (the encoders) use the GPU, and ask the cluster for one.
device=cpu device_record=""
if [ "$gpu" = 1 ] && [ "$(python -m ser.bin.recipe_info runs-on-device "$feat")" = true ]; then
  device=cuda device_record=$'\ndevice=cuda'
  cmd+=" --gpu 1"
fi
perturb_command=""
[ -n "$speed_perturb" ] && \
  perturb_command=$(python -c 'from ser.audio import speed_perturbed_entry; print(speed_perturbed_entry("WAV", "F"))')
settings="stage=make_feats
feat=$feat
feat_opts=$feat_opts
feat_conf=$conf_hash
speed_perturb=$speed_perturb${speed_perturb:+
perturb_command=$perturb_command}
compress=$compress${device_record}
data=$(record_id "$data")"
# What the hashes stand for, so that a rebuild names the setting that changed.
detail=$(record_detail data "$data"; file_detail "$SER_ROOT"/conf/feats/"$feat".*)
lock_dir "$dir"
if is_done "$dir" "$settings" "$detail"; then
  log "$dir is complete; skipping"
  exit 0
fi

# Splits of an interrupted run with other settings must not be reused.
if [ -f "$dir/.settings" ] && [ "$(cat "$dir/.settings")" != "$settings" ]; then
  rm -rf "$dir"
fi
mkdir -p "$dir/split" "$dir/log"
printf '%s' "$settings" > "$dir/.settings"
rm -f "$dir/.done" "$dir/feats.scp"

wav_scp=$data/wav.scp utt2dur=$data/utt2dur
if [ -n "$speed_perturb" ]; then
  wav_scp=$dir/wav.scp
  copies_utt2dur=()  # the copies' durations, where the originals' are known
  if [ -f "$utt2dur" ]; then copies_utt2dur=(--utt2dur "$utt2dur" "$dir/utt2dur"); utt2dur=$dir/utt2dur; fi
  python -m ser.bin.perturb_wav_scp --factors "$speed_perturb" "${copies_utt2dur[@]}" "$data/wav.scp" "$wav_scp"
fi
[ -f "$utt2dur" ] || utt2dur=/dev/null

# Each utterance goes, in order, to the split with the least audio so far (utt2dur), so
# that the jobs end together and each split stays sorted; without durations this is
# round-robin. A split is rewritten only when absent.
if [ ! -f "$dir/split/wav.$nj.scp" ] || [ -f "$dir/split/wav.$((nj + 1)).scp" ]; then
  rm -f "$dir"/split/*
  for j in $(seq "$nj"); do : > "$dir/split/wav.$j.scp"; done
  # FILENAME, not FNR == NR: that would hold in wav.scp too after an empty utt2dur.
  awk -v nj="$nj" -v d="$dir/split" '
    FILENAME == ARGV[1] { dur[$1] = $2; next }
    {
      j = 1
      for (k = 2; k <= nj; k++) if (load[k] < load[j]) j = k
      load[j] += ($1 in dur) ? dur[$1] : 1
      print > (d "/wav." j ".scp")
    }' "$utt2dur" "$wav_scp"
fi

abs_dir=$(realpath "$dir")  # feats.scp holds absolute ark paths, as in Kaldi
compress_opt=""
$compress && compress_opt=--compress
log "computing $feat features for $(wc -l < "$wav_scp") utterances in $nj jobs"
keep_job_logs "$dir/log" make_feats
$cmd JOB=1:"$nj" "$dir/log/make_feats.JOB.log" \
  python -m ser.bin.compute_feats --feat "$feat" --feat-opts "$feat_opts" \
    --wav-scp "$dir/split/wav.JOB.scp" --out "$abs_dir/split/raw.JOB" --device $device $compress_opt

# Its warnings (files that failed, under the allowed share) belong on the console too.
python -m ser.bin.merge_feats --wav-scp "$wav_scp" --feat-dir "$dir" --nj "$nj" \
  ${max_fail_share:+--max-fail-share "$max_fail_share"} 2> >(tee "$dir/log/merge_feats.log" >&2)
mark_done "$dir" "$settings" "$detail"
log "wrote $dir/feats.scp ($(wc -l < "$dir/feats.scp") utterances, dim $(cat "$dir/feat_dim"))"
