#!/usr/bin/env bash
# Installs what the build and the MLU-path checks need beyond Rust: g++, cmake, libclang (bindgen).
# Used by .ci/run and .ci/mlu-checks.sh; does nothing when everything is there.
set -uo pipefail

have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && return 0
  compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null
}

missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake)
have_libclang || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "cannot install ${missing[*]} (need root and apt-get)"
    exit 1
  fi
fi
g++ --version | head -1
cmake --version | head -1
