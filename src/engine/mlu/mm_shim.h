/* extern "C" shim over the MagicMind C++ runtime, for the Rust `mlu` backend (src/engine/mlu).
 *
 * MagicMind's API is C++ (abstract classes, std::vector, magicmind::Status), which Rust cannot call
 * directly; this header is the C surface that bindgen turns into Rust declarations and that
 * mm_shim.cc implements (compiled by build.rs with `cc` when NEUWARE_HOME is set).
 *
 * Objects and their MagicMind counterparts:
 *   MmShimModel  = magicmind::IModel  (CreateIModel + DeserializeFromFile)
 *   MmShimEngine = magicmind::IEngine (IModel::CreateIEngine), one per model, shared by all slots
 *   MmShimSlot   = one IContext + cnrtQueue_t + its input/output IRTTensors + preallocated device
 *                  buffers and pinned (cnrtHostMalloc) host buffers for the largest batch.
 * Lifetimes (enforced by the Rust side): plugin libraries are dlopen'ed before mm_shim_model_load and
 * dlclose'd after mm_shim_model_destroy; slots are destroyed before the engine, the engine before
 * the model. A slot is used by one thread at a time; the caller runs mm_shim_set_device on that
 * thread first (CNRT binds the device per thread).
 *
 * Every function that can fail returns 0 (MM_SHIM_OK) or an MM_SHIM_ERR_* code and fills *error. */
#ifndef SWIN_SERVE_MM_SHIM_H_
#define SWIN_SERVE_MM_SHIM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MM_SHIM_OK 0
#define MM_SHIM_ERR_DEVICE 1           /* a CNRT call failed */
#define MM_SHIM_ERR_MAGICMIND 2        /* a MagicMind call returned a failed Status or null */
#define MM_SHIM_ERR_INVALID_ARGUMENT 3 /* the caller passed sizes/shapes the slot cannot take */
#define MM_SHIM_ERR_INTERNAL 4         /* C++ exception or broken invariant */

#define MM_SHIM_MAX_DIMS 8
#define MM_SHIM_MESSAGE_LEN 512
#define MM_SHIM_NAME_LEN 128

/* Element types (magicmind::DataType) the backend distinguishes. */
#define MM_SHIM_DTYPE_OTHER 0
#define MM_SHIM_DTYPE_FLOAT32 1
#define MM_SHIM_DTYPE_FLOAT16 2
#define MM_SHIM_DTYPE_INT32 3
#define MM_SHIM_DTYPE_INT64 4

typedef struct MmShimError {
  int32_t code;
  char message[MM_SHIM_MESSAGE_LEN];
} MmShimError;

/* A model input or output as the serialized model declares it; dims[i] == -1 is a mutable dim. */
typedef struct MmShimTensorSpec {
  char name[MM_SHIM_NAME_LEN];
  int32_t data_type;
  int32_t num_dims;
  int64_t dims[MM_SHIM_MAX_DIMS];
} MmShimTensorSpec;

typedef struct MmShimModel MmShimModel;
typedef struct MmShimEngine MmShimEngine;
typedef struct MmShimSlot MmShimSlot;

/* `swin_plugin_self_test` exported by libmagicmind_plugin.so (plugins/common/self_test.h):
 * 0 = passed, 1 = mismatch, 2 = CNRT/CNNL error, -1 = unknown op. */
typedef int32_t (*SwinPluginSelfTestFn)(const char *op_name, char *message, size_t message_len);

/* cnrtGetDeviceCount. */
int32_t mm_shim_device_count(uint32_t *count, MmShimError *error);
/* cnrtSetDevice on the calling thread. */
int32_t mm_shim_set_device(int32_t device_id, MmShimError *error);

/* CreateIModel + DeserializeFromFile. */
int32_t mm_shim_model_load(const char *path, MmShimModel **model, MmShimError *error);
int32_t mm_shim_model_io_count(const MmShimModel *model, int32_t *num_inputs, int32_t *num_outputs,
                               MmShimError *error);
/* Name, data type and dims of input (is_output == 0) or output (is_output != 0) `index`. */
int32_t mm_shim_model_tensor_spec(const MmShimModel *model, int32_t is_output, int32_t index,
                                  MmShimTensorSpec *spec, MmShimError *error);
/* IModel::Destroy. Null is ignored. */
void mm_shim_model_destroy(MmShimModel *model);

/* IModel::CreateIEngine. */
int32_t mm_shim_engine_create(MmShimModel *model, MmShimEngine **engine, MmShimError *error);
/* IEngine::Destroy. Null is ignored. */
void mm_shim_engine_destroy(MmShimEngine *engine);

/* CreateIContext + cnrtQueueCreate + Create{Input,Output}Tensors; sets the input to
 * [max_batch, sample_dims...], runs InferOutputShape (reporting the output dims for max_batch in
 * out_num_dims / out_dims) and allocates device and pinned host buffers for that size. */
int32_t mm_shim_slot_create(MmShimEngine *engine, int64_t max_batch, const int64_t sample_dims[3],
                            int32_t *out_num_dims, int64_t out_dims[MM_SHIM_MAX_DIMS], MmShimSlot **slot,
                            MmShimError *error);
/* One inference: input (input_len floats, shape input_dims[4], batch <= max_batch) -> pinned buffer
 * -> device; SetDimensions + SetData, InferOutputShape, Enqueue, copy back, cnrtQueueSync.
 * output_len must equal the element count of the inferred output shape. */
int32_t mm_shim_slot_infer(MmShimSlot *slot, const float *input, size_t input_len, const int64_t input_dims[4],
                           float *output, size_t output_len, MmShimError *error);
/* Syncs the queue, destroys the tensors, the context and the queue, frees the buffers. Null is ignored. */
void mm_shim_slot_destroy(MmShimSlot *slot);

#ifdef __cplusplus
}
#endif
#endif /* SWIN_SERVE_MM_SHIM_H_ */
