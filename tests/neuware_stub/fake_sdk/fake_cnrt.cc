// TEST-ONLY fake of CNRT (tests/neuware_stub/README.md): "device" memory is host memory, queues do
// nothing, and the current device is tracked per thread. Stricter than needed on purpose: every
// device call fails unless cnrtSetDevice was called on the calling thread, so the FFI test proves
// that swin-serve selects the device on each worker thread.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

#include "cnrt.h"

namespace {
thread_local int g_device = -1;
std::mutex g_mutex;
std::set<void *> g_device_allocations;

unsigned DeviceCount() {
  const char *env = std::getenv("FAKE_MLU_DEVICES");
  return env ? static_cast<unsigned>(std::atoi(env)) : 1u;
}
}  // namespace

struct cnrtQueue {
  int device;
};

extern "C" {

cnrtRet_t cnrtSetDevice(int ordinal) {
  if (ordinal < 0 || static_cast<unsigned>(ordinal) >= DeviceCount()) return cnrtErrorInvalidValue;
  g_device = ordinal;
  return cnrtSuccess;
}

cnrtRet_t cnrtGetDevice(int *ordinal) {
  if (g_device < 0) return cnrtErrorInvalidValue;
  *ordinal = g_device;
  return cnrtSuccess;
}

cnrtRet_t cnrtGetDeviceCount(unsigned int *count) {
  *count = DeviceCount();
  return cnrtSuccess;
}

cnrtRet_t cnrtQueueCreate(cnrtQueue_t *queue) {
  if (g_device < 0) return cnrtErrorInvalidValue;
  *queue = new cnrtQueue{g_device};
  return cnrtSuccess;
}

cnrtRet_t cnrtQueueDestroy(cnrtQueue_t queue) {
  delete queue;
  return cnrtSuccess;
}

cnrtRet_t cnrtQueueSync(cnrtQueue_t queue) { return queue != nullptr && g_device >= 0 ? cnrtSuccess : cnrtErrorInvalidValue; }

cnrtRet_t cnrtMalloc(void **ptr, size_t bytes) {
  if (g_device < 0) return cnrtErrorInvalidValue;
  *ptr = std::calloc(1, bytes ? bytes : 1);
  if (*ptr == nullptr) return cnrtErrorNoMem;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_device_allocations.insert(*ptr);
  return cnrtSuccess;
}

cnrtRet_t cnrtFree(void *ptr) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_device_allocations.erase(ptr) != 1) return cnrtErrorInvalidValue;
  std::free(ptr);
  return cnrtSuccess;
}

cnrtRet_t cnrtHostMalloc(void **ptr, size_t bytes) {
  *ptr = std::calloc(1, bytes ? bytes : 1);
  return *ptr ? cnrtSuccess : cnrtErrorNoMem;
}

cnrtRet_t cnrtFreeHost(void *ptr) {
  std::free(ptr);
  return cnrtSuccess;
}

cnrtRet_t cnrtMemcpy(void *dst, void *src, size_t bytes, cnrtMemTransDir_t) {
  if (g_device < 0) return cnrtErrorInvalidValue;
  std::memcpy(dst, src, bytes);
  return cnrtSuccess;
}

cnrtRet_t cnrtMemcpyAsync(void *dst, void *src, size_t bytes, cnrtQueue_t queue, cnrtMemTransDir_t dir) {
  if (queue == nullptr) return cnrtErrorInvalidValue;
  return cnrtMemcpy(dst, src, bytes, dir);
}

// Launch errors: the fake's kernels run synchronously on emulated cores and abort on a bad launch,
// so nothing ever sets an error; the two calls keep CNRT's get-and-reset / peek semantics.
thread_local cnrtRet_t g_last_error = cnrtSuccess;
cnrtRet_t cnrtGetLastError(void) {
  const cnrtRet_t e = g_last_error;
  g_last_error = cnrtSuccess;
  return e;
}
cnrtRet_t cnrtPeekAtLastError(void) { return g_last_error; }

// MLU370-like geometry: 4 cores per cluster; FAKE_MLU_CLUSTERS clusters (default 8).
cnrtRet_t cnrtDeviceGetAttribute(int *value, cnrtDeviceAttr_t attr, int device) {
  if (value == nullptr || device < 0 || static_cast<unsigned>(device) >= DeviceCount()) return cnrtErrorInvalidValue;
  switch (attr) {
    case cnrtAttrMcorePerCluster:
      *value = 4;
      return cnrtSuccess;
    case cnrtAttrClusterCount: {
      const char *env = std::getenv("FAKE_MLU_CLUSTERS");
      *value = env ? std::atoi(env) : 8;
      return cnrtSuccess;
    }
  }
  return cnrtErrorInvalidValue;
}

const char *cnrtGetErrorStr(cnrtRet_t error) {
  switch (error) {
    case cnrtSuccess:
      return "success";
    case cnrtErrorNoMem:
      return "fake cnrt: out of memory";
    default:
      return "fake cnrt: invalid value (no current device on this thread?)";
  }
}

// Number of live cnrtMalloc allocations (the FFI test checks that teardown frees them all).
int fake_cnrt_live_device_allocations(void) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return static_cast<int>(g_device_allocations.size());
}

}  // extern "C"
