// TEST-ONLY fake of the MagicMind runtime (tests/neuware_stub/README.md), implementing the
// stand-in declarations of mm_common.h / mm_runtime.h / mm_plugin.h so that the real FFI path of
// swin-serve can be linked and run without an MLU:
//   * plugin ops and kernels register themselves here when their library is dlopen'ed;
//   * a "model" is a text file:   FAKE-MAGICMIND 1
//                                 input <name> <B> <C> <H> <W>      (-1 = mutable)
//                                 output <name> <B> <classes>
//                                 max_batch <n>
//                                 requires <op> [<op> ...]
//     DeserializeFromFile fails unless every required op has a registered MLU kernel;
//   * inference computes logit k of image b = k + 0.001 * sum(image b) from the "device" input;
//   * protocol violations (engine destroyed while contexts live, model while engines live,
//     enqueue without a current device, missing SetData) abort the process with a message.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "cnrt.h"
#include "mm_plugin.h"
#include "mm_runtime.h"

namespace magicmind {

// ---- Status, Dims, DataType ----
Status::Status() = default;
Status::Status(error::Code code, const std::string &message) : code_(code), message_(message) {}
Status Status::OK() { return Status(); }
bool Status::ok() const { return code_ == error::Code::OK; }
error::Code Status::code() const { return code_; }
std::string Status::ToString() const {
  return ok() ? std::string("OK") : "code " + std::to_string(static_cast<int>(code_)) + ": " + message_;
}
bool Status::operator==(const Status &other) const { return code_ == other.code_ && message_ == other.message_; }
bool Status::operator!=(const Status &other) const { return !(*this == other); }
std::ostream &operator<<(std::ostream &os, const Status &status) { return os << status.ToString(); }

std::string TypeEnumToString(DataType type) {
  switch (type) {
    case DataType::FLOAT32:
      return "FLOAT32";
    case DataType::FLOAT16:
      return "FLOAT16";
    default:
      return "DataType(" + std::to_string(static_cast<int>(type)) + ")";
  }
}

Dims::Dims() = default;
Dims::Dims(const std::vector<int64_t> &dims) : dims_(dims) {}
std::vector<int64_t> Dims::GetDims() const { return dims_; }
int64_t Dims::GetDimsNum() const { return static_cast<int64_t>(dims_.size()); }
int64_t Dims::GetElementCount() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

IModel::EngineConfig::EngineConfig() = default;
void IModel::EngineConfig::SetDeviceType(const std::string &device_type) { device_type_ = device_type; }

// ---- Plugin registry ----
namespace {
struct Registry {
  std::mutex mutex;
  std::set<std::string> ops;
  std::map<std::string, IPluginKernelFactory *> mlu_kernels;
};
Registry &GetRegistry() {
  static Registry registry;
  return registry;
}

[[noreturn]] void Violation(const std::string &what) {
  std::fprintf(stderr, "fake MagicMind: protocol violation: %s\n", what.c_str());
  std::abort();
}
}  // namespace

PluginOpDefBuilder::PluginOpDefBuilder(const std::string &op_name) : op_name_(op_name) {
  std::lock_guard<std::mutex> lock(GetRegistry().mutex);
  GetRegistry().ops.insert(op_name);
}
PluginOpDefBuilder &PluginOpDefBuilder::Input(const std::string &) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::Output(const std::string &) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::TypeConstraint(const std::string &) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::TypeConstraint(DataType) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::Param(const std::string &) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::Type(const std::string &) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::TypeList(const std::string &) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::Allowed(std::initializer_list<DataType>) { return *this; }
PluginOpDefBuilder &PluginOpDefBuilder::Allowed(std::initializer_list<Layout>) { return *this; }
template <typename T>
PluginOpDefBuilder &PluginOpDefBuilder::Default(const T &) {
  return *this;
}
template PluginOpDefBuilder &PluginOpDefBuilder::Default<int>(const int &);
template PluginOpDefBuilder &PluginOpDefBuilder::Default<DataType>(const DataType &);
template PluginOpDefBuilder &PluginOpDefBuilder::Default<std::vector<int64_t>>(const std::vector<int64_t> &);
PluginOpDefBuilder &PluginOpDefBuilder::ShapeFn(ShapeInferFn fn) {
  if (fn == nullptr) Violation("op " + op_name_ + " registered without a shape function");
  return *this;
}
PluginOpRegistrar::PluginOpRegistrar(const PluginOpDefBuilder &) {}

PluginKernelDefBuilder &PluginKernelDefBuilder::DeviceType(const std::string &device) {
  device_ = device;
  return *this;
}
PluginKernelDefBuilder CreatePluginKernelDefBuilder(const std::string &op_name) {
  PluginKernelDefBuilder builder;
  builder.op_name_ = op_name;
  return builder;
}
void RegisterPluginKernel(const PluginKernelDefBuilder &builder, IPluginKernelFactory *factory) {
  if (builder.device_ != "MLU") Violation("kernel for " + builder.op_name_ + " registered for device " + builder.device_);
  delete factory->Create();  // the kernel constructs and destructs cleanly (CNNL handle lifecycle)
  std::lock_guard<std::mutex> lock(GetRegistry().mutex);
  GetRegistry().mlu_kernels[builder.op_name_] = factory;
}

// ---- Runtime ----
namespace {

struct ModelSpec {
  std::string input_name, output_name;
  std::vector<int64_t> input_dims, output_dims;
  int64_t max_batch = 1;
  std::vector<std::string> required_ops;
};

int CurrentDevice() {
  int device = -1;
  return cnrtGetDevice(&device) == cnrtSuccess ? device : -1;
}

class FakeTensor : public IRTTensor {
 public:
  explicit FakeTensor(std::string name) : name_(std::move(name)) {}
  Status SetDimensions(const Dims &dims) override {
    dims_ = dims;
    return Status::OK();
  }
  Dims GetDimensions() const override { return dims_; }
  int64_t GetSize() const override { return dims_.GetElementCount() * 4; }
  Status SetData(void *data) override {
    data_ = data;
    return Status::OK();
  }
  void *GetMutableData() override { return data_; }
  DataType GetDataType() const override { return DataType::FLOAT32; }
  TensorLocation GetMemoryLocation() const override { return TensorLocation::kMLU; }
  std::string GetName() const override { return name_; }
  void Destroy() override { delete this; }

