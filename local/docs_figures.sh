#!/usr/bin/env bash
# Makes the README's pictures under docs/ from a synth bundle (stage 7 on synth):
#   docs/explain.png   ser explain on one synth clip (time and feature attention)
#   docs/timeline.png  ser infer --segments --plot on a synth "sad" clip followed by an
#                      "angry" one, joined with sox, with --timeline-model (default: the
#                      svm baseline's bundle, ./run.sh --stage 7 --stop-stage 7 --model svm
#                      --feat compare_functionals, which follows the change on synth)
set -euo pipefail

model=exp/synth/lld93_lstm_tf_at_sp0.9_1.1/final   # the bundle to explain (an attention model)
timeline_model=exp/synth/compare_functionals_svm/final  # the bundle of the timeline
explain_clip=data/synth/corpus/spk03/angry/013.wav
first=data/synth/corpus/spk04/sad/002.wav
second=data/synth/corpus/spk03/angry/013.wav
out=docs

help_message="Usage: $0 [--model DIR] [--timeline-model DIR] [--explain-clip WAV] [--first WAV] [--second WAV] [--out DIR]"
. "$(dirname "$0")/../path.sh"
. parse_options.sh
if [ $# -ne 0 ]; then echo "$help_message" >&2; exit 1; fi
for f in "$model/bundle.json" "$timeline_model/bundle.json" "$explain_clip" "$first" "$second"; do
  [ -f "$f" ] || { echo "$0: $f not found; run ./run.sh and ./run.sh --stage 7 --stop-stage 7 first" >&2; exit 1; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
ser explain --model "$model" --out "$tmp/explain" "$explain_clip"
cp "$tmp"/explain/*.png "$out/explain.png"
sox "$first" "$second" "$tmp/sad_then_angry.wav"
echo "join at $(soxi -D "$first") s" >&2
timeline_model=$(readlink -f "$timeline_model")
# From the temporary dir, so that the picture's title is the file's name alone.
(cd "$tmp" && ser infer --model "$timeline_model" --segments --plot timeline sad_then_angry.wav)
cp "$tmp"/timeline/*.png "$out/timeline.png"
ls -l "$out/explain.png" "$out/timeline.png" >&2
