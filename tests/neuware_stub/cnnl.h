/* TEST-ONLY stand-in for CNNL cnnl.h (see tests/neuware_stub/README.md). Signatures from public call
 * sites: the lab's plugin_roll.cc, MagicMind samples (common/macros.h, plugin_attn_proj_out.cc),
 * DIOPI camb (magicmind-api.md §2.2). Enum values other than CNNL_STATUS_SUCCESS are placeholders. */
#ifndef SWIN_SERVE_STUB_CNNL_H_
#define SWIN_SERVE_STUB_CNNL_H_
#include "stub_guard.h"
#include <stddef.h>
#include <stdint.h>
#include "cnrt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnnlContext *cnnlHandle_t;
typedef struct cnnlTensorStruct *cnnlTensorDescriptor_t;

typedef enum {
  CNNL_STATUS_SUCCESS = 0,
  CNNL_STATUS_NOT_INITIALIZED = 1,
  CNNL_STATUS_ALLOC_FAILED = 2,
  CNNL_STATUS_BAD_PARAM = 3,
  CNNL_STATUS_INTERNAL_ERROR = 4,
  CNNL_STATUS_ARCH_MISMATCH = 5,
  CNNL_STATUS_EXECUTION_FAILED = 6,
  CNNL_STATUS_NOT_SUPPORTED = 7,
} cnnlStatus_t;

typedef enum {
  CNNL_DTYPE_INVALID = 0,
  CNNL_DTYPE_HALF = 1,
  CNNL_DTYPE_FLOAT = 2,
  CNNL_DTYPE_INT8 = 3,
  CNNL_DTYPE_INT16 = 4,
  CNNL_DTYPE_INT32 = 6,
  CNNL_DTYPE_INT64 = 9,
  CNNL_DTYPE_BOOL = 8,
} cnnlDataType_t;

typedef enum {
  CNNL_LAYOUT_NCHW = 0,
  CNNL_LAYOUT_NHWC = 1,
  CNNL_LAYOUT_ARRAY = 7,
} cnnlTensorLayout_t;

cnnlStatus_t cnnlCreate(cnnlHandle_t *handle);
cnnlStatus_t cnnlDestroy(cnnlHandle_t handle);
cnnlStatus_t cnnlSetQueue(cnnlHandle_t handle, cnrtQueue_t queue);
const char *cnnlGetErrorString(cnnlStatus_t status);

cnnlStatus_t cnnlCreateTensorDescriptor(cnnlTensorDescriptor_t *desc);
cnnlStatus_t cnnlDestroyTensorDescriptor(cnnlTensorDescriptor_t desc);
/* CNNL's header documents that this "cannot be called continuously": call cnnlResetTensorDescriptor
 * before setting a descriptor again, or memory leaks (cnnl.h doc comment of cnnlSetTensorDescriptor,
 * as quoted in public copies of cnnl.h; reset also used by PaddlePaddle's MLU cnnl descriptor pool). */
cnnlStatus_t cnnlSetTensorDescriptor(cnnlTensorDescriptor_t desc, cnnlTensorLayout_t layout,
                                     cnnlDataType_t dtype, int dimNb, const int dimSize[]);
cnnlStatus_t cnnlResetTensorDescriptor(cnnlTensorDescriptor_t desc);

cnnlStatus_t cnnlGetRollWorkspaceSize(cnnlHandle_t handle, const cnnlTensorDescriptor_t input_desc,
                                      size_t *size);
cnnlStatus_t cnnlRoll(cnnlHandle_t handle, const cnnlTensorDescriptor_t input_desc, const void *input,
                      const int shifts[], int shifts_num, const int dims[], int dims_num,
                      void *workspace, size_t workspace_size,
                      const cnnlTensorDescriptor_t output_desc, void *output);

#ifdef __cplusplus
}
#endif
#endif /* SWIN_SERVE_STUB_CNNL_H_ */
