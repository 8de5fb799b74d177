#!/usr/bin/env bash
# MLU-path checks that run without a Cambricon card or SDK (called by .ci/run; runnable alone).
#
#   1. every MagicMind plugin C++ source compiles (-fsyntax-only) against tests/neuware_stub,
#      the TEST-ONLY stand-in headers (MagicMind / CNNL / CNRT as the public samples call them);
#   2. the plugins' CMake build (no SDK): stand-in compile target + the BANG ReLU kernel compiled
#      for the host through plugins/host_shim, once per ReLU branch (__BANG_ARCH__ 372: __bang_relu,
#      270: __bang_active_relu), and its tiling tests (sizes 0, 1, odd, > one NRAM
#      chunk, 1..N emulated cores, every element checked, ASan/UBSan), run by ctest;
#   3. the CMake SDK branch (cncc custom command, libmagicmind_plugin.so link) builds against a
#      TEST-ONLY fake SDK (tests/neuware_stub/fake_sdk: fake cncc/CNRT/CNNL/MagicMind), and the
#      plugin kernels' SetLocalVar/GetWorkspaceSize/Enqueue run on it (plugin_kernel_test.cc);
#   4. the Rust backend's C++ shim (src/engine/mlu/mm_shim.cc) compiles against the stand-ins;
#   5. cargo clippy --features mlu (bindgen on mm_shim.h, no SDK; skipped when .ci/run already ran
#      it) and the Rust pool/lifecycle tests with a fake runtime (cargo test --features mlu --test mlu_pool);
#   6. the real FFI path end to end against a TEST-ONLY fake SDK (tests/neuware_stub/fake_sdk):
#      build.rs compiles and links mm_shim.cc, create_engines runs FfiRuntime → shim → fake
#      MagicMind/CNRT/CNNL with the plugin library built from the real plugins/ sources;
#   7. optional: the PyTorch-side checks, when a Python with torch is available and
#      SWIN_OFFICIAL_SOURCE points at the official Swin-Transformer checkout (torch is too heavy to
#      install in CI; see plugins/README.md and models/README.md for the commands).
#
# Installs cmake, g++ and libclang-dev with apt-get when they are missing (.ci/prerequisites.sh; CI
# runs as root on Debian).
# Exits non-zero if any check failed; prints a summary table either way.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${MLU_CHECKS_BUILD_DIR:-$ROOT/target/mlu-checks}
PYTHON=${PYTHON:-python3}
STUB_FLAGS=(-DSWIN_SERVE_NEUWARE_STUB -I"$ROOT/tests/neuware_stub" -Wall -Wextra -Werror)

declare -a NAMES=() RESULTS=()
record() { NAMES+=("$1"); RESULTS+=("$2"); }
section() { printf '\n--- mlu-checks: %s\n' "$1"; }
run_check() { # name, command...
  local name=$1
  shift
  section "$name"
  echo "+ $*"
  if "$@"; then record "$name" PASS; else record "$name" FAIL; fi
}

section "prerequisites"
bash "$ROOT/.ci/prerequisites.sh" || echo "prerequisites missing: the checks below that need them will fail"
mkdir -p "$BUILD"

# 1. Plugin sources against the stand-in headers.
for src in plugins/roll/plugin_roll.cc plugins/relu/plugin_relu.cc plugins/common/self_test.cc; do
  run_check "stand-in compile $src" g++ -std=c++11 -fsyntax-only "${STUB_FLAGS[@]}" "$src"
done

# 2. CMake build without the SDK: stand-in object library + BANG host-emulation tests.
run_check "cmake configure plugins (no SDK)" cmake -S plugins -B "$BUILD/plugins" -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_check "cmake build plugins (no SDK)" cmake --build "$BUILD/plugins" -j "$(nproc)"
run_check "BANG ReLU tiling (__BANG_ARCH__ 372: __bang_relu), 128 KB NRAM chunk, emulated cores" "$BUILD/plugins/bang_relu_host_test"
run_check "BANG ReLU tiling (__BANG_ARCH__ 372: __bang_relu), 256 B NRAM chunk, every size 0..520" "$BUILD/plugins/bang_relu_host_test_small_chunk"
run_check "BANG ReLU __BANG_ARCH__ 270 branch (__bang_active_relu), 128 KB chunk" \
  "$BUILD/plugins/bang_relu_host_test_arch270"
run_check "BANG ReLU __BANG_ARCH__ 270 branch (__bang_active_relu), 256 B chunk" \
  "$BUILD/plugins/bang_relu_host_test_arch270_small_chunk"

# 3. The SDK branch of plugins/CMakeLists.txt, built against the TEST-ONLY fake SDK (fake cncc
#    compiles the BANG kernel for the host; libraries are the fakes) -- checks the CMake logic only.
fake_sdk="$BUILD/fake-sdk"
run_check "build the fake Neuware SDK (TEST-ONLY)" bash tests/neuware_stub/fake_sdk/build_fake_sdk.sh "$fake_sdk"
run_check "plugin kernels on the fake SDK (descriptor reset, CNNL handle on the enqueueing thread, UNION1 Dim.x)" \
  "$fake_sdk/bin/plugin_kernel_test"
