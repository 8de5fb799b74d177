// Host emulation of the BANG C intrinsics used by relu/kernel_relu.mlu, for testing its tiling on
// a machine without an MLU. TEST-ONLY: never part of libmagicmind_plugin.so.
//
// What is emulated, and what is checked on every call (a violation aborts with a message):
//   * taskId / taskDim: per emulated core (thread-local), set by Launch();
//   * __nram__: `static thread_local`, i.e. one buffer per emulated core, like NRAM;
//   * __memcpy(dst, src, bytes, GDRAM2NRAM | NRAM2GDRAM): bytes > 0 and <= MLU370 NRAM size; the
//     GDRAM side must lie entirely inside a region registered with RegisterGdram(), the NRAM side
//     must not touch any; every byte written to GDRAM is counted per region and per task;
//   * __bang_relu(dst, src, n) (__BANG_ARCH__ >= 300) and __bang_active_relu(dst, src, n) (below):
//     n > 0 and n * sizeof(T) a multiple of the 128-byte NFU alignment (the stricter rule of older
//     BANG toolchains); operands must not be GDRAM; each counts its calls separately, so the test
//     can check which branch of the kernel ran;
//   * Launch(dim, type, queue, kernel, args...): runs dim.x * dim.y * dim.z tasks, each on its own
//     thread; for UNIONn launches dim.x must be a multiple of 4 * n (4 cores per MLU370 cluster).
#ifndef SWIN_PLUGINS_HOST_SHIM_BANG_HOST_SHIM_H_
#define SWIN_PLUGINS_HOST_SHIM_BANG_HOST_SHIM_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "cnrt.h"

#define __mlu_global__
#define __mlu_entry__
#define __mlu_func__ inline
#define __nram__ static thread_local

typedef _Float16 half;

enum mluMemcpyDirection_t { GDRAM2NRAM, NRAM2GDRAM, NRAM2NRAM, GDRAM2GDRAM };

namespace bang_host {

constexpr size_t kNramBytes = 640 * 1024;  // MLU370 (mtp_372) NRAM per core, as in the BANG C guide
constexpr size_t kNfuAlignBytes = 128;

inline thread_local int task_id = 0;
inline thread_local int task_dim = 1;

[[noreturn]] inline void Fail(const char *what) {
  std::fprintf(stderr, "bang_host_shim: %s (task %d of %d)\n", what, task_id, task_dim);
  std::abort();
}

struct GdramRegion {
  const unsigned char *begin;
  size_t bytes;
  std::vector<uint32_t> writes;  // per byte: how many NRAM2GDRAM copies wrote it
};

struct State {
  std::mutex mutex;
  std::vector<GdramRegion> regions;
  std::vector<uint64_t> bytes_written_per_task;
  uint64_t relu_calls = 0;         // __bang_relu
  uint64_t active_relu_calls = 0;  // __bang_active_relu
};

inline State &GlobalState() {
  static State state;
  return state;
}

inline void RegisterGdram(const void *ptr, size_t bytes) {
  State &s = GlobalState();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.regions.push_back(GdramRegion{static_cast<const unsigned char *>(ptr), bytes, std::vector<uint32_t>(bytes, 0)});
}

inline void ResetGdram() {
  State &s = GlobalState();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.regions.clear();
  s.bytes_written_per_task.clear();
  s.relu_calls = 0;
  s.active_relu_calls = 0;
}

// Region containing [p, p + bytes), or nullptr; aborts if the range straddles a region boundary.
inline GdramRegion *FindGdram(const void *p, size_t bytes) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  for (GdramRegion &r : GlobalState().regions) {
    const bool overlaps = b < r.begin + r.bytes && b + bytes > r.begin;
    if (!overlaps) continue;
    if (b < r.begin || b + bytes > r.begin + r.bytes) Fail("GDRAM access crosses the end of its allocation");
    return &r;
  }
  return nullptr;
}

