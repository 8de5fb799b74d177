// TEST-ONLY stand-in for MagicMind mm_runtime.h (see tests/neuware_stub/README.md).
// Declarations follow magicmind-api.md §1.2-1.3 (usage-derived). No definitions.
#ifndef SWIN_SERVE_STUB_MM_RUNTIME_H_
#define SWIN_SERVE_STUB_MM_RUNTIME_H_
#include "stub_guard.h"
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include "cnrt.h"
#include "mm_common.h"

namespace magicmind {

class IRTTensor {
 public:
  virtual Status SetDimensions(const Dims &dims) = 0;
  virtual Dims GetDimensions() const = 0;
  virtual int64_t GetSize() const = 0;
  virtual Status SetData(void *data) = 0;
  virtual void *GetMutableData() = 0;
  virtual DataType GetDataType() const = 0;
  virtual TensorLocation GetMemoryLocation() const = 0;
  virtual std::string GetName() const = 0;
  virtual void Destroy() = 0;

 protected:
  virtual ~IRTTensor() {}
};

class IContext {
 public:
  virtual Status CreateInputTensors(std::vector<IRTTensor *> *inputs) = 0;
  virtual Status CreateOutputTensors(std::vector<IRTTensor *> *outputs) = 0;
  virtual Status InferOutputShape(const std::vector<IRTTensor *> &inputs,
                                  const std::vector<IRTTensor *> &outputs) = 0;
  virtual Status Enqueue(const std::vector<IRTTensor *> &inputs, const std::vector<IRTTensor *> &outputs,
                         cnrtQueue_t queue) = 0;
  virtual Status Enqueue(const std::vector<IRTTensor *> &inputs, std::vector<IRTTensor *> *outputs,
                         cnrtQueue_t queue) = 0;
  virtual Status SetWorkspace(void *workspace, size_t size) = 0;
  virtual void Destroy() = 0;

 protected:
  virtual ~IContext() {}
};

class IEngine {
 public:
  virtual IContext *CreateIContext() = 0;
  virtual Status QueryConstDataSize(uint64_t *size) = 0;
  virtual Status SetConstData(void *data, size_t size) = 0;
  virtual void Destroy() = 0;

 protected:
  virtual ~IEngine() {}
};

class IModel {
 public:
  class EngineConfig {
   public:
    EngineConfig();
    void SetDeviceType(const std::string &device_type);

   private:  // placeholder storage
    std::string device_type_;
  };
  virtual Status DeserializeFromFile(const std::string &path) = 0;
  virtual Status DeserializeFromMemory(void *data, size_t size) = 0;
  virtual int GetInputNum() const = 0;
  virtual int GetOutputNum() const = 0;
  virtual std::vector<std::string> GetInputNames() const = 0;
  virtual std::vector<std::string> GetOutputNames() const = 0;
  virtual std::vector<Dims> GetInputDimensions() const = 0;
  virtual std::vector<Dims> GetOutputDimensions() const = 0;
  virtual std::vector<DataType> GetInputDataTypes() const = 0;
  virtual std::vector<DataType> GetOutputDataTypes() const = 0;
  virtual IEngine *CreateIEngine() = 0;
  virtual IEngine *CreateIEngine(const EngineConfig &config) = 0;
  virtual void Destroy() = 0;

 protected:
  virtual ~IModel() {}
};

IModel *CreateIModel();

}  // namespace magicmind
#endif  // SWIN_SERVE_STUB_MM_RUNTIME_H_
