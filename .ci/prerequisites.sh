#!/usr/bin/env bash
# Installs what the build and the MLU-path checks need beyond Rust: g++, cmake, libclang (bindgen).
# Used by .ci/run and .ci/mlu-checks.sh; does nothing when everything is there.
set -uo pipefail

# bindgen loads libclang at run time through clang-sys, which looks in LIBCLANG_PATH, the linker's
# paths and /usr/lib*, /usr/local/lib*, /usr/lib/llvm-*/lib for files named `libclang.so`,
# `libclang-*.so`, `libclang.so.*` or `libclang-*.so.*`, and skips every `libclang-cpp.*` (Clang's
# C++ library, a different library: Debian's libclang-cpp14 ships one without libclang-dev, so
# matching `libclang*` is not enough).
is_libclang_name() {
  case "$1" in
    *-cpp.*) return 1 ;;
    libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) return 0 ;;
    *) return 1 ;;
  esac
}

have_libclang() {
  local dirs=() dir file
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  IFS=: read -r -a ld_dirs <<<"${LD_LIBRARY_PATH:-}"
  dirs+=("${ld_dirs[@]}")
  # The linker cache's libraries (their directories), then the places clang-sys globs.
  while read -r file; do dirs+=("$(dirname "$file")"); done < <(ldconfig -p 2>/dev/null | awk '/libclang/ {print $NF}')
  for dir in /usr/lib* /usr/lib*/* /usr/lib*/*/* /usr/local/lib* /usr/local/lib*/* /usr/local/llvm*/lib*; do
    [ -d "$dir" ] && dirs+=("$dir")
  done
  for dir in "${dirs[@]}"; do
    [ -n "$dir" ] && [ -d "$dir" ] || continue
    for file in "$dir"/libclang*.so*; do
      [ -e "$file" ] || continue
      if is_libclang_name "$(basename "$file")"; then
        echo "libclang: $file"
        return 0
      fi
    done
  done
  return 1
}

missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake)
have_libclang || missing+=(libclang-dev)
# The page's browser test (tests/oip_clients/test_browser.py): Debian's chromium, driven by Playwright.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "cannot install ${missing[*]} (need root and apt-get)"
    exit 1
  fi
  if [[ " ${missing[*]} " == *" libclang-dev "* ]] && ! have_libclang; then
    echo "libclang-dev is installed but no libclang that bindgen loads was found"
    exit 1
  fi
fi
g++ --version | head -1
cmake --version | head -1
