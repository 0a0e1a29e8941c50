#!/usr/bin/env bash
# The test command: sets up the environment if it is missing (tools/install.sh),
# then runs the test suite (tests/, pyproject.toml's testpaths). Arguments go to pytest,
# e.g. ./test.sh -k folds -x, or ./test.sh tests/test_metrics.py for one file
set -euo pipefail
cd "$(dirname "$0")"
tools/install.sh
. ./path.sh
exec python -m pytest "$@"
