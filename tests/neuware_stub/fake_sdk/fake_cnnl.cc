// TEST-ONLY fake of the CNNL calls the Roll plugin makes: cnnlRoll on host memory.
#include <cstring>
#include <vector>

#include "cnnl.h"

struct cnnlContext {
  cnrtQueue_t queue = nullptr;
};
struct cnnlTensorStruct {
  cnnlDataType_t dtype = CNNL_DTYPE_INVALID;
  std::vector<int> dims;
};

namespace {
constexpr size_t kRollWorkspace = 64;  // pretend roll needs a workspace, so the plugin must pass one

size_t ElementSize(cnnlDataType_t dtype) { return dtype == CNNL_DTYPE_HALF ? 2 : 4; }
}  // namespace

extern "C" {

// Like CNNL, a handle belongs to the device current on the creating thread: without one (the fake
// CNRT tracks it per thread) creation fails, so a handle made off the enqueueing thread shows up.
cnnlStatus_t cnnlCreate(cnnlHandle_t *handle) {
  int device = -1;
  if (handle == nullptr || cnrtGetDevice(&device) != cnrtSuccess) return CNNL_STATUS_NOT_INITIALIZED;
  *handle = new cnnlContext();
  return CNNL_STATUS_SUCCESS;
}
cnnlStatus_t cnnlDestroy(cnnlHandle_t handle) {
  delete handle;
  return CNNL_STATUS_SUCCESS;
}
cnnlStatus_t cnnlSetQueue(cnnlHandle_t handle, cnrtQueue_t queue) {
  if (handle == nullptr || queue == nullptr) return CNNL_STATUS_BAD_PARAM;
  handle->queue = queue;
  return CNNL_STATUS_SUCCESS;
}
const char *cnnlGetErrorString(cnnlStatus_t status) {
  return status == CNNL_STATUS_SUCCESS ? "CNNL_STATUS_SUCCESS" : "fake cnnl: bad parameter";
}
cnnlStatus_t cnnlCreateTensorDescriptor(cnnlTensorDescriptor_t *desc) {
  *desc = new cnnlTensorStruct();
  return CNNL_STATUS_SUCCESS;
}
cnnlStatus_t cnnlDestroyTensorDescriptor(cnnlTensorDescriptor_t desc) {
  delete desc;
  return CNNL_STATUS_SUCCESS;
}
// Stricter than CNNL on purpose: CNNL's header says a second cnnlSetTensorDescriptor without
// cnnlResetTensorDescriptor in between leaks; the fake rejects it so that a missing reset fails.
cnnlStatus_t cnnlSetTensorDescriptor(cnnlTensorDescriptor_t desc, cnnlTensorLayout_t, cnnlDataType_t dtype,
                                     int dim_nb, const int dim_size[]) {
  if (desc == nullptr || dim_nb < 1 || (dtype != CNNL_DTYPE_FLOAT && dtype != CNNL_DTYPE_HALF) ||
      desc->dtype != CNNL_DTYPE_INVALID) {
    return CNNL_STATUS_BAD_PARAM;
  }
  desc->dtype = dtype;
  desc->dims.assign(dim_size, dim_size + dim_nb);
  return CNNL_STATUS_SUCCESS;
}
cnnlStatus_t cnnlResetTensorDescriptor(cnnlTensorDescriptor_t desc) {
  if (desc == nullptr) return CNNL_STATUS_BAD_PARAM;
  desc->dtype = CNNL_DTYPE_INVALID;
  desc->dims.clear();
  return CNNL_STATUS_SUCCESS;
}
cnnlStatus_t cnnlGetRollWorkspaceSize(cnnlHandle_t, const cnnlTensorDescriptor_t, size_t *size) {
  *size = kRollWorkspace;
  return CNNL_STATUS_SUCCESS;
}

cnnlStatus_t cnnlRoll(cnnlHandle_t handle, const cnnlTensorDescriptor_t x_desc, const void *x, const int shifts[],
                      int shifts_num, const int dims[], int dims_num, void *workspace, size_t workspace_size,
                      const cnnlTensorDescriptor_t y_desc, void *y) {
  if (handle == nullptr || handle->queue == nullptr || shifts_num != dims_num || shifts_num < 1 ||
      workspace == nullptr || workspace_size < kRollWorkspace || x_desc->dims != y_desc->dims ||
      x_desc->dtype != y_desc->dtype) {
    return CNNL_STATUS_BAD_PARAM;
  }
  const std::vector<int> &shape = x_desc->dims;
  const size_t rank = shape.size();
  std::vector<long> shift(rank, 0);
  for (int i = 0; i < dims_num; ++i) {
    if (dims[i] < 0 || static_cast<size_t>(dims[i]) >= rank) return CNNL_STATUS_BAD_PARAM;
    shift[dims[i]] += shifts[i];
  }
  size_t count = 1;
  for (int d : shape) count *= static_cast<size_t>(d);
  const size_t elem = ElementSize(x_desc->dtype);
  std::vector<size_t> index(rank, 0);
  for (size_t linear = 0; linear < count; ++linear) {
    size_t remaining = linear;
    for (size_t k = rank; k-- > 0;) {
      index[k] = remaining % shape[k];
      remaining /= shape[k];
    }
    size_t target = 0;
    for (size_t k = 0; k < rank; ++k) {
      const long extent = shape[k];
      const long moved = ((static_cast<long>(index[k]) + shift[k]) % extent + extent) % extent;
      target = target * shape[k] + static_cast<size_t>(moved);
    }
    std::memcpy(static_cast<char *>(y) + target * elem, static_cast<const char *>(x) + linear * elem, elem);
  }
  return CNNL_STATUS_SUCCESS;
}

}  // extern "C"