 private:
  std::string name_;
  Dims dims_;
  void *data_ = nullptr;
};

class FakeEngine;

class FakeContext : public IContext {
 public:
  FakeContext(FakeEngine *engine, const ModelSpec &spec) : engine_(engine), spec_(spec) {}
  Status CreateInputTensors(std::vector<IRTTensor *> *inputs) override {
    inputs->push_back(new FakeTensor(spec_.input_name));
    return Status::OK();
  }
  Status CreateOutputTensors(std::vector<IRTTensor *> *outputs) override {
    outputs->push_back(new FakeTensor(spec_.output_name));
    return Status::OK();
  }
  Status InferOutputShape(const std::vector<IRTTensor *> &inputs, const std::vector<IRTTensor *> &outputs) override {
    if (inputs.size() != 1 || outputs.size() != 1) return Status(error::Code::INVALID_ARGUMENT, "1 input, 1 output");
    const std::vector<int64_t> dims = inputs[0]->GetDimensions().GetDims();
    if (dims.size() != 4) return Status(error::Code::INVALID_ARGUMENT, "input must be 4-D");
    if (dims[0] < 1 || dims[0] > spec_.max_batch) {
      return Status(error::Code::OUT_OF_RANGE, "batch " + std::to_string(dims[0]) + " outside dim_range [1, " +
                                                   std::to_string(spec_.max_batch) + "]");
    }
    for (size_t k = 1; k < 4; ++k) {
      if (spec_.input_dims[k] != -1 && spec_.input_dims[k] != dims[k]) {
        return Status(error::Code::INVALID_ARGUMENT, "input dim " + std::to_string(k) + " mismatch");
      }
    }
    return outputs[0]->SetDimensions(Dims({dims[0], spec_.output_dims[1]}));
  }
  Status Enqueue(const std::vector<IRTTensor *> &inputs, const std::vector<IRTTensor *> &outputs,
                 cnrtQueue_t queue) override {
    if (queue == nullptr) Violation("Enqueue without a queue");
    if (CurrentDevice() < 0) Violation("Enqueue on a thread without cnrtSetDevice");
    const std::vector<int64_t> in = inputs.at(0)->GetDimensions().GetDims();
    const std::vector<int64_t> out = outputs.at(0)->GetDimensions().GetDims();
    const float *x = static_cast<const float *>(inputs[0]->GetMutableData());
    float *y = static_cast<float *>(outputs[0]->GetMutableData());
    if (x == nullptr || y == nullptr) Violation("Enqueue before SetData");
    if (out.size() != 2 || out[0] != in[0]) Violation("Enqueue without InferOutputShape for this batch");
    const int64_t sample = in[1] * in[2] * in[3];
    for (int64_t b = 0; b < in[0]; ++b) {
      double sum = 0;
      for (int64_t i = 0; i < sample; ++i) sum += x[b * sample + i];
      for (int64_t k = 0; k < out[1]; ++k) y[b * out[1] + k] = static_cast<float>(k + 0.001 * sum);
    }
    return Status::OK();
  }
  Status Enqueue(const std::vector<IRTTensor *> &, std::vector<IRTTensor *> *, cnrtQueue_t) override {
    return Status(error::Code::UNIMPLEMENTED, "fake: runtime-allocated outputs not supported");
  }
  Status SetWorkspace(void *, size_t) override { return Status::OK(); }
  void Destroy() override;

