#!/usr/bin/env bash
# Joins the prepared data dirs of several corpora into one (ser/multicorpus.py), for
# cross-corpus evaluation (--test-corpus) or multi-corpus training: the classes they all
# share; the other utterances listed in <data-dir>/excluded.txt.
set -euo pipefail

test_corpus=""        # CORPUS=DATA_DIR of the test corpus ("" = multi-corpus training only)

help_message="Usage: $0 [options] <data-dir> <corpus>=<member-data-dir>...
e.g.: $0 --test-corpus emodb=data/emodb data/casia_to_emodb casia=data/casia"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -lt 2 ]; then echo "$help_message" >&2; exit 1; fi
data=$1; shift
settings="stage=combine_data
test=${test_corpus%%=*} $(record_id "${test_corpus#*=}")"
for member in "$@"; do
  require_done "${member#*=}" corpus
  settings+="
train=${member%%=*} $(record_id "${member#*=}")"
done
[ -z "$test_corpus" ] || require_done "${test_corpus#*=}" corpus
lock_dir "$data"
if is_done "$data" "$settings"; then log "$data is complete; skipping"; exit 0; fi
mkdir -p "$data/log"
python -m ser.bin.combine_data --out "$data" --train "$@" ${test_corpus:+--test "$test_corpus"} \
  2> >(tee "$data/log/combine_data.log" >&2)
mark_done "$data" "$settings"
