#!/usr/bin/env bash
# Create, or reuse, a Python virtual environment for a requirements file.
#
#   bash .ci/venv.sh VENV REQUIREMENTS
#
# The venv is reused while REQUIREMENTS and the Python version are unchanged (a stamp in it holds
# their hash) and rebuilt otherwise, so repeated CI runs on one machine install nothing. Two runs on
# one machine take turns (flock). SWIN_CI_PYTHON: the interpreter that creates it (default python3).
set -euo pipefail

venv="$1"
req="$2"
python="${SWIN_CI_PYTHON:-python3}"

key="$({ "$python" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.swin-requirements.sha256"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$key" ]; then
  echo "venv: reusing $venv"
else
  echo "venv: creating $venv from $req"
  t0=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req"
  echo "$key" >"$stamp"
  echo "venv: ready in $(( $(date +%s) - t0 ))s"
fi