 private:
  FakeEngine *engine_;
  ModelSpec spec_;
};

class FakeModel;

class FakeEngine : public IEngine {
 public:
  FakeEngine(FakeModel *model, const ModelSpec &spec) : model_(model), spec_(spec) {}
  IContext *CreateIContext() override {
    if (CurrentDevice() < 0) Violation("CreateIContext on a thread without cnrtSetDevice");
    ++contexts_;
    return new FakeContext(this, spec_);
  }
  Status QueryConstDataSize(uint64_t *size) override {
    *size = 0;
    return Status::OK();
  }
  Status SetConstData(void *, size_t) override { return Status::OK(); }
  void Destroy() override;
  void ContextDestroyed() { --contexts_; }

 private:
  FakeModel *model_;
  ModelSpec spec_;
  int contexts_ = 0;
};

void FakeContext::Destroy() {
  engine_->ContextDestroyed();
  delete this;
}

class FakeModel : public IModel {
 public:
  Status DeserializeFromFile(const std::string &path) override {
    std::ifstream file(path);
    std::string magic;
    int version = 0;
    if (!(file >> magic >> version) || magic != "FAKE-MAGICMIND" || version != 1) {
      return Status(error::Code::INVALID_ARGUMENT, path + " is not a fake MagicMind model");
    }
    std::string line;
    while (std::getline(file, line)) {
      std::istringstream words(line);
      std::string key;
      if (!(words >> key)) continue;
      if (key == "input" || key == "output") {
        std::string name;
        words >> name;
        std::vector<int64_t> dims;
        int64_t d;
        while (words >> d) dims.push_back(d);
        (key == "input" ? spec_.input_name : spec_.output_name) = name;
        (key == "input" ? spec_.input_dims : spec_.output_dims) = dims;
      } else if (key == "max_batch") {
        words >> spec_.max_batch;
      } else if (key == "requires") {
        std::string op;
        while (words >> op) spec_.required_ops.push_back(op);
      }
    }
    std::lock_guard<std::mutex> lock(GetRegistry().mutex);
    for (const std::string &op : spec_.required_ops) {
      if (!GetRegistry().ops.count(op) || !GetRegistry().mlu_kernels.count(op)) {
        return Status(error::Code::NOT_FOUND, "model requires plugin op " + op +
                                                  ", which is not registered (load its plugin library first)");
      }
    }
    return Status::OK();
  }
  Status DeserializeFromMemory(void *, size_t) override { return Status(error::Code::UNIMPLEMENTED, "fake"); }
  int GetInputNum() const override { return 1; }
  int GetOutputNum() const override { return 1; }
  std::vector<std::string> GetInputNames() const override { return {spec_.input_name}; }
  std::vector<std::string> GetOutputNames() const override { return {spec_.output_name}; }
  std::vector<Dims> GetInputDimensions() const override { return {Dims(spec_.input_dims)}; }
  std::vector<Dims> GetOutputDimensions() const override { return {Dims(spec_.output_dims)}; }
  std::vector<DataType> GetInputDataTypes() const override { return {DataType::FLOAT32}; }
  std::vector<DataType> GetOutputDataTypes() const override { return {DataType::FLOAT32}; }
  IEngine *CreateIEngine() override {
    if (CurrentDevice() < 0) Violation("CreateIEngine on a thread without cnrtSetDevice");
    ++engines_;
    return new FakeEngine(this, spec_);
  }
  IEngine *CreateIEngine(const EngineConfig &) override { return CreateIEngine(); }
  void Destroy() override {
    if (engines_ != 0) Violation("IModel::Destroy while " + std::to_string(engines_) + " engine(s) exist");
    delete this;
  }
  void EngineDestroyed() { --engines_; }

 private:
  ModelSpec spec_;
  int engines_ = 0;
};

void FakeEngine::Destroy() {
  if (contexts_ != 0) Violation("IEngine::Destroy while " + std::to_string(contexts_) + " context(s) exist");
  model_->EngineDestroyed();
  delete this;
}

}  // namespace

IModel *CreateIModel() { return new FakeModel(); }

}  // namespace magicmind
