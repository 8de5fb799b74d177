#!/usr/bin/env bash
# Runs the OIP v2 client tests (tritonclient[grpc], kserve) against the real swin-serve binary.
#
#   bash tests/oip_clients/run.sh [pytest args...]
#
# SWIN_SERVE_BIN   the binary (default: target/debug/swin-serve); this script does not build it
# SWIN_CI_VENV     the venv (default: $HOME/.cache/swin-serve/oip-venv). It is reused while
#                  requirements.txt and the Python version are unchanged (a stamp holds their
#                  hash), and rebuilt otherwise, so repeated runs on one machine install nothing.
# SWIN_CI_PYTHON   the interpreter that creates the venv (default: python3, 3.11+)
#
# Exits with pytest's status: non-zero on any failure, including "no tests collected".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SWIN_CI_VENV:-$HOME/.cache/swin-serve/oip-venv}"
python="${SWIN_CI_PYTHON:-python3}"
req="$here/requirements.txt"

key="$({ "$python" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -d' ' -f1)"
stamp="$venv/.swin-oip-requirements.sha256"

mkdir -p "$(dirname "$venv")"
# One builder at a time (two CI runs on one machine share the cache).
exec 9>"$venv.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$key" ]; then
  echo "oip-clients: reusing venv $venv"
else
  echo "oip-clients: creating venv $venv"
  t0=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req"
  echo "$key" >"$stamp"
  echo "oip-clients: venv ready in $(( $(date +%s) - t0 ))s"
fi
exec 9>&-

bin="${SWIN_SERVE_BIN:-target/debug/swin-serve}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "oip-clients: server binary $bin not found (build it first, or set SWIN_SERVE_BIN)" >&2
  exit 2
fi
export SWIN_SERVE_BIN="$bin"

cd "$repo"
exec "$venv/bin/python" -m pytest "$here" "$@"
