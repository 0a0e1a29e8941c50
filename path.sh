# Sourced by run.sh and every script under steps/ and local/: puts the recipe's
# virtual environment, utils/ and the ser package on the search paths.
SER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SER_ROOT
if [ -f "$SER_ROOT/tools/venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$SER_ROOT/tools/venv/bin/activate"
fi
export PATH=$SER_ROOT/utils:$PATH
export PYTHONPATH=$SER_ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
export LC_ALL=C.UTF-8
# One BLAS thread per job: parallelism comes from the job runner's JOB splits.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
