#!/usr/bin/env bash
# Classifies audio files, directories (*.wav, *.flac, recursively) or wav.scp files
# with a model bundle, in the recipe's environment:
#   local/infer.sh --model exp/synth/lld93_lstm_tf_at_sp/final clip.wav more/ data/x/wav.scp
# Every option is ser infer's (local/infer.sh --help); exit status 0 all classified,
# 1 some files failed, 2 usage error.
set -euo pipefail
. "$(dirname "$0")/../path.sh"
exec python -m ser.bin.infer "$@"
