// Host test of the BANG C ReLU kernel's tiling (relu/kernel_relu.mlu compiled through
// bang_host_shim.h). For each element type (fp32, fp16), each size and each launch configuration
// (BLOCK on 1..9 emulated cores, UNION1/UNION2 on 4..32 cores) it checks:
//   * every output element equals max(x, 0) of its input element (computed here, independently);
//   * every output byte was written by exactly one NRAM2GDRAM copy (no gaps, no overlaps between
//     cores), guard elements around the output are untouched;
//   * no task wrote more than ceil(count / tasks) elements (the work is really split across cores);
//   * all GDRAM accesses stayed inside the input/output allocations, vector lengths were 128-byte
//     aligned and each copy fit in NRAM (checked inside the shim).
//   * the ReLU intrinsic of the compiled __BANG_ARCH__ ran and the other did not: __bang_relu for
//     __BANG_ARCH__ >= 300 (MLU370: 372), __bang_active_relu below;
//   * UnionAlignedDim (relu_launch.h) rounds Dim.x up to whole clusters; launches it produces are
//     among the configurations run.
// Built four times (plugins/CMakeLists.txt): __BANG_ARCH__ 372 and 270 (both branches of the
// kernel), each with the production NRAM chunk (128 KB) and with a 256-byte chunk
// (-DRELU_NRAM_CHUNK_BYTES=256, 64 fp32 / 128 fp16 elements) so that every size 0..520 is run and
// crosses many chunk boundaries on several cores.
#define SWIN_BANG_HOST_EMULATION 1
#include "../relu/kernel_relu.mlu"
#include "../relu/relu_launch.h"

#if !defined(__BANG_ARCH__)
#error "build with -D__BANG_ARCH__=<arch> (e.g. 372 for MLU370, 270 for the pre-300 branch)"
#endif

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

struct LaunchConfig {
  cnrtDim3_t dim;
  cnrtFunctionType_t type;
  const char *name;
};

constexpr int kGuard = 64;  // elements of sentinel before and after the output

uint64_t g_cases = 0;
uint64_t g_elements = 0;
int g_failures = 0;

void Report(const std::string &what) {
  if (g_failures < 20) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  ++g_failures;
}

template <typename T>
T FromFloat(float v) {
  return static_cast<T>(v);
}

template <typename T>
float ToFloat(T v) {
  return static_cast<float>(v);
}

// Runs one launch and checks everything; Storage is float or uint16_t (the ReluEnqueue overloads).
template <typename T, typename Storage>
void RunCase(uint32_t count, const LaunchConfig &cfg, std::mt19937 &rng) {
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  std::vector<T> input(count);
  for (uint32_t i = 0; i < count; ++i) {
    float v = dist(rng);
    if (i % 17 == 0) v = 0.0f;
    if (i % 29 == 0) v = -0.0f;
    if (i % 31 == 0) v = 1e-3f * (i % 2 ? 1.0f : -1.0f);
    input[i] = FromFloat<T>(v);
  }
  const T sentinel = FromFloat<T>(-12345.0f);
  std::vector<T> output(count + 2 * kGuard, sentinel);
  T *out = output.data() + kGuard;

  bang_host::ResetGdram();
  if (count > 0) {
    bang_host::RegisterGdram(input.data(), count * sizeof(T));
    bang_host::RegisterGdram(out, count * sizeof(T));
  }
  ReluEnqueue(cfg.dim, cfg.type, nullptr, reinterpret_cast<Storage *>(input.data()),
              reinterpret_cast<Storage *>(out), count);

  const std::string where = std::string(sizeof(T) == 4 ? "fp32" : "fp16") + " count " + std::to_string(count) +
                            " " + cfg.name;
  ++g_cases;
  {
    const bang_host::State &st = bang_host::GlobalState();
    const uint64_t expected_calls = __BANG_ARCH__ >= 300 ? st.relu_calls : st.active_relu_calls;
    const uint64_t other_calls = __BANG_ARCH__ >= 300 ? st.active_relu_calls : st.relu_calls;
    if ((count > 0 && expected_calls == 0) || other_calls != 0) {
      Report(where + ": wrong ReLU intrinsic for __BANG_ARCH__ " + std::to_string(__BANG_ARCH__) + " (__bang_relu " +
             std::to_string(st.relu_calls) + " calls, __bang_active_relu " + std::to_string(st.active_relu_calls) +
             ")");
      return;
    }
  }
  for (uint32_t i = 0; i < count; ++i) {
    const float x = ToFloat(input[i]);
    const float expected = x > 0.0f ? x : 0.0f;
    if (ToFloat(out[i]) != expected) {
      Report(where + ": element " + std::to_string(i) + " is " + std::to_string(ToFloat(out[i])) + ", expected " +
             std::to_string(expected));
      return;
    }
  }
  g_elements += count;
  for (int g = 0; g < kGuard; ++g) {
    if (ToFloat(output[g]) != ToFloat(sentinel) || ToFloat(out[count + g]) != ToFloat(sentinel)) {
      Report(where + ": guard element overwritten");
      return;
    }
  }
  bang_host::State &s = bang_host::GlobalState();
  if (count > 0) {
    const bang_host::GdramRegion &written = s.regions.at(1);
    for (size_t b = 0; b < written.bytes; ++b) {
      if (written.writes[b] != 1) {
        Report(where + ": output byte " + std::to_string(b) + " written " + std::to_string(written.writes[b]) +
               " times");
        return;
      }
    }
  }
  const uint64_t tasks = s.bytes_written_per_task.size();
  const uint64_t fair_share = (count + tasks - 1) / tasks * sizeof(T);
  for (uint64_t t = 0; t < tasks; ++t) {
    if (s.bytes_written_per_task[t] > fair_share) {
      Report(where + ": task " + std::to_string(t) + " wrote " + std::to_string(s.bytes_written_per_task[t]) +
             " bytes, more than its share " + std::to_string(fair_share));
      return;
    }
  }
}

}  // namespace