run_check "cmake configure plugins (fake NEUWARE_HOME, SWIN_GLIBCXX_USE_CXX11_ABI=1)" cmake -S plugins \
  -B "$BUILD/plugins-fake-sdk" -DNEUWARE_HOME="$fake_sdk" -DCMAKE_CXX_FLAGS=-DSWIN_SERVE_NEUWARE_STUB \
  -DSWIN_GLIBCXX_USE_CXX11_ABI=1
run_check "cmake build libmagicmind_plugin.so (fake NEUWARE_HOME)" cmake --build "$BUILD/plugins-fake-sdk" -j "$(nproc)" --target magicmind_plugin

# 4. The Rust backend's C++ shim against the stand-ins.
run_check "stand-in compile src/engine/mlu/mm_shim.cc" \
  g++ -std=c++14 -fsyntax-only "${STUB_FLAGS[@]}" -Isrc/engine/mlu src/engine/mlu/mm_shim.cc

# 5. Rust: bindgen + type check and lints with the feature (.ci/run does it before the tests and
#    sets MLU_CHECKS_CLIPPY_DONE), pool/lifecycle tests on the fake runtime. The crate is built at
#    opt-level 0 here: these tests check logic, and its dependencies are shared with `cargo test`.
export CARGO_PROFILE_TEST_OPT_LEVEL=0
if [ -z "${MLU_CHECKS_CLIPPY_DONE:-}" ]; then
  run_check "cargo clippy --features mlu (bindgen, no SDK)" env -u NEUWARE_HOME cargo clippy --all-targets --features mlu -- -D warnings
fi
run_check "cargo test --features mlu --test mlu_pool" env -u NEUWARE_HOME cargo test --features mlu --test mlu_pool

# 6. Real FFI path against the fake SDK (last: NEUWARE_HOME changes trigger a rebuild of the crate).
ffi_test() {
  local log="$BUILD/mlu_ffi.log"
  env NEUWARE_HOME="$fake_sdk" CXXFLAGS=-DSWIN_SERVE_NEUWARE_STUB SWIN_MLU_FAKE_SDK="$fake_sdk" SWIN_MLU_CXX11_ABI=1 \
    SWIN_MLU_PLUGIN_LIB="$BUILD/plugins-fake-sdk/libmagicmind_plugin.so" \
    SWIN_MLU_MODEL="$fake_sdk/model/swinv2_fake.magicmind" \
    cargo test --features mlu --test mlu_ffi --test mlu_device --test mlu_pool 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if grep -q SKIPPED "$log"; then echo "mlu_ffi was skipped"; return 1; fi
  return "$rc"
}
run_check "FFI path end to end on the fake SDK (cargo test --features mlu --test mlu_ffi --test mlu_device)" ffi_test

# 7. PyTorch side (optional here).
if "$PYTHON" -c 'import torch' >/dev/null 2>&1 && [ -n "${SWIN_OFFICIAL_SOURCE:-}" ]; then
  run_check "torch-side MyPlugin ops == torch.roll / relu" "$PYTHON" plugins/torch/test_torch_ops.py
  run_check "patched+traced SwinV2 == original (--check)" "$PYTHON" models/generate_magicmind.py \
    --swin-source "$SWIN_OFFICIAL_SOURCE" --check --work-dir "$BUILD/magicmind_gen"
  # What `swin-serve convert` writes (here a timm Swin V1 and a Hugging Face SwinV2 directory) goes
  # through the same generation: architecture from the file's metadata, V1 with the roll plugin only.
  for fixture in timm_swin hf_swinv2; do
    run_check "convert output ($fixture) through generate_magicmind.py --check" sh -c \
      "cargo run --quiet -- convert tests/fixtures/library/$fixture '$BUILD/$fixture.safetensors' --force && \
       '$PYTHON' models/generate_magicmind.py --swin-source '$SWIN_OFFICIAL_SOURCE' --check \
         --checkpoint '$BUILD/$fixture.safetensors' --work-dir '$BUILD/magicmind_gen_$fixture'"
  done
else
  section "PyTorch-side checks"
  echo "skipped: needs a Python with torch (\$PYTHON=$PYTHON) and SWIN_OFFICIAL_SOURCE=<Swin-Transformer checkout>."
  echo "  $PYTHON plugins/torch/test_torch_ops.py"
  echo "  $PYTHON models/generate_magicmind.py --swin-source <Swin-Transformer> --check"
  record "PyTorch-side checks (torch not installed in CI)" SKIP
fi

printf '\n=== MLU-path checks summary (stand-in headers and fakes; NOT run on an MLU370) ===\n'
failed=0
for i in "${!NAMES[@]}"; do
  printf '  %-4s  %s\n' "${RESULTS[$i]}" "${NAMES[$i]}"
  [ "${RESULTS[$i]}" = FAIL ] && failed=$((failed + 1))
done
if [ "$failed" -gt 0 ]; then
  echo "=== $failed check(s) FAILED ==="
  exit 1
fi
echo "=== all MLU-path checks passed ==="
