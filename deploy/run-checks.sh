#!/usr/bin/env bash
# Offline checks of deploy/: the Helm chart (deploy/check.py) and the KServe manifests
# (deploy/kserve/check.py). No cluster, no Docker, no network.
#
#   bash deploy/run-checks.sh [PYTHON]
#
# PYTHON: the interpreter of a virtual environment with deploy/requirements.txt installed
# (default: python3 on PATH), e.g.
#   python3 -m venv /tmp/deploy-venv && /tmp/deploy-venv/bin/pip install -r deploy/requirements.txt
#   bash deploy/run-checks.sh /tmp/deploy-venv/bin/python
# Runs both checks even when the first fails; exits non-zero when either fails.
set -uo pipefail
cd "$(dirname "$0")/.."

python="${1:-python3}"
if ! "$python" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("helm_python", "kserve", "kubernetes", "kubernetes_validate", "yaml")))' 2>/dev/null; then
  echo "run-checks.sh: $python lacks the packages of deploy/requirements.txt" >&2
  echo "  python3 -m venv /tmp/deploy-venv && /tmp/deploy-venv/bin/pip install -r deploy/requirements.txt" >&2
  exit 2
fi

status=0
for script in deploy/check.py deploy/kserve/check.py; do
  echo "== $script"
  start=${EPOCHREALTIME:-$(date +%s)}
  "$python" "$script" || status=1
  end=${EPOCHREALTIME:-$(date +%s)}
  LC_ALL=C awk -v a="${start/,/.}" -v b="${end/,/.}" -v s="$script" 'BEGIN { printf "== %s: %.1f s\n", s, b - a }'
done
exit $status
