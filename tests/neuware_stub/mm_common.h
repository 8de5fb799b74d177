// TEST-ONLY stand-in for MagicMind mm_common.h (see tests/neuware_stub/README.md).
// The real header is not public; these declarations follow the call sites collected in
// magicmind-api.md §1.3 (MagicMind samples, easydk, the lab). No definitions.
#ifndef SWIN_SERVE_STUB_MM_COMMON_H_
#define SWIN_SERVE_STUB_MM_COMMON_H_
#include "stub_guard.h"
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace magicmind {

namespace error {
// Codes seen at call sites: UNAVAILABLE, INVALID_ARGUMENT, OUT_OF_RANGE, INTERNAL. Values are placeholders.
enum class Code : int {
  OK = 0,
  INVALID_ARGUMENT = 3,
  NOT_FOUND = 5,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
};
}  // namespace error

class Status {
 public:
  Status();
  Status(error::Code code, const std::string &message);
  static Status OK();
  bool ok() const;
  error::Code code() const;
  std::string ToString() const;
  bool operator==(const Status &other) const;
  bool operator!=(const Status &other) const;

 private:  // placeholder storage (used by the fake SDK of the FFI test)
  error::Code code_ = error::Code::OK;
  std::string message_;
};
std::ostream &operator<<(std::ostream &os, const Status &status);

// Values seen: FLOAT32, FLOAT16, INT32, INT64, BOOL, INT8, INT16, UINT8, QINT8, QINT16, TENSORLIST.
// A scoped enum here so that code under test cannot rely on implicit integer conversions.
enum class DataType : int {
  INT8,
  INT16,
  INT32,
  INT64,
  UINT8,
  FLOAT16,
  FLOAT32,
  BOOL,
  QINT8,
  QINT16,
  TENSORLIST,
};
std::string TypeEnumToString(DataType type);

enum class Layout : int { NONE, NCHW, NHWC, NT, TN, ARRAY };
enum class TensorLocation : int { kHost, kMLU, kRemoteHost, kRemoteMLU };

class Dims {
 public:
  Dims();
  explicit Dims(const std::vector<int64_t> &dims);
  std::vector<int64_t> GetDims() const;
  int64_t GetDimsNum() const;
  int64_t GetElementCount() const;

 private:  // placeholder storage (used by the fake SDK of the FFI test)
  std::vector<int64_t> dims_;
};

}  // namespace magicmind
#endif  // SWIN_SERVE_STUB_MM_COMMON_H_
