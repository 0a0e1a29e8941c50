#!/usr/bin/env bash
# Times lld93 extraction: real-time factor of steps/make_feats.sh with 1 and 2 jobs
# and its overhead over openSMILE run directly; see local/bench_features.py.
# Usage: local/bench_features.sh [--corpus-dir DIR] [--num-files N] [--repeats R] [--cmd CMD]
# The corpus defaults to $SER_CASIA_DIR, else ../shared/corpora/casia.
set -euo pipefail
here=$(dirname "$0")
. "$here/../path.sh"
exec python "$here/bench_features.py" "$@"
