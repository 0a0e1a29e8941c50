#!/usr/bin/env bash
# Kaldi-style option parsing, sourced by a script after it has set its defaults.
#   --foo-bar VALUE  (or --foo-bar=VALUE) sets the variable foo_bar, which must exist.
#   --config FILE    sources FILE (lines like foo_bar=value) before later options.
#   --help | -h      prints $help_message (if set) and every option with its value.
# An option that names no existing variable is an error.

__ser_print_options() {
  [ -n "${help_message:-}" ] && printf '%s\n\n' "$help_message"
  echo "Options (default values in brackets):"
  local __line __name __value __comment
  while IFS= read -r __line; do
    __comment=""
    [[ $__line == *"  # "* ]] && __comment=${__line##*  # }
    __name=${__line%%=*}
    __name=${__name//[[:space:]]/}
    [[ $__name =~ ^[a-z][a-z0-9_]*$ ]] || continue
    case "$__name" in help_message|__*) continue ;; esac
    [ -n "${!__name+x}" ] || continue
    __value=${!__name}
    printf '  --%-22s %-14s %s\n' "${__name//_/-}" "[$__value]" "$__comment"
  done < <(sed -n '1,/parse_options.sh/p' "$0" | grep -E '^[[:space:]]*[a-z][a-z0-9_]*=' )
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      __ser_print_options
      exit 0 ;;
    --config=*|--config)
      if [[ $1 == *=* ]]; then __cfg=${1#*=}; shift; else __cfg=${2:-}; shift 2 || true; fi
      [ -f "$__cfg" ] || { echo "$0: config file '$__cfg' not found" >&2; exit 1; }
      # shellcheck disable=SC1090
      . "$__cfg" ;;
    --*=*)
      __name=${1%%=*}; __name=${__name#--}; __name=${__name//-/_}
      __value=${1#*=}
      if [ -z "${!__name+x}" ]; then echo "$0: unknown option --${__name//_/-}" >&2; exit 1; fi
      printf -v "$__name" '%s' "$__value"
      shift ;;
    --*)
      __name=${1#--}; __name=${__name//-/_}
      if ! [[ $__name =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "${!__name+x}" ]; then
        echo "$0: unknown option $1" >&2; exit 1
      fi
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      printf -v "$__name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
unset __name __value __cfg
true
