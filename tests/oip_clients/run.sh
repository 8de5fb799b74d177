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
# Two pytest processes, one per client (tritonclient and kserve each register the `inference.*`
# protobuf messages and cannot be imported together; see conftest.py). Each starts its own servers.
# Exits non-zero if either fails, "no tests collected" included.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SWIN_CI_VENV:-$HOME/.cache/swin-serve/oip-venv}"
req="$here/requirements.txt"

bash "$repo/.ci/venv.sh" "$venv" "$req"

bin="${SWIN_SERVE_BIN:-target/debug/swin-serve}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "oip-clients: server binary $bin not found (build it first, or set SWIN_SERVE_BIN)" >&2
  exit 2
fi
export SWIN_SERVE_BIN="$bin"

cd "$repo"
status=0
for which in triton kserve; do
  echo "== oip-clients: $which"
  SWIN_OIP_CLIENT=$which "$venv/bin/python" -m pytest "$here" "$@" || status=$?
done
exit "$status"
