#!/usr/bin/env bash
# Computes frame-level features for a Kaldi data dir in $nj parallel JOB splits
# through $cmd, then merges them into <feat-dir>/feats.scp.
set -euo pipefail

nj=2                  # parallel jobs
cmd=run.pl            # job runner: run.pl, slurm.pl or queue.pl with its options
feat=fbank            # feature type: fbank, mfcc, lld93, egemaps_lld, compare_lld
feat_opts=""          # overrides of conf/feats/<feat>.yaml, e.g. "frame_shift=0.01"
max_fail_share=0.05   # fail the stage when more than this share of files fail
compress=false        # store kaldi compressed matrices

help_message="Usage: $0 [options] <data-dir> <feat-dir>
e.g.: $0 --nj 4 --feat lld93 data/casia data/casia/feats/lld93"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 2 ]; then echo "$help_message" >&2; exit 1; fi
data=$1
dir=$2
settings="feat=$feat feat_opts=$feat_opts data=$data"
if is_done "$dir" "$settings"; then
  log "$dir is complete; skipping"
  exit 0
fi
[ -f "$data/wav.scp" ] || { echo "$0: $data/wav.scp not found" >&2; exit 1; }

# Splits of an interrupted run with other settings must not be reused.
if [ -f "$dir/.settings" ] && [ "$(cat "$dir/.settings")" != "$settings" ]; then
  rm -rf "$dir"
fi
mkdir -p "$dir/split" "$dir/log"
printf '%s' "$settings" > "$dir/.settings"
rm -f "$dir/.done" "$dir/feats.scp"

# Round-robin split keeps each split sorted; a split is rewritten only when absent.
if [ ! -f "$dir/split/wav.$nj.scp" ] || [ -f "$dir/split/wav.$((nj + 1)).scp" ]; then
  rm -f "$dir"/split/*
  for j in $(seq "$nj"); do : > "$dir/split/wav.$j.scp"; done
  awk -v nj="$nj" -v d="$dir/split" '{ print > (d "/wav." ((NR - 1) % nj + 1) ".scp") }' "$data/wav.scp"
fi

abs_dir=$(realpath "$dir")  # feats.scp holds absolute ark paths, as in Kaldi
compress_opt=""
$compress && compress_opt=--compress
log "computing $feat features for $(wc -l < "$data/wav.scp") utterances in $nj jobs"
$cmd JOB=1:"$nj" "$dir/log/make_feats.JOB.log" \
  python -m ser.bin.compute_feats --feat "$feat" --feat-opts "$feat_opts" \
    --wav-scp "$dir/split/wav.JOB.scp" --out "$abs_dir/split/raw.JOB" $compress_opt

python -m ser.bin.merge_feats --wav-scp "$data/wav.scp" \
  --feat-dir "$dir" --nj "$nj" --max-fail-share "$max_fail_share" 2> "$dir/log/merge_feats.log" \
  || { cat "$dir/log/merge_feats.log" >&2; exit 1; }
mark_done "$dir" "$settings"
log "wrote $dir/feats.scp ($(wc -l < "$dir/feats.scp") utterances, dim $(cat "$dir/feat_dim"))"
