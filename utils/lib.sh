# Shell helpers shared by run.sh and steps/*.sh (sourced, not run). Sourcing it
# outside a running driver makes the script a driver (see become_driver, below).

_ser_utils=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') ($fname:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

# Records. A stage's output dir is complete when <dir>/.done exists, and .done holds
# the record of what made it: the stage's settings and the record ids of the stage
# outputs it read, one "key=value" per line. A record id is a short hash of .done,
# so records chain: when an upstream stage is rebuilt, every record below it differs.

record_id() {  # record_id <dir>: short hash of <dir>/.done, or "none" if incomplete
  if [ -f "$1/.done" ]; then sha1sum < "$1/.done" | cut -c1-12; else echo none; fi
}

# mark_done <dir> <record> [<detail>]: <detail>, kept in <dir>/.done.detail, says what
# the hashes of the record stand for (the records of the inputs, the contents of the
# config files), so that a rebuild can name the setting that changed.
mark_done() {
  if [ -n "${3:-}" ]; then printf '%s\n' "$3" > "$1/.done.detail"; else rm -f "$1/.done.detail"; fi
  printf '%s\n' "$2" > "$1/.done.tmp" && mv "$1/.done.tmp" "$1/.done"
}

# is_done <dir> <record> [<detail>]: 0 when complete with this record; 1 when it must
# be (re)built. Stage outputs are functions of their record, so an output made from
# other inputs is rebuilt, never reused: the differences are printed (with <detail>,
# also those of what the hashes stand for), and .done goes first so that a killed
# rebuild cannot leave it looking complete.
is_done() {
  [ -f "$1/.done" ] || return 1
  [ "$(cat "$1/.done")" = "$2" ] && return 0
  echo "$1 was made from other inputs or settings:" >&2
  diff "$1/.done" <(printf '%s\n' "$2") | sed -n 's/^< /  then: /p; s/^> /  now:  /p' >&2 || true
  if [ -n "${3:-}" ] && [ -f "$1/.done.detail" ]; then
    echo "  where the hashes stand for:" >&2
    diff "$1/.done.detail" <(printf '%s\n' "$3") | sed -n 's/^< /  then: /p; s/^> /  now:  /p' >&2 || true
  elif [ -n "${3:-}" ]; then
    echo "  (what the hashes stood for was not kept with $1)" >&2
  fi
  log "rebuilding $1"
  rm -f "$1/.done"
  return 1
}

# record_detail <name> <dir>: what <dir>'s record id stands for, as detail lines
# "<name>: <line>" (its .done, then its own detail).
record_detail() {
  local f
  for f in "$2/.done" "$2/.done.detail"; do
    if [ -f "$f" ]; then awk -v p="$1: " '{ print p $0 }' "$f"; fi
  done
}

# file_detail <file>...: the files' contents as detail lines "<file>: <line>".
file_detail() {
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then awk -v p="${f#"${SER_ROOT:-}"/}: " '{ print p $0 }' "$f"; fi
  done
}

