#!/usr/bin/env bash
# Build the TEST-ONLY fake Neuware SDK into $1 (see tests/neuware_stub/README.md):
#   $1/include/        the stand-in headers
#   $1/lib64/          libcnrt.so, libcnnl.so, libmagicmind_runtime.so (fakes)
#   $1/plugin/libmagicmind_plugin.so  built from the REAL plugin sources (plugins/), with the BANG
#                      kernel compiled for the host through plugins/host_shim
#   $1/model/swinv2_fake.magicmind    a fake model requiring both MyPlugin ops
#   $1/bin/plugin_kernel_test  the plugin kernels' SetLocalVar/GetWorkspaceSize/Enqueue on the fakes
#   $1/bin/cncc        a fake cncc: compiles .mlu files for the host through plugins/host_shim, so
#                      that the SDK branch of plugins/CMakeLists.txt can be built against this tree
# Then: NEUWARE_HOME=$1 CXXFLAGS=-DSWIN_SERVE_NEUWARE_STUB cargo test --features mlu --test mlu_ffi
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../../.." && pwd)
stub="$root/tests/neuware_stub"
fake="$stub/fake_sdk"
mkdir -p "$out/include" "$out/lib64" "$out/plugin" "$out/model" "$out/bin"
cp "$stub"/*.h "$out/include/"
cxx=(g++ -std=c++17 -O1 -g -fPIC -Wall -Wextra -Werror -DSWIN_SERVE_NEUWARE_STUB -I"$out/include")
"${cxx[@]}" -shared "$fake/fake_cnrt.cc" -o "$out/lib64/libcnrt.so"
"${cxx[@]}" -shared "$fake/fake_cnnl.cc" -L"$out/lib64" -lcnrt -Wl,-rpath,"$out/lib64" -o "$out/lib64/libcnnl.so"
"${cxx[@]}" -shared "$fake/fake_magicmind.cc" -L"$out/lib64" -lcnrt -Wl,-rpath,"$out/lib64" \
  -o "$out/lib64/libmagicmind_runtime.so"
# The plugin library from the real sources; the BANG kernel runs on emulated cores (GDRAM region
# checks off: "device" memory comes from the fake cnrtMalloc).
"${cxx[@]}" -c -x c++ -DSWIN_BANG_HOST_EMULATION -DBANG_HOST_UNCHECKED_GDRAM -D__BANG_ARCH__=372 -I"$root/plugins/host_shim" \
  -I"$root/plugins/relu" "$root/plugins/relu/kernel_relu.mlu" -o "$out/plugin/kernel_relu.o"
"${cxx[@]}" -shared "$root/plugins/roll/plugin_roll.cc" "$root/plugins/relu/plugin_relu.cc" \
  "$root/plugins/common/self_test.cc" "$out/plugin/kernel_relu.o" -L"$out/lib64" \
  -lcnnl -lcnrt -lmagicmind_runtime -pthread -Wl,-rpath,"$out/lib64" -o "$out/plugin/libmagicmind_plugin.so"
# The plugin kernels driven like MagicMind drives them (run by .ci/mlu-checks.sh: $out/bin/plugin_kernel_test).
"${cxx[@]}" -pthread -I"$root/plugins/roll" -I"$root/plugins/relu" "$fake/plugin_kernel_test.cc" \
  "$root/plugins/roll/plugin_roll.cc" "$root/plugins/relu/plugin_relu.cc" "$out/plugin/kernel_relu.o" \
  -L"$out/lib64" -lcnnl -lcnrt -lmagicmind_runtime -Wl,-rpath,"$out/lib64" -o "$out/bin/plugin_kernel_test"
cat >"$out/model/swinv2_fake.magicmind" <<'MODEL'
FAKE-MAGICMIND 1
input input.1 -1 3 256 256
output logits -1 1000
max_batch 8
requires MyPlugin::CnnlRoll MyPlugin::PluginReLU
MODEL
cat >"$out/bin/cncc" <<CNCC
#!/usr/bin/env bash
# TEST-ONLY fake cncc: BANG C compiled for the host (plugins/host_shim); --bang-mlu-arch=mtp_NNN
# becomes -D__BANG_ARCH__=NNN as the real compiler defines it, other MLU arch flags are dropped.
args=()
for a in "\$@"; do
  case "\$a" in
    --bang-mlu-arch=mtp_*) args+=("-D__BANG_ARCH__=\${a#--bang-mlu-arch=mtp_}") ;;
    --bang-mlu-arch=*|--bang-arch=*|--bang-wram-align64) ;;
    *) args+=("\$a") ;;
  esac
done
exec g++ -x c++ -DSWIN_SERVE_NEUWARE_STUB -DSWIN_BANG_HOST_EMULATION -DBANG_HOST_UNCHECKED_GDRAM \
  -I"$root/plugins/host_shim" "\${args[@]}"
CNCC
chmod +x "$out/bin/cncc"
echo "fake Neuware SDK in $out"
