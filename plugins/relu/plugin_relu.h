// MagicMind plugin op `MyPlugin::PluginReLU`: ReLU on the MLU with the BANG C kernel of
// kernel_relu.mlu.
//
// Op name and attributes are the lab's: input "input", output "output", type parameter T in
// {FLOAT32, FLOAT16}, `Dim` (3 ints, default {1, 1, 1}) and `FuncType` (int, default 1 = BLOCK):
// the launch configuration of the kernel. Fixed against the lab's version: counts are recomputed
// on every SetLocalVar (the lab accumulated them and rejected count <= 1); the kernel splits the
// work across all tasks of the launch (UNION1 uses every core of the cluster), every return code is
// checked, and launch errors are checked like mlu-ops' KERNEL_CHECK (cnrtGetLastError to clear,
// cnrtPeekAtLastError after the launch); UNIONn launches get a Dim.x rounded up to whole clusters
// (cnrtAttrMcorePerCluster, see relu_launch.h).
#ifndef SWIN_PLUGINS_RELU_PLUGIN_RELU_H_
#define SWIN_PLUGINS_RELU_PLUGIN_RELU_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cnrt.h"
#include "mm_plugin.h"

#define PLUGIN_RELU_OP_NAME "MyPlugin::PluginReLU"

namespace magicmind {
// Output shape = input shape.
Status PluginReluDoShapeInfer(IShapeInferResource *context);
}  // namespace magicmind

class PluginReLUKernel : public magicmind::IPluginKernel {
 public:
  magicmind::Status SetLocalVar(magicmind::INodeResource *context) override;
  // The kernel needs no workspace.
  size_t GetWorkspaceSize(magicmind::INodeResource *context) override;
  magicmind::Status Enqueue(magicmind::INodeResource *context) override;
  // No `override`: MagicMind's sample kernels declare `~Kernel() {}` (Jayce0625/Cambricon
  // magicmind/basic_samples/sample_pluginop/plugin_kernels/PluginCropAndResize/plugin_crop_and_resize.h);
  // whether IPluginKernel's destructor is virtual is not public.
  ~PluginReLUKernel() {}

 private:
  bool configured_ = false;
  magicmind::DataType dtype_ = magicmind::DataType::FLOAT32;
  std::vector<int64_t> shape_;
  uint32_t element_count_ = 0;
  cnrtDim3_t dim_ = {1, 1, 1};
  cnrtFunctionType_t ktype_ = cnrtFuncTypeBlock;
  unsigned cores_per_cluster_ = 0;  // queried on the first UNIONn Enqueue
};

class PluginReLUKernelFactory : public magicmind::IPluginKernelFactory {
 public:
  // `Create() override` as in the sample (same file); the destructor without `override`, as there.
  magicmind::IPluginKernel *Create() override { return new PluginReLUKernel(); }
  ~PluginReLUKernelFactory() {}
};

#endif  // SWIN_PLUGINS_RELU_PLUGIN_RELU_H_