# require_done <dir> <stage>: fails, naming the cause, unless <dir> is complete: another
# run holds its lock (it is being rebuilt, with other inputs or settings than this run
# prepared it with), or it was left incomplete, or it was never made.
require_done() {
  [ -f "$1/.done" ] && return 0
  local lock="${1%/}.lock" fd
  if [ -f "$lock" ] && exec {fd}<"$lock" && ! flock -n "$fd"; then
    exec {fd}<&-
    echo "$0: $1 is being rebuilt by another run (it holds $lock) from other inputs or settings" \
      "than this run made it with; wait for that run to end, then run this one again from the $2 stage," \
      "or give the two runs different data dirs" >&2
    return 1
  fi
  [ -n "${fd:-}" ] && exec {fd}<&-
  if [ -d "$1" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
    echo "$0: $1 is incomplete (no .done): a run that was rebuilding it stopped before the end," \
      "or another run rebuilt it; run the $2 stage" >&2
  else
    echo "$0: $1 is not prepared (no .done); run the $2 stage" >&2
  fi
  return 1
}

# lock_dir <dir>: one writer per output dir. The lock is held on an open file
# descriptor that the stage's jobs inherit, so it lasts until the last of them has
# ended, also when the driver was killed; a second run waits for it.
lock_dir() {
  local lock="${1%/}.lock" fd
  mkdir -p "$(dirname "$lock")"
  exec {fd}>>"$lock"
  if ! flock -n "$fd"; then
    log "another run is writing $1; waiting for it to end (lock: $lock)"
    flock "$fd"
    log "lock on $1 acquired"
  fi
}

# keep_job_logs <log-dir> <name> [file ...]: a job array numbers its logs
# <name>.1.log ... afresh on every call, so before a new call the earlier call's
# logs, the scheduler's own output of its tasks (q/<name>.<n>.out, which holds what a
# task printed before it could log, e.g. why it was killed), and copies of the files
# that say what their numbers were (a task list) move to <log-dir>/<name>.<time>/
# instead of being overwritten.
keep_job_logs() {
  local logdir=$1 name=$2 old q_out f n=1
  shift 2
  # || true: under pipefail, find fails where the dir does not exist yet (q/ under run.pl)
  old=$(find "$logdir" -maxdepth 1 -type f -name "$name.*.log" 2>/dev/null | sort || true)
  q_out=$(find "$logdir/q" -maxdepth 1 -type f -name "$name.*.out" 2>/dev/null | sort || true)
  [ -n "$old$q_out" ] || return 0
  local base=$logdir/$name.$(date +%Y%m%d-%H%M%S)
  local dest=$base
  while [ -e "$dest" ]; do dest=$base.$n; n=$((n + 1)); done
  mkdir -p "$dest"
  if [ -n "$old" ]; then while IFS= read -r f; do mv "$f" "$dest/"; done <<< "$old"; fi
  if [ -n "$q_out" ]; then
    mkdir -p "$dest/q"
    while IFS= read -r f; do mv "$f" "$dest/q/"; done <<< "$q_out"
  fi
  for f in "$@"; do if [ -f "$f" ]; then cp -p "$f" "$dest/"; fi; done
  log "the earlier call's logs are kept in $dest"
}

# Stop means stop. A driver (run.sh; a script of steps/ or local/ started by hand)
# exports SER_DRIVER="<pid>:<start time>", appended to its own driver's where it
# has one, before it starts anything, and starts a watchdog (utils/watchdog.pl)
# that ends every process carrying its mark when it ends, kill -9 included. The
# job runners check the same marks: run.pl stops its tasks, slurm.pl and queue.pl
# cancel their jobs.

proc_start_time() {  # proc_start_time <pid>: the start time of a live process, else fails
  local stat f
  read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
  read -ra f <<< "${stat##*) }"
  case ${f[0]} in Z|X) return 1 ;; esac  # a zombie: killed, not yet reaped
  echo "${f[19]}"
}

driver_alive() {  # driver_alive <pid:start>: whether that driver still runs
  [ "$(proc_start_time "${1%%:*}" || true)" = "${1#*:}" ]
}

become_driver() {  # this shell's processes end with it; once per shell
  local pid=$BASHPID start token  # $BASHPID, not $$: a subshell that sources this is a driver
  start=$(proc_start_time "$pid") || { echo "lib.sh: no /proc/$pid/stat" >&2; return 1; }
  token=$pid:$start
  case " ${SER_DRIVER:-} " in *" $token "*) return 0 ;; esac
  SER_DRIVER="" perl "$_ser_utils/watchdog.pl" "$token" || { echo "lib.sh: cannot start utils/watchdog.pl" >&2; return 1; }
  SER_DRIVER=${SER_DRIVER:+$SER_DRIVER }$token
  export SER_DRIVER
}

# A script started outside any running driver is one; run.sh always is (run.sh calls
# become_driver), so that a nested run.sh killed alone takes its own processes along.
# An interactive shell that sources this file is none: what it starts (a nohup run)
# must not end when it does.
_ser_driver_alive=false
for _ser_token in ${SER_DRIVER:-}; do
  if driver_alive "$_ser_token"; then _ser_driver_alive=true; fi
done
case $- in
  *i*) ;;
  *) $_ser_driver_alive || become_driver ;;
esac
unset _ser_token _ser_driver_alive
