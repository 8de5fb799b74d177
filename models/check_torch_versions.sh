#!/usr/bin/env bash
# Reproduce the torch-version runs of models/README.md ("Runs on the lab's torch versions"):
# for each (Python, torch) below, create a venv from PyPI, then
#   1. plugins/torch/test_torch_ops.py           (builds the PyTorch-side MyPlugin ops with g++, checks them)
#   2. models/generate_magicmind.py --check      (patch + trace SwinV2-T, random weights, vs the original)
#   3. the one-TORCH_LIBRARY(MyPlugin) guard     (a *_with_pytorch.so stand-in with and without --torch-ops-lib)
#   4. the build path without MagicMind          (a saved checkpoint, no --check: torch version accepted or
#                                                 refused, checkpoint loaded, trace written, "magicmind is not importable")
# No MagicMind, no MLU: what only a Cambricon host can check is listed in models/README.md.
# Not run in CI (it downloads ~1-4 GB of wheels per venv and takes a few minutes per torch on 2 cores).
#
#   models/check_torch_versions.sh [--swin-source DIR] [--venvs DIR] [--only NAME]...
#
#   --swin-source DIR  official microsoft/Swin-Transformer checkout at d19503d7 (default: cloned into
#                      $VENVS/Swin-Transformer; needs git and network)
#   --venvs DIR        where the venvs and work files go (default /tmp/swin-torch-venvs)
#   --only NAME        run only this combination (repeatable): torch16-py38 torch16-py37 torch113-py38
#                      torch113-py311 torch-latest-py311
#
# Python interpreters are looked up as $PYENV_ROOT/versions/X.Y*/bin/python, then pythonX.Y on PATH;
# a combination whose Python is missing is reported as SKIP. Needs g++ (C++14) for the op library.
# Exit status: 0 when every combination that ran passed.
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENVS=/tmp/swin-torch-venvs
SWIN_SOURCE=""
ONLY=()
SWIN_COMMIT=d19503d7fbed704792a5e5a3a5ee36f9357d26c1
while [ $# -gt 0 ]; do
  case "$1" in
    --swin-source) SWIN_SOURCE=$2; shift 2 ;;
    --venvs) VENVS=$2; shift 2 ;;
    --only) ONLY+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# name | Python | pip requirements. numpy pins: torch 1.6 wheels are built against numpy 1.x < 1.20-era
# ABI (and numpy >= 1.20 drops np.bool etc. that old torch code paths touch); torch 1.13 predates numpy 2.
COMBOS=(
  "torch16-py38|3.8|torch==1.6.0 numpy<1.20"
  "torch16-py37|3.7|torch==1.6.0 numpy<1.20"
  "torch113-py38|3.8|torch==1.13.1 numpy<1.25"
  "torch113-py311|3.11|torch==1.13.1 numpy<2"
  "torch-latest-py311|3.11|torch numpy"
)

mkdir -p "$VENVS"
if [ -z "$SWIN_SOURCE" ]; then
  SWIN_SOURCE=$VENVS/Swin-Transformer
  if [ ! -f "$SWIN_SOURCE/models/swin_transformer_v2.py" ]; then
    git clone -q https://github.com/microsoft/Swin-Transformer "$SWIN_SOURCE" || exit 1
  fi
  git -C "$SWIN_SOURCE" checkout -q "$SWIN_COMMIT" || exit 1
fi

find_python() {  # $1 = X.Y
  local root=${PYENV_ROOT:-$HOME/.pyenv} p
  for p in "$root"/versions/"$1".*/bin/python; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  command -v "python$1" || return 1
}

declare -a SUMMARY=()
FAILED=0
note() { SUMMARY+=("$1"); echo "=== $1"; }

