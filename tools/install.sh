#!/usr/bin/env bash
# Installs what the recipe needs, and nothing twice: Debian tools (as root) and a
# pinned Python virtual environment under tools/venv. Safe to run again; it only
# does what is missing. Usage: tools/install.sh [--force]
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "$tools_dir")
venv=$tools_dir/venv
requirements=$tools_dir/requirements.txt
stamp=$venv/.installed

log() { echo "$(date '+%F %T') (install.sh) $*" >&2; }

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
[ "${1:-}" = "--force" ] && rm -f "$stamp"

# Debian packages: sox/libsox-fmt-all (audio conversion, synth corpus), espeak-ng
# (synth corpus voices), ffmpeg (eNTERFACE'05 .avi audio).
debs=(sox libsox-fmt-all espeak-ng ffmpeg)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv is complete only once the stamp matches the requirements file.
if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
  exit 0
fi
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
log "installing Python packages from $requirements"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
"$venv/bin/pip" install -q -r "$requirements"
cp "$requirements" "$stamp"
log "done"
