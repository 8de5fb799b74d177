// Implementation of mm_shim.h over the MagicMind runtime and CNRT 6.x.
//
// Written against the API as Cambricon's public samples call it (magicmind-api.md §1): the real
// headers are not public, so results whose exact C++ type is unknown are held in `auto` and only
// used through the calls the samples make. Checked here by compiling against the TEST-ONLY
// stand-ins in tests/neuware_stub; NOT run on an MLU370.
#include "mm_shim.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cnrt.h"
#include "mm_runtime.h"

struct MmShimModel {
  magicmind::IModel *model = nullptr;
};

struct MmShimEngine {
  magicmind::IEngine *engine = nullptr;
};

struct MmShimSlot {
  magicmind::IContext *context = nullptr;
  cnrtQueue_t queue = nullptr;
  std::vector<magicmind::IRTTensor *> inputs;
  std::vector<magicmind::IRTTensor *> outputs;
  void *device_input = nullptr;
  void *device_output = nullptr;
  void *host_input = nullptr;   // pinned
  void *host_output = nullptr;  // pinned
  size_t input_capacity = 0;    // elements
  size_t output_capacity = 0;   // elements
  int64_t max_batch = 0;
};

namespace {

int32_t Fail(MmShimError *error, int32_t code, const std::string &message) {
  if (error != nullptr) {
    error->code = code;
    std::snprintf(error->message, sizeof(error->message), "%s", message.c_str());
  }
  return code;
}

int32_t Ok(MmShimError *error) {
  if (error != nullptr) {
    error->code = MM_SHIM_OK;
    error->message[0] = '\0';
  }
  return MM_SHIM_OK;
}

std::string CnrtMessage(const char *call, cnrtRet_t ret) {
  return std::string(call) + " failed: " + cnrtGetErrorStr(ret) + " (cnrtRet_t " +
         std::to_string(static_cast<int>(ret)) + ")";
}

std::string DimsToString(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Element count of a concrete shape; -1 if a dimension is negative.
int64_t ElementCount(const std::vector<int64_t> &dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

int32_t DataTypeCode(magicmind::DataType type) {
  if (type == magicmind::DataType::FLOAT32) return MM_SHIM_DTYPE_FLOAT32;
  if (type == magicmind::DataType::FLOAT16) return MM_SHIM_DTYPE_FLOAT16;
  if (type == magicmind::DataType::INT32) return MM_SHIM_DTYPE_INT32;
  if (type == magicmind::DataType::INT64) return MM_SHIM_DTYPE_INT64;
  return MM_SHIM_DTYPE_OTHER;
}

#define SHIM_CNRT(call)                                                  \
  do {                                                                   \
    cnrtRet_t shim_ret_ = (call);                                        \
    if (shim_ret_ != cnrtSuccess) {                                      \
      return Fail(error, MM_SHIM_ERR_DEVICE, CnrtMessage(#call, shim_ret_)); \
    }                                                                    \
  } while (0)

#define SHIM_MM(call)                                                                        \
  do {                                                                                       \
    auto shim_status_ = (call);                                                              \
    if (!shim_status_.ok()) {                                                                \
      return Fail(error, MM_SHIM_ERR_MAGICMIND, std::string(#call " failed: ") + shim_status_.ToString()); \
    }                                                                                        \
  } while (0)

// Runs `body` and turns a C++ exception into MM_SHIM_ERR_INTERNAL.
template <typename Body>
int32_t Guarded(MmShimError *error, const char *function, Body body) {
  try {
    return body();
  } catch (const std::exception &e) {
    return Fail(error, MM_SHIM_ERR_INTERNAL, std::string(function) + ": C++ exception: " + e.what());
  } catch (...) {
    return Fail(error, MM_SHIM_ERR_INTERNAL, std::string(function) + ": unknown C++ exception");
  }
}

void DestroySlotResources(MmShimSlot *slot) {
  if (slot->queue != nullptr) cnrtQueueSync(slot->queue);  // no work may still use the buffers
  for (magicmind::IRTTensor *t : slot->inputs) {
    if (t != nullptr) t->Destroy();
  }
  for (magicmind::IRTTensor *t : slot->outputs) {
    if (t != nullptr) t->Destroy();
  }
  slot->inputs.clear();
  slot->outputs.clear();
  if (slot->context != nullptr) slot->context->Destroy();
  slot->context = nullptr;
  if (slot->queue != nullptr) cnrtQueueDestroy(slot->queue);
  slot->queue = nullptr;
  if (slot->device_input != nullptr) cnrtFree(slot->device_input);
  if (slot->device_output != nullptr) cnrtFree(slot->device_output);
  if (slot->host_input != nullptr) cnrtFreeHost(slot->host_input);
  if (slot->host_output != nullptr) cnrtFreeHost(slot->host_output);
  slot->device_input = slot->device_output = slot->host_input = slot->host_output = nullptr;
}

}  // namespace

extern "C" {

int32_t mm_shim_device_count(uint32_t *count, MmShimError *error) {
  return Guarded(error, __func__, [&]() -> int32_t {
    unsigned int n = 0;
    SHIM_CNRT(cnrtGetDeviceCount(&n));
    *count = n;
    return Ok(error);
  });
}

int32_t mm_shim_set_device(int32_t device_id, MmShimError *error) {
  return Guarded(error, __func__, [&]() -> int32_t {
    SHIM_CNRT(cnrtSetDevice(device_id));
    return Ok(error);
  });
}

int32_t mm_shim_model_load(const char *path, MmShimModel **out, MmShimError *error) {
  return Guarded(error, __func__, [&]() -> int32_t {
    *out = nullptr;
    magicmind::IModel *model = magicmind::CreateIModel();
    if (model == nullptr) return Fail(error, MM_SHIM_ERR_MAGICMIND, "magicmind::CreateIModel returned null");
    auto status = model->DeserializeFromFile(path);
    if (!status.ok()) {
      model->Destroy();
      return Fail(error, MM_SHIM_ERR_MAGICMIND, std::string("IModel::DeserializeFromFile(") + path +
                                                    ") failed: " + status.ToString());
    }
    *out = new MmShimModel{model};
    return Ok(error);
  });
}

int32_t mm_shim_model_io_count(const MmShimModel *model, int32_t *num_inputs, int32_t *num_outputs,
                               MmShimError *error) {
  return Guarded(error, __func__, [&]() -> int32_t {
    *num_inputs = static_cast<int32_t>(model->model->GetInputNum());
    *num_outputs = static_cast<int32_t>(model->model->GetOutputNum());
    return Ok(error);
  });
}

int32_t mm_shim_model_tensor_spec(const MmShimModel *model, int32_t is_output, int32_t index,
                                  MmShimTensorSpec *spec, MmShimError *error) {
  return Guarded(error, __func__, [&]() -> int32_t {
    magicmind::IModel *m = model->model;
    auto names = is_output ? m->GetOutputNames() : m->GetInputNames();
    auto dims = is_output ? m->GetOutputDimensions() : m->GetInputDimensions();
    auto types = is_output ? m->GetOutputDataTypes() : m->GetInputDataTypes();
    const size_t i = static_cast<size_t>(index);
    if (index < 0 || i >= dims.size() || i >= types.size()) {
      return Fail(error, MM_SHIM_ERR_INVALID_ARGUMENT, "tensor index " + std::to_string(index) + " out of range");
    }
    std::memset(spec, 0, sizeof(*spec));
    const std::string name = i < names.size() ? std::string(names[i]) : std::string();
    std::snprintf(spec->name, sizeof(spec->name), "%s", name.c_str());
    spec->data_type = DataTypeCode(types[i]);
    const std::vector<int64_t> d = dims[i].GetDims();
    if (d.size() > MM_SHIM_MAX_DIMS) {
      return Fail(error, MM_SHIM_ERR_INVALID_ARGUMENT, "tensor " + name + " has more than 8 dimensions");
    }
    spec->num_dims = static_cast<int32_t>(d.size());
    for (size_t k = 0; k < d.size(); ++k) spec->dims[k] = d[k];
    return Ok(error);
  });
}

void mm_shim_model_destroy(MmShimModel *model) {
  if (model == nullptr) return;
  try {
    if (model->model != nullptr) model->model->Destroy();
  } catch (...) {
  }
  delete model;
}

int32_t mm_shim_engine_create(MmShimModel *model, MmShimEngine **out, MmShimError *error) {
  return Guarded(error, __func__, [&]() -> int32_t {
    *out = nullptr;
    magicmind::IEngine *engine = model->model->CreateIEngine();
    if (engine == nullptr) {
      return Fail(error, MM_SHIM_ERR_MAGICMIND,
                  "IModel::CreateIEngine returned null (plugin library not loaded, wrong device, or out of memory?)");
    }
    *out = new MmShimEngine{engine};
    return Ok(error);
  });
}

void mm_shim_engine_destroy(MmShimEngine *engine) {
  if (engine == nullptr) return;
  try {
    if (engine->engine != nullptr) engine->engine->Destroy();
  } catch (...) {
  }
  delete engine;
}

int32_t mm_shim_slot_create(MmShimEngine *engine, int64_t max_batch, const int64_t sample_dims[3],
                            int32_t *out_num_dims, int64_t out_dims[MM_SHIM_MAX_DIMS], MmShimSlot **out,
                            MmShimError *error) {
  *out = nullptr;
  MmShimSlot *slot = new MmShimSlot();
  const int32_t result = Guarded(error, __func__, [&]() -> int32_t {
    if (max_batch < 1) return Fail(error, MM_SHIM_ERR_INVALID_ARGUMENT, "max_batch must be >= 1");
    slot->max_batch = max_batch;
    slot->context = engine->engine->CreateIContext();
    if (slot->context == nullptr) return Fail(error, MM_SHIM_ERR_MAGICMIND, "IEngine::CreateIContext returned null");
    SHIM_CNRT(cnrtQueueCreate(&slot->queue));
    SHIM_MM(slot->context->CreateInputTensors(&slot->inputs));
    SHIM_MM(slot->context->CreateOutputTensors(&slot->outputs));
    if (slot->inputs.size() != 1 || slot->outputs.size() != 1) {
      return Fail(error, MM_SHIM_ERR_INVALID_ARGUMENT,
                  "the model must have 1 input and 1 output, it has " + std::to_string(slot->inputs.size()) +
                      " and " + std::to_string(slot->outputs.size()));
    }
    const std::vector<int64_t> input_dims = {max_batch, sample_dims[0], sample_dims[1], sample_dims[2]};
    SHIM_MM(slot->inputs[0]->SetDimensions(magicmind::Dims(input_dims)));
    auto shape_status = slot->context->InferOutputShape(slot->inputs, slot->outputs);
    if (!shape_status.ok()) {
      return Fail(error, MM_SHIM_ERR_MAGICMIND, "IContext::InferOutputShape for input " + DimsToString(input_dims) +
                                                    " failed (batch outside the model's range?): " +
                                                    shape_status.ToString());
    }
    const std::vector<int64_t> output_dims = slot->outputs[0]->GetDimensions().GetDims();
    const int64_t output_count = ElementCount(output_dims);
    if (output_dims.empty() || output_dims.size() > MM_SHIM_MAX_DIMS || output_count <= 0) {
      return Fail(error, MM_SHIM_ERR_MAGICMIND, "unusable inferred output shape " + DimsToString(output_dims));
    }
    *out_num_dims = static_cast<int32_t>(output_dims.size());
    for (size_t k = 0; k < output_dims.size(); ++k) out_dims[k] = output_dims[k];

    slot->input_capacity = static_cast<size_t>(ElementCount(input_dims));
    slot->output_capacity = static_cast<size_t>(output_count);
    SHIM_CNRT(cnrtMalloc(&slot->device_input, slot->input_capacity * sizeof(float)));
    SHIM_CNRT(cnrtMalloc(&slot->device_output, slot->output_capacity * sizeof(float)));
    SHIM_CNRT(cnrtHostMalloc(&slot->host_input, slot->input_capacity * sizeof(float)));
    SHIM_CNRT(cnrtHostMalloc(&slot->host_output, slot->output_capacity * sizeof(float)));
    return Ok(error);
  });
  if (result != MM_SHIM_OK) {
    DestroySlotResources(slot);
    delete slot;
    return result;
  }
  *out = slot;
  return MM_SHIM_OK;
}

int32_t mm_shim_slot_infer(MmShimSlot *slot, const float *input, size_t input_len, const int64_t input_dims[4],
                           float *output, size_t output_len, MmShimError *error) {
  const int32_t result = Guarded(error, __func__, [&]() -> int32_t {
    const std::vector<int64_t> dims(input_dims, input_dims + 4);
    const int64_t count = ElementCount(dims);
    if (count < 0 || static_cast<size_t>(count) != input_len || input_len > slot->input_capacity ||
        dims[0] > slot->max_batch) {
      return Fail(error, MM_SHIM_ERR_INVALID_ARGUMENT, "input " + DimsToString(dims) + " with " +
                                                           std::to_string(input_len) + " values does not fit a slot "
                                                           "of batch " + std::to_string(slot->max_batch));
    }
    std::memcpy(slot->host_input, input, input_len * sizeof(float));
    SHIM_CNRT(cnrtMemcpyAsync(slot->device_input, slot->host_input, input_len * sizeof(float), slot->queue,
                              CNRT_MEM_TRANS_DIR_HOST2DEV));
    SHIM_MM(slot->inputs[0]->SetDimensions(magicmind::Dims(dims)));
    SHIM_MM(slot->inputs[0]->SetData(slot->device_input));
    SHIM_MM(slot->context->InferOutputShape(slot->inputs, slot->outputs));
    const std::vector<int64_t> output_dims = slot->outputs[0]->GetDimensions().GetDims();
    const int64_t output_count = ElementCount(output_dims);
    if (output_count < 0 || static_cast<size_t>(output_count) != output_len ||
        output_len > slot->output_capacity) {
      return Fail(error, MM_SHIM_ERR_INVALID_ARGUMENT, "inferred output " + DimsToString(output_dims) +
                                                           " does not match the " + std::to_string(output_len) +
                                                           " values the caller expects");
    }
    SHIM_MM(slot->outputs[0]->SetData(slot->device_output));
    SHIM_MM(slot->context->Enqueue(slot->inputs, slot->outputs, slot->queue));
    SHIM_CNRT(cnrtMemcpyAsync(slot->host_output, slot->device_output, output_len * sizeof(float), slot->queue,
                              CNRT_MEM_TRANS_DIR_DEV2HOST));
    SHIM_CNRT(cnrtQueueSync(slot->queue));
    std::memcpy(output, slot->host_output, output_len * sizeof(float));
    return Ok(error);
  });
  if (result != MM_SHIM_OK && slot->queue != nullptr) {
    cnrtQueueSync(slot->queue);  // a failed call must not leave copies into the pinned buffers pending
  }
  return result;
}

void mm_shim_slot_destroy(MmShimSlot *slot) {
  if (slot == nullptr) return;
  try {
    DestroySlotResources(slot);
  } catch (...) {
  }
  delete slot;
}

}  // extern "C"