run_combo() {  # name python-version requirements
  local name=$1 pyver=$2 reqs=$3 py venv log work
  venv=$VENVS/$name
  log=$VENVS/$name.log
  work=$VENVS/$name-work
  if ! py=$(find_python "$pyver"); then
    note "SKIP  $name: no Python $pyver"
    return
  fi
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "--- $name: creating $venv with $py ($reqs)"
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q $reqs || { note "FAIL  $name: venv/pip install"; FAILED=1; return; }
  fi
  local vpy=$venv/bin/python version
  version=$("$vpy" -c 'import sys, torch, numpy; print("torch %s, numpy %s, Python %s" % (torch.__version__, numpy.__version__, sys.version.split()[0]))')
  echo "--- $name: $version"
  rm -rf "$work"; mkdir -p "$work"
  : > "$log"

  # 1. op library + its test
  if ! (cd "$REPO" && "$vpy" plugins/torch/test_torch_ops.py) >> "$log" 2>&1; then
    note "FAIL  $name ($version): plugins/torch/test_torch_ops.py (see $log)"; FAILED=1; return
  fi
  note "PASS  $name: $(grep '^OK:' "$log" | cut -c1-60)…"

  # 2. --check, random weights
  if (cd "$REPO" && "$vpy" -W ignore models/generate_magicmind.py --swin-source "$SWIN_SOURCE" --check \
        --work-dir "$work/check") > "$work/check.log" 2>&1; then
    note "PASS  $name: generate_magicmind.py --check"
  else
    note "FAIL  $name: generate_magicmind.py --check (see $work/check.log)"; FAILED=1
  fi
  grep -E '^\[(setup|check)\]' "$work/check.log" | sed 's/^/        /'

  # 3. the guard: a library that registers TORCH_LIBRARY(MyPlugin) given as --plugin-lib
  local ops=$REPO/plugins/build/torch/libmyplugin_torch_ops.so
  cp "$ops" "$work/libmagicmind_plugin_with_pytorch.so"
  cp "$ops" "$work/libother_torch_ops.so"
  (cd "$REPO" && "$vpy" -W ignore models/generate_magicmind.py --swin-source "$SWIN_SOURCE" --check \
      --work-dir "$work/guard" --plugin-lib "$work/libmagicmind_plugin_with_pytorch.so" \
      --torch-ops-lib "$work/libother_torch_ops.so") > "$work/guard-refused.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ] && grep -q "both register TORCH_LIBRARY(MyPlugin)" "$work/guard-refused.log"; then
    note "PASS  $name: --plugin-lib *_with_pytorch.so + --torch-ops-lib refused (rc $rc)"
  else
    note "FAIL  $name: --plugin-lib *_with_pytorch.so + --torch-ops-lib not refused (rc $rc, $work/guard-refused.log)"; FAILED=1
  fi
  if (cd "$REPO" && "$vpy" -W ignore models/generate_magicmind.py --swin-source "$SWIN_SOURCE" --check \
        --work-dir "$work/guard" --plugin-lib "$work/libmagicmind_plugin_with_pytorch.so") > "$work/guard-ok.log" 2>&1 \
     && grep -q "libmagicmind_plugin_with_pytorch.so (from --plugin-lib" "$work/guard-ok.log"; then
    note "PASS  $name: --plugin-lib *_with_pytorch.so alone is the op library, --check passes"
  else
    note "FAIL  $name: --plugin-lib *_with_pytorch.so alone ($work/guard-ok.log)"; FAILED=1
  fi
  # What the guard prevents: two different files that both register TORCH_LIBRARY(MyPlugin).
  "$vpy" -c "
import sys, torch
torch.ops.load_library(sys.argv[1])
try:
    torch.ops.load_library(sys.argv[2])
    print('second TORCH_LIBRARY(MyPlugin) library: loaded without error')
except Exception as e:
    print('second TORCH_LIBRARY(MyPlugin) library: ' + type(e).__name__ + ': ' + str(e).splitlines()[0])
" "$work/libother_torch_ops.so" "$work/libmagicmind_plugin_with_pytorch.so" > "$work/double-load.log" 2>&1
  rc=$?
  note "INFO  $name: two TORCH_LIBRARY(MyPlugin) copies loaded directly (what the guard prevents) -> exit $rc: $(grep -m1 -o "Only a single TORCH_LIBRARY[^;]*\|second TORCH_LIBRARY.*" "$work/double-load.log")"

  # 4. the build path without MagicMind: a checkpoint saved by this torch the way the official training
  #    script saves one ({'model', 'config': a yacs CfgNode, 'epoch'}; yacs is faked here and not
  #    installed when loading), no --check
  "$vpy" -c "
import sys, types, torch
sys.path.insert(0, sys.argv[1] + '/models')
import generate_magicmind as g, swin_patch
g.install_timm_fallback()
m = g.import_file('official', swin_patch.find_official_source(sys.argv[2]))
model = g.build_model(m, 'swinv2_tiny_patch4_window8_256')
yacs, config = types.ModuleType('yacs'), types.ModuleType('yacs.config')
class CfgNode(dict):
    pass
CfgNode.__module__, config.CfgNode, yacs.config = 'yacs.config', CfgNode, config
sys.modules.update({'yacs': yacs, 'yacs.config': config})
torch.save({'model': g.random_state_dict(model, 5), 'config': CfgNode(MODEL=CfgNode(TYPE='swinv2')), 'epoch': 1},
           sys.argv[3])
" "$REPO" "$SWIN_SOURCE" "$work/random_ckpt.pth" >> "$log" 2>&1
  (cd "$REPO" && "$vpy" -W ignore models/generate_magicmind.py --swin-source "$SWIN_SOURCE" \
      --checkpoint "$work/random_ckpt.pth" --work-dir "$work/build" --out "$work/x.magicmind") > "$work/build.log" 2>&1
  rc=$?
  if grep -q "magicmind is not importable" "$work/build.log" && grep -q "(250 tensors)" "$work/build.log" \
     && [ -f "$work/build/trace_swinv2_tiny_patch4_window8_256_myplugin.pt" ]; then
    note "PASS  $name: build path: checkpoint (with a yacs CfgNode, yacs absent) loaded, traced, stops at 'magicmind is not importable' (rc $rc)"
  elif grep -q "Trace with one of those" "$work/build.log"; then
    note "PASS  $name: build path refused for this torch (rc $rc): $(grep -o 'torch [^:]*:' "$work/build.log" | head -1) not 1.6/1.13"
  else
    note "FAIL  $name: build path (rc $rc, $work/build.log)"; FAILED=1
  fi
}

for combo in "${COMBOS[@]}"; do
  IFS='|' read -r name pyver reqs <<< "$combo"
  if [ ${#ONLY[@]} -gt 0 ] && [[ ! " ${ONLY[*]} " == *" $name "* ]]; then continue; fi
  run_combo "$name" "$pyver" "$reqs"
done

echo
echo "=== summary (swin source $SWIN_SOURCE; no MagicMind, no MLU) ==="
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
