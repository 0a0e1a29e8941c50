#!/usr/bin/env bash
# Prepares a corpus: Lhotse manifests in <data-dir>/manifests and a checked Kaldi
# data dir (wav.scp, utt2spk, spk2utt, utt2emo, utt2dur, ...) in <data-dir>.
# The record covers the corpus's contents (every file's path, size and SHA-1), so
# a corpus that changed is prepared again, and a copy with new file times is not.
set -euo pipefail

corpus_opts=""        # options of the corpus's prepare function, "key=value ..."
synth_speakers=""     # synth only: number of speakers [default: conf/corpus/synth.conf]
synth_sentences=""    # synth only: number of sentences [default: conf/corpus/synth.conf]
emotion_variants=""   # variants of conf/emotions.yaml, "<corpus>:<variant> ...", e.g. "ravdess:calm_as_neutral"
prepare_opts=""       # more options of ser.bin.prepare_data, e.g. "--exclude-low-rate"

help_message="Usage: $0 [options] <corpus> <corpus-dir> <data-dir>
e.g.: $0 casia /data/casia data/casia   (corpora: see ser/corpora/__init__.py)"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 3 ]; then echo "$help_message" >&2; exit 1; fi
corpus=$1; corpus_dir=$2; data=$3
# Absolute, not resolved: a symlink is how a path with spaces is kept out of wav.scp.
case $corpus_dir in /*) ;; *) corpus_dir=$PWD/$corpus_dir ;; esac
# Without "." and "..", where that names the same dir, so that ../corpora/casia and its
# absolute path are one setting, not two that prepare the corpus again.
tidy=$(realpath -m -s -- "$corpus_dir")
[ "$(realpath -m -- "$tidy")" = "$(realpath -m -- "$corpus_dir")" ] && corpus_dir=$tidy

contents() {  # a hash of the corpus's files: paths, sizes and contents (not their times)
  python -m ser.bin.recipe_info corpus-digest "$corpus_dir" \
    --cache "$(dirname "$data")/.corpus_digests/$(basename "$data").json"
}
settings="stage=prepare_data
corpus=$corpus
corpus_dir=$corpus_dir
corpus_opts=$corpus_opts
prepare_opts=$prepare_opts"
# The emotion mapping (conf/emotions.yaml) is recorded where it changes the labels.
emotion_map=$(python -m ser.bin.recipe_info emotion-map "$corpus" --variants "$emotion_variants")
[ -n "$emotion_map" ] && settings+="
emotion_map=$emotion_map"
[ "$corpus" = synth ] && settings+="
synth=speakers $synth_speakers sentences $synth_sentences"

lock_dir "$data"
if is_done "$data" "$settings
corpus_contents=$(contents)"; then log "$data is complete; skipping"; exit 0; fi

mkdir -p "$data/log"
log "preparing $corpus from $corpus_dir"
# shellcheck disable=SC2086
python -m ser.bin.prepare_data --corpus "$corpus" --corpus-dir "$corpus_dir" --data-dir "$data" \
  --corpus-opts "$corpus_opts" --emotion-variants "$emotion_variants" ${synth_speakers:+--synth-speakers "$synth_speakers"} \
  ${synth_sentences:+--synth-sentences "$synth_sentences"} $prepare_opts 2> >(tee "$data/log/prepare_data.log" >&2)
# The synth corpus is made by this stage: its contents are known only now.
mark_done "$data" "$settings
corpus_contents=$(contents)"