template <typename Kernel, typename... Args>
void Launch(cnrtDim3_t dim, cnrtFunctionType_t type, cnrtQueue_t /*queue*/, Kernel kernel, Args... args) {
  if (dim.x == 0 || dim.y == 0 || dim.z == 0) Fail("launch dimension 0");
  const unsigned type_value = static_cast<unsigned>(type);
  if (type_value != 1) {
    const unsigned clusters_per_task = type_value / 4;  // UNION1 = 4, UNION2 = 8, ...
    if (clusters_per_task == 0 || type_value % 4 != 0 || dim.x % (4 * clusters_per_task) != 0) {
      Fail("UNIONn launch needs dim.x to be a multiple of 4 * n");
    }
  }
  const int tasks = static_cast<int>(dim.x * dim.y * dim.z);
  {
    State &s = GlobalState();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.bytes_written_per_task.assign(static_cast<size_t>(tasks), 0);
  }
  std::vector<std::thread> cores;
  for (int t = 0; t < tasks; ++t) {
    cores.emplace_back([=] {
      task_id = t;
      task_dim = tasks;
      kernel(args...);
    });
  }
  for (std::thread &core : cores) core.join();
}

}  // namespace bang_host

#define taskId (::bang_host::task_id)
#define taskDim (::bang_host::task_dim)

inline void __memcpy(void *dst, const void *src, int bytes, mluMemcpyDirection_t direction) {
  using namespace bang_host;
  if (bytes <= 0) Fail("__memcpy of <= 0 bytes");
  if (static_cast<size_t>(bytes) > kNramBytes) Fail("__memcpy larger than NRAM");
  State &s = GlobalState();
  std::lock_guard<std::mutex> lock(s.mutex);
#if defined(BANG_HOST_UNCHECKED_GDRAM)
  // Used by the fake SDK's plugin build, where "GDRAM" comes from a fake cnrtMalloc.
  (void)direction;
  std::memcpy(dst, src, static_cast<size_t>(bytes));
  return;
#endif
  GdramRegion *src_gdram = FindGdram(src, static_cast<size_t>(bytes));
  GdramRegion *dst_gdram = FindGdram(dst, static_cast<size_t>(bytes));
  if (direction == GDRAM2NRAM) {
    if (src_gdram == nullptr) Fail("GDRAM2NRAM source is not inside a GDRAM allocation");
    if (dst_gdram != nullptr) Fail("GDRAM2NRAM destination is GDRAM");
  } else if (direction == NRAM2GDRAM) {
    if (dst_gdram == nullptr) Fail("NRAM2GDRAM destination is not inside a GDRAM allocation");
    if (src_gdram != nullptr) Fail("NRAM2GDRAM source is GDRAM");
    const size_t offset = static_cast<const unsigned char *>(dst) - dst_gdram->begin;
    for (int i = 0; i < bytes; ++i) dst_gdram->writes[offset + static_cast<size_t>(i)] += 1;
    s.bytes_written_per_task.at(static_cast<size_t>(task_id)) += static_cast<uint64_t>(bytes);
  } else {
    Fail("unexpected __memcpy direction");
  }
  std::memcpy(dst, src, static_cast<size_t>(bytes));
}

namespace bang_host {
template <typename T>
inline void Relu(T *dst, const T *src, int n, const char *name, uint64_t State::*counter) {
  if (n <= 0) Fail(name);
  if ((static_cast<size_t>(n) * sizeof(T)) % kNfuAlignBytes != 0) Fail("ReLU length not 128-byte aligned");
  {
    State &s = GlobalState();
    std::lock_guard<std::mutex> lock(s.mutex);
    if (FindGdram(src, static_cast<size_t>(n) * sizeof(T)) || FindGdram(dst, static_cast<size_t>(n) * sizeof(T))) {
      Fail("ReLU operand in GDRAM (vector ops work on NRAM)");
    }
    s.*counter += 1;
  }
  for (int i = 0; i < n; ++i) dst[i] = src[i] > T(0) ? src[i] : T(0);
}
}  // namespace bang_host

// mtp_3xx and later (__BANG_ARCH__ >= 300).
template <typename T>
inline void __bang_relu(T *dst, const T *src, int n) {
  ::bang_host::Relu(dst, src, n, "__bang_relu with n <= 0", &::bang_host::State::relu_calls);
}

// MLU2xx (__BANG_ARCH__ < 300).
template <typename T>
inline void __bang_active_relu(T *dst, const T *src, int n) {
  ::bang_host::Relu(dst, src, n, "__bang_active_relu with n <= 0", &::bang_host::State::active_relu_calls);
}

#endif  // SWIN_PLUGINS_HOST_SHIM_BANG_HOST_SHIM_H_
