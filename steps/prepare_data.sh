#!/usr/bin/env bash
# Prepares a corpus: Lhotse manifests in <data-dir>/manifests and a checked Kaldi
# data dir (wav.scp, utt2spk, spk2utt, utt2emo, utt2dur, ...) in <data-dir>.
set -euo pipefail

corpus_opts=""        # options of the corpus's prepare function, "key=value ..."
synth_speakers=4      # synth only: number of speakers
synth_sentences=20    # synth only: number of sentences

help_message="Usage: $0 [options] <corpus> <corpus-dir> <data-dir>
e.g.: $0 casia /data/casia data/casia   (corpora: see ser/corpora/__init__.py)"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -ne 3 ]; then echo "$help_message" >&2; exit 1; fi
corpus=$1; corpus_dir=$2; data=$3
settings="corpus=$corpus corpus_dir=$(realpath -m "$corpus_dir") corpus_opts=$corpus_opts"
[ "$corpus" = synth ] && settings+=" speakers=$synth_speakers sentences=$synth_sentences"
if is_done "$data" "$settings"; then log "$data is complete; skipping"; exit 0; fi

mkdir -p "$data/log"
rm -f "$data/.done"
log "preparing $corpus from $corpus_dir"
python -m ser.bin.prepare_data --corpus "$corpus" --corpus-dir "$corpus_dir" --data-dir "$data" \
  --corpus-opts "$corpus_opts" --synth-speakers "$synth_speakers" \
  --synth-sentences "$synth_sentences" 2> >(tee "$data/log/prepare_data.log" >&2)
mark_done "$data" "$settings"