int main() {
  const uint32_t chunk32 = RELU_NRAM_CHUNK_BYTES / 4;
  std::vector<LaunchConfig> configs;
  static const char *block_names[] = {"BLOCK x1", "BLOCK x2", "BLOCK x3", "BLOCK x4", "BLOCK x5",
                                      "BLOCK x6", "BLOCK x7", "BLOCK x8", "BLOCK x9"};
  for (unsigned cores = 1; cores <= 9; ++cores) {
    configs.push_back({{cores, 1, 1}, cnrtFuncTypeBlock, block_names[cores - 1]});
  }
  configs.push_back({{4, 1, 1}, cnrtFuncTypeUnion1, "UNION1 {4,1,1}"});
  configs.push_back({{4, 2, 1}, cnrtFuncTypeUnion1, "UNION1 {4,2,1}"});
  configs.push_back({{4, 8, 1}, cnrtFuncTypeUnion1, "UNION1 {4,8,1}"});
  configs.push_back({{8, 2, 1}, cnrtFuncTypeUnion2, "UNION2 {8,2,1}"});
  // Dims as the plugin computes them from the lab's default Dim {1,1,1} and a 4-core cluster.
  const cnrtDim3_t u1 = swin_plugin::UnionAlignedDim({1, 1, 1}, cnrtFuncTypeUnion1, 4);
  const cnrtDim3_t u2 = swin_plugin::UnionAlignedDim({3, 2, 1}, cnrtFuncTypeUnion2, 4);
  const cnrtDim3_t blk = swin_plugin::UnionAlignedDim({3, 1, 1}, cnrtFuncTypeBlock, 4);
  if (u1.x != 4 || u1.y != 1 || u2.x != 8 || u2.y != 2 || blk.x != 3 ||
      swin_plugin::UnionAlignedDim({5, 1, 1}, cnrtFuncTypeUnion1, 4).x != 8 ||
      swin_plugin::UnionAlignedDim({8, 1, 1}, cnrtFuncTypeUnion1, 4).x != 8 ||
      swin_plugin::UnionAlignedDim({1, 1, 1}, cnrtFuncTypeUnion4, 4).x != 16 ||
      swin_plugin::UnionAlignedDim({1, 1, 1}, cnrtFuncTypeUnion1, 0).x != 1) {
    Report("UnionAlignedDim does not round Dim.x up to whole clusters");
  }
  configs.push_back({u1, cnrtFuncTypeUnion1, "UNION1 UnionAlignedDim({1,1,1})"});
  configs.push_back({u2, cnrtFuncTypeUnion2, "UNION2 UnionAlignedDim({3,2,1})"});

  std::vector<uint32_t> sizes;
  if (RELU_NRAM_CHUNK_BYTES <= 4096) {
    for (uint32_t n = 0; n <= 520; ++n) sizes.push_back(n);  // every size, crossing many small chunks
  } else {
    sizes = {0, 1, 2, 31, 32, 33, 63, 64, 65, 127, 1001, chunk32 - 1, chunk32, chunk32 + 1, 2 * chunk32 + 7,
             4 * chunk32 * 2 + 3, 115200, 115233};  // 115200 = the CPB table of swinv2 (1x15x15x512)
  }
  std::mt19937 rng(12345);
  for (uint32_t count : sizes) {
    for (const LaunchConfig &cfg : configs) {
      RunCase<float, float>(count, cfg, rng);
      RunCase<half, uint16_t>(count, cfg, rng);
    }
  }
  std::printf("relu tiling (__BANG_ARCH__ %d: %s, NRAM chunk %d bytes): %llu launches, %zu sizes (%u..%u) x %zu launch configs x "
              "{fp32, fp16}, %llu elements checked, %d failure(s)\n",
              __BANG_ARCH__, __BANG_ARCH__ >= 300 ? "__bang_relu" : "__bang_active_relu", RELU_NRAM_CHUNK_BYTES,
              static_cast<unsigned long long>(g_cases), sizes.size(), sizes.front(),
              sizes.back(), configs.size(), static_cast<unsigned long long>(g_elements), g_failures);
  return g_failures == 0 ? 0 : 1;
}
