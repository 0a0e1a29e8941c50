#!/usr/bin/env bash
# The test command: sets up the environment if it is missing (tools/install.sh),
# then runs the test suite (tests/, pyproject.toml's testpaths). Arguments go to pytest,
# e.g. ./test.sh -k folds -x, or ./test.sh tests/test_metrics.py for one file.
#   ./test.sh           the whole suite, what CI runs (.ci/run)
#   ./test.sh --quick   the edit-and-test lane: the unit tests and the smallest end-to-end
#                       run (tests marked slow, real_data or bench left out), a few minutes
set -euo pipefail
cd "$(dirname "$0")"
args=()
for a in "$@"; do
  case $a in
    --quick) args+=(-m "not slow and not real_data and not bench") ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
tools/install.sh
. ./path.sh
exec python -m pytest ${args[@]+"${args[@]}"}
