#!/bin/sh
# sdk-venv.sh — the format tests' Python environment (tests/formats/requirements.txt, every
# package pinned), set up once and reused: a venv under ${CS_SDK_CACHE:-~/.cache/clickstage},
# named by the hash of the requirements and the Python version, so a change of either makes a
# new one. Prints the venv's directory. Exit 0: ready; 3: the package registry could not be
# reached (the caller prints a SKIP line); anything else: a real failure (log on stderr).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
REQ=$HERE/requirements.txt
PY=${PYTHON:-python3}
CACHE=${CS_SDK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstage}
ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || exit 1
key=$( (cat "$REQ"; echo "$ver") | sha256sum | cut -c1-16)
VENV=$CACHE/sdk-venv-$key
if [ -f "$VENV/.complete" ]; then echo "$VENV"; exit 0; fi
mkdir -p "$CACHE" || exit 1
exec 9>"$CACHE/.sdk-venv.lock"
flock 9
if [ -f "$VENV/.complete" ]; then echo "$VENV"; exit 0; fi
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2 || exit 1
LOG=$CACHE/sdk-venv-$key.log
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-input \
     --timeout 30 --retries 2 -r "$REQ" >"$LOG" 2>&1; then
  tail -15 "$LOG" >&2
  rm -rf "$VENV"
  if grep -Eqi 'NewConnectionError|Failed to establish|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection refused|ConnectTimeout|ReadTimeout|Max retries exceeded' "$LOG"; then
    exit 3
  fi
  exit 1
fi
touch "$VENV/.complete"
echo "$VENV"
