// TEST-ONLY stand-in for MagicMind mm_plugin.h (see tests/neuware_stub/README.md).
// Declarations follow magicmind-api.md §2.1 (the lab's plugin files, MagicMind sample_pluginop).
// The registration macros expand to static registrar objects, which is how such macros are usually
// built; the real expansion is not public. No definitions except PluginKernelRegistrar's constructor.
#ifndef SWIN_SERVE_STUB_MM_PLUGIN_H_
#define SWIN_SERVE_STUB_MM_PLUGIN_H_
#include "stub_guard.h"
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>
#include "cnrt.h"
#include "mm_common.h"

namespace magicmind {

class IShapeInferResource {
 public:
  virtual Status GetShape(const std::string &name, std::vector<int64_t> *shape) = 0;
  virtual Status SetShape(const std::string &name, const std::vector<int64_t> &shape) = 0;

 protected:
  virtual ~IShapeInferResource() {}
};

class INodeResource {
 public:
  virtual Status GetTensorDataType(const std::string &name, DataType *dtype) = 0;
  virtual Status GetTensorShape(const std::string &name, std::vector<int64_t> *shape) = 0;
  virtual Status GetAttr(const std::string &name, int64_t *value) = 0;
  virtual Status GetAttr(const std::string &name, std::vector<int64_t> *value) = 0;
  virtual Status GetTensorDataPtr(const std::string &name, void **ptr) = 0;
  virtual Status GetQueue(cnrtQueue_t *queue) = 0;
  virtual Status GetWorkspace(void **workspace) = 0;

 protected:
  virtual ~INodeResource() {}
};

// KNOWN (public samples declare these with `override` in their kernels and factories):
// SetLocalVar, GetWorkspaceSize, Enqueue and IPluginKernelFactory::Create are virtual.
// ASSUMED: the virtual destructors below. The samples' kernels and factories declare their
// destructors without `override` (Jayce0625/Cambricon magicmind/basic_samples/sample_pluginop/
// plugin_kernels/*/plugin_*.h), so the plugin sources do the same and compile either way.
class IPluginKernel {
 public:
  virtual Status SetLocalVar(INodeResource *context) = 0;
  virtual size_t GetWorkspaceSize(INodeResource *context) = 0;
  virtual Status Enqueue(INodeResource *context) = 0;
  virtual ~IPluginKernel() {}
};

class IPluginKernelFactory {
 public:
  virtual IPluginKernel *Create() = 0;
  virtual ~IPluginKernelFactory() {}
};

using ShapeInferFn = Status (*)(IShapeInferResource *);

class PluginOpDefBuilder {
 public:
  explicit PluginOpDefBuilder(const std::string &op_name);
  PluginOpDefBuilder &Input(const std::string &name);
  PluginOpDefBuilder &Output(const std::string &name);
  PluginOpDefBuilder &TypeConstraint(const std::string &type_param);
  PluginOpDefBuilder &TypeConstraint(DataType type);
  PluginOpDefBuilder &Param(const std::string &name);
  PluginOpDefBuilder &Type(const std::string &type);
  PluginOpDefBuilder &TypeList(const std::string &type);
  PluginOpDefBuilder &Allowed(std::initializer_list<DataType> types);
  PluginOpDefBuilder &Allowed(std::initializer_list<Layout> layouts);
  template <typename T>
  PluginOpDefBuilder &Default(const T &value);
  PluginOpDefBuilder &ShapeFn(ShapeInferFn fn);

 private:  // placeholder storage (used by the fake SDK of the FFI test)
  std::string op_name_;
};

class PluginOpRegistrar {
 public:
  PluginOpRegistrar(const PluginOpDefBuilder &builder);  // NOLINT: implicit like a registration macro
};

class PluginKernelDefBuilder {
 public:
  PluginKernelDefBuilder &DeviceType(const std::string &device);

 private:  // placeholder storage (used by the fake SDK of the FFI test)
  friend PluginKernelDefBuilder CreatePluginKernelDefBuilder(const std::string &op_name);
  friend void RegisterPluginKernel(const PluginKernelDefBuilder &builder, IPluginKernelFactory *factory);
  std::string op_name_;
  std::string device_;
};
PluginKernelDefBuilder CreatePluginKernelDefBuilder(const std::string &op_name);
void RegisterPluginKernel(const PluginKernelDefBuilder &builder, IPluginKernelFactory *factory);

// The only definition in the stand-ins: how a kernel registration macro plausibly expands.
template <typename Factory>
class PluginKernelRegistrar {
 public:
  explicit PluginKernelRegistrar(const PluginKernelDefBuilder &builder) { RegisterPluginKernel(builder, new Factory()); }
};

}  // namespace magicmind

#define MM_STUB_CONCAT_INNER(a, b) a##b
#define MM_STUB_CONCAT(a, b) MM_STUB_CONCAT_INNER(a, b)
#define PLUGIN_REGISTER_OP(name)                                                          \
  static ::magicmind::PluginOpRegistrar MM_STUB_CONCAT(mm_stub_op_registrar_, __LINE__) = \
      ::magicmind::PluginOpDefBuilder(name)
#define PLUGIN_REGISTER_KERNEL(builder, factory)                                                     \
  static ::magicmind::PluginKernelRegistrar<factory> MM_STUB_CONCAT(mm_stub_kernel_registrar_, __LINE__)( \
      builder)

#endif  // SWIN_SERVE_STUB_MM_PLUGIN_H_
