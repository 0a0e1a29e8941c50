# Shell helpers shared by run.sh and steps/*.sh (sourced, not run).

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') ($fname:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

# A step's output dir is complete when <dir>/.done holds the step's settings.
# is_done: 0 if complete with these settings, 1 if not complete; exits with an
# error when the dir was completed with other settings, since later stages may
# have been built on it: the user must remove it or choose another name.
is_done() {  # is_done <dir> <settings>
  [ -f "$1/.done" ] || return 1
  [ "$(cat "$1/.done")" = "$2" ] && return 0
  echo "ERROR: $1 was made with other settings:" >&2
  echo "  then: $(cat "$1/.done")" >&2
  echo "  now:  $2" >&2
  echo "Remove $1 (and what was built on it), or give the new settings another name." >&2
  exit 1
}
mark_done() {  # mark_done <dir> <settings>
  printf '%s' "$2" > "$1/.done.tmp" && mv "$1/.done.tmp" "$1/.done"
}
