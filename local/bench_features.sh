#!/usr/bin/env bash
# Times a feature type's extraction (default lld93): real-time factor of
# steps/make_feats.sh with 1 and 2 jobs, its overhead over the feature type's extractor
# called directly in one process, and the MB stored per hour of audio; see
# local/bench_features.py (--help lists the options and their defaults). The last line is
#   rtf_nj1=<rtf> rtf_nj2=<rtf> overhead=<fraction> mb_per_hour=<MB> feat=<NAME>
#
#   local/bench_features.sh --corpus-dir /data/casia [--feat lld93] [--feat-opts "k=v ..."] [--repeats 3]
#   local/bench_features.sh --quick              a few files once: checks that it works
# The corpus defaults to $SER_CASIA_DIR, else ../shared/corpora/casia.
set -euo pipefail
here=$(dirname "$0")
. "$here/../path.sh"
exec python "$here/bench_features.py" "$@"
