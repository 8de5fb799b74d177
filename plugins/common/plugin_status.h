// Error handling shared by the MagicMind plugin kernels: every MagicMind, CNNL and CNRT return code
// is checked and turned into a magicmind::Status that names the op, the function and the call.
#ifndef SWIN_PLUGINS_COMMON_PLUGIN_STATUS_H_
#define SWIN_PLUGINS_COMMON_PLUGIN_STATUS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cnnl.h"
#include "cnrt.h"
#include "mm_plugin.h"

namespace swin_plugin {

// A failed Status for `op` (e.g. "MyPlugin::CnnlRoll") raised in `function`.
inline magicmind::Status Fail(const char *op, const char *function, const std::string &what) {
  return magicmind::Status(magicmind::error::Code::UNAVAILABLE,
                           std::string(op) + " [" + function + "]: " + what);
}

inline magicmind::Status InvalidArgument(const char *op, const char *function, const std::string &what) {
  return magicmind::Status(magicmind::error::Code::INVALID_ARGUMENT,
                           std::string(op) + " [" + function + "]: " + what);
}

inline std::string ShapeToString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

// Number of elements of `shape`; false when a dimension is negative (unknown) or the count overflows.
inline bool ElementCount(const std::vector<int64_t> &shape, uint64_t *count) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > UINT64_MAX / static_cast<uint64_t>(d)) return false;
    n *= static_cast<uint64_t>(d);
  }
  *count = n;
  return true;
}

}  // namespace swin_plugin

// Return the failed magicmind::Status of a MagicMind call.
#define SWIN_MM_CHECK(call)            \
  do {                                 \
    auto swin_mm_status_ = (call);     \
    if (!swin_mm_status_.ok()) {       \
      return swin_mm_status_;          \
    }                                  \
  } while (0)

// Turn a failed CNNL call into a magicmind::Status naming the call and CNNL's message.
#define SWIN_CNNL_CHECK(op, call)                                                              \
  do {                                                                                         \
    cnnlStatus_t swin_cnnl_status_ = (call);                                                   \
    if (swin_cnnl_status_ != CNNL_STATUS_SUCCESS) {                                            \
      return ::swin_plugin::Fail(op, __func__, std::string(#call " failed: ") +                \
                                                   cnnlGetErrorString(swin_cnnl_status_));     \
    }                                                                                          \
  } while (0)

// Turn a failed CNRT call into a magicmind::Status naming the call and CNRT's message.
#define SWIN_CNRT_CHECK(op, call)                                                              \
  do {                                                                                         \
    cnrtRet_t swin_cnrt_status_ = (call);                                                      \
    if (swin_cnrt_status_ != cnrtSuccess) {                                                    \
      return ::swin_plugin::Fail(op, __func__, std::string(#call " failed: ") +                \
                                                   cnrtGetErrorStr(swin_cnrt_status_));        \
    }                                                                                          \
  } while (0)

// Launch a BANG kernel and report a launch error, the way Cambricon/mlu-ops core/logging.h
// KERNEL_CHECK does: cnrtGetLastError() first to clear an error left by an earlier call on this
// thread (it returns and resets the thread's error state), then the launch, then
// cnrtPeekAtLastError() for the error the launch itself raised. Errors of the kernel's execution
// surface at the queue's sync, which MagicMind's runtime does.
#define SWIN_KERNEL_CHECK(op, launch)                                                          \
  do {                                                                                         \
    (void)cnrtGetLastError();                                                                  \
    launch;                                                                                    \
    cnrtRet_t swin_launch_status_ = cnrtPeekAtLastError();                                     \
    if (swin_launch_status_ != cnrtSuccess) {                                                  \
      return ::swin_plugin::Fail(op, __func__, std::string("launch " #launch " failed: ") +    \
                                                   cnrtGetErrorStr(swin_launch_status_));      \
    }                                                                                          \
  } while (0)

#endif  // SWIN_PLUGINS_COMMON_PLUGIN_STATUS_H_
