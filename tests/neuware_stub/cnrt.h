/* TEST-ONLY stand-in for CNRT 6.x cnrt.h (see tests/neuware_stub/README.md). Declarations follow
 * cnrt.h 6.0.2 / 6.14.1 as quoted in the research notes (magicmind-api.md §1.6) and public call
 * sites (cnrtGetLastError: torch_mlu, Paddle MLU). No definitions.
 * ASSUMED (not from a header, from call sites only; marked below): cnrtPeekAtLastError's signature
 * (Cambricon/mlu-ops core/logging.h KERNEL_CHECK calls `cnrtRet_t ret = cnrtPeekAtLastError();`),
 * cnrtDeviceAttr_t and cnrtDeviceGetAttribute(int *, attr, int device) (DeepLink DIOPI camb:
 * `cnrtDeviceGetAttribute(&cluster_count, cnrtAttrClusterCount, 0)`; open-mmlab/mmcv MLU policyFunc
 * via getDeviceAttr(cnrtAttrMcorePerCluster)); the enum values are placeholders. */
#ifndef SWIN_SERVE_STUB_CNRT_H_
#define SWIN_SERVE_STUB_CNRT_H_
#include "stub_guard.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  cnrtSuccess = 0,
  cnrtErrorNoMem = 2, /* placeholder value */
  cnrtErrorInvalidValue = 1, /* placeholder value */
} cnrtRet_t;
#define CNRT_RET_SUCCESS cnrtSuccess

typedef struct cnrtQueue *cnrtQueue_t;

typedef struct {
  unsigned int x;
  unsigned int y;
  unsigned int z;
} cnrtDim3_t;

typedef enum {
  cnrtFuncTypeBlock = 1,
  cnrtFuncTypeUnion1 = 4,
  cnrtFuncTypeUnion2 = 8,
  cnrtFuncTypeUnion4 = 16,
  cnrtFuncTypeUnion8 = 32,
  cnrtFuncTypeUnion16 = 64,
} cnrtFunctionType_t;
#define CNRT_FUNC_TYPE_BLOCK cnrtFuncTypeBlock
#define CNRT_FUNC_TYPE_UNION1 cnrtFuncTypeUnion1

typedef enum {
  cnrtMemcpyHostToDev = 0,
  cnrtMemcpyDevToDev = 1,
  cnrtMemcpyDevToHost = 2,
} cnrtMemTransDir_t;
#define CNRT_MEM_TRANS_DIR_HOST2DEV ((cnrtMemTransDir_t)0)
#define CNRT_MEM_TRANS_DIR_DEV2DEV ((cnrtMemTransDir_t)1)
#define CNRT_MEM_TRANS_DIR_DEV2HOST ((cnrtMemTransDir_t)2)

cnrtRet_t cnrtSetDevice(int ordinal);
cnrtRet_t cnrtGetDevice(int *ordinal);
cnrtRet_t cnrtGetDeviceCount(unsigned int *pCount);
cnrtRet_t cnrtQueueCreate(cnrtQueue_t *pQueue);
cnrtRet_t cnrtQueueDestroy(cnrtQueue_t queue);
cnrtRet_t cnrtQueueSync(cnrtQueue_t queue);
cnrtRet_t cnrtMalloc(void **pPtr, size_t bytes);
cnrtRet_t cnrtFree(void *ptr);
cnrtRet_t cnrtHostMalloc(void **pPtr, size_t bytes);
cnrtRet_t cnrtFreeHost(void *ptr);
cnrtRet_t cnrtMemcpy(void *dst, void *src, size_t bytes, cnrtMemTransDir_t dir);
cnrtRet_t cnrtMemcpyAsync(void *dst, void *src, size_t bytes, cnrtQueue_t queue, cnrtMemTransDir_t dir);
/* Returns the calling thread's last error and resets it to cnrtSuccess. */
cnrtRet_t cnrtGetLastError(void);
/* ASSUMED signature (mlu-ops core/logging.h): the last error without resetting it. */
cnrtRet_t cnrtPeekAtLastError(void);

/* ASSUMED: names from public call sites, values placeholders. */
typedef enum {
  cnrtAttrClusterCount = 0x7f000001,    /* placeholder value */
  cnrtAttrMcorePerCluster = 0x7f000002, /* placeholder value */
} cnrtDeviceAttr_t;
/* ASSUMED signature (DIOPI camb call sites): attribute `attr` of device ordinal `device`. */
cnrtRet_t cnrtDeviceGetAttribute(int *value, cnrtDeviceAttr_t attr, int device);
const char *cnrtGetErrorStr(cnrtRet_t error);

#ifdef __cplusplus
}
#endif
#endif /* SWIN_SERVE_STUB_CNRT_H_ */
