#!/usr/bin/env bash
# Joins the feature dirs of the member corpora of a multi-corpus data dir (made by
# steps/combine_data.sh) into one feature dir for it: the features must have been made
# with the same settings; the members' failed utterances keep their reasons, and the
# failure-share rule applies to the union (ser/external_feats.py).
set -euo pipefail

max_fail_share=""     # fail when more than this share of the utterances have no features [default: ser/external_feats.py]

help_message="Usage: $0 [options] <data-dir> <feat-dir> <member-feat-dir>...
e.g.: $0 data/casia_to_emodb data/casia_to_emodb/feats/lld93 data/casia/feats/lld93 data/emodb/feats/lld93"
. "$(dirname "$0")/../path.sh"
. "$SER_ROOT/utils/lib.sh"
. parse_options.sh

if [ $# -lt 3 ]; then echo "$help_message" >&2; exit 1; fi
data=$1; dir=$2; shift 2
require_done "$data" corpus
settings="stage=combine_feats
max_fail_share=$max_fail_share
data=$(record_id "$data")"
for member in "$@"; do
  [ -f "$member/.done" ] || { echo "$0: $member is not complete (no .done); run the feature stage" >&2; exit 1; }
  settings+="
member=$member $(record_id "$member")"
done
lock_dir "$dir"
if is_done "$dir" "$settings"; then log "$dir is complete; skipping"; exit 0; fi
mkdir -p "$dir/log"
rm -f "$dir/.done" "$dir/feats.scp"
python -m ser.bin.import_feats --data-dir "$data" --feat-dir "$dir" --combine "$@" \
  ${max_fail_share:+--max-fail-share "$max_fail_share"} 2> >(tee "$dir/log/combine_feats.log" >&2)
mark_done "$dir" "$settings"
log "wrote $dir/feats.scp ($(wc -l < "$dir/feats.scp") utterances, dim $(cat "$dir/feat_dim"))"
