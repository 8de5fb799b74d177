// MagicMind plugin op `MyPlugin::CnnlRoll`: torch.roll on the MLU through CNNL's cnnlRoll.
//
// Op name and attributes are the lab's: input "input", output "output", type parameter T in
// {FLOAT32, FLOAT16}, int lists `shifts` and `dims` (same length, like torch.roll).
// Fixed against the lab's version: both tensor descriptors are created once per kernel object,
// reset (cnnlResetTensorDescriptor) before each cnnlSetTensorDescriptor and destroyed in the
// destructor; the CNNL handle is created lazily on the enqueueing thread, for the device current
// there, and bound to the call's queue (EnsureHandle); GetWorkspaceSize reports cnnlGetRollWorkspaceSize
// and Enqueue passes the buffer from INodeResource::GetWorkspace; shapes and counts are recomputed
// on every SetLocalVar (mutable shapes); every return code is checked.
#ifndef SWIN_PLUGINS_ROLL_PLUGIN_ROLL_H_
#define SWIN_PLUGINS_ROLL_PLUGIN_ROLL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cnnl.h"
#include "mm_plugin.h"

#define CNNL_ROLL_OP_NAME "MyPlugin::CnnlRoll"

namespace magicmind {
// Output shape = input shape.
Status CnnlRollDoShapeInfer(IShapeInferResource *context);
}  // namespace magicmind

class CnnlRollKernel : public magicmind::IPluginKernel {
 public:
  CnnlRollKernel();
  // No `override`: MagicMind's sample kernels declare `~Kernel() {}` (Jayce0625/Cambricon
  // magicmind/basic_samples/sample_pluginop/plugin_kernels/PluginCropAndResize/plugin_crop_and_resize.h);
  // whether IPluginKernel's destructor is virtual is not public.
  ~CnnlRollKernel();
  CnnlRollKernel(const CnnlRollKernel &) = delete;
  CnnlRollKernel &operator=(const CnnlRollKernel &) = delete;

  // Reads dtypes, shapes, `shifts` and `dims`, validates them, sets the CNNL descriptors and
  // queries the roll workspace for this shape.
  magicmind::Status SetLocalVar(magicmind::INodeResource *context) override;
  // cnnlGetRollWorkspaceSize for the current shape (0 if the configuration failed).
  size_t GetWorkspaceSize(magicmind::INodeResource *context) override;
  magicmind::Status Enqueue(magicmind::INodeResource *context) override;

 private:
  // Creates the CNNL handle on the calling thread's current device (again if that device changed).
  magicmind::Status EnsureHandle();

  magicmind::Status init_status_;
  cnnlHandle_t handle_ = nullptr;
  int handle_device_ = -1;              // device current when handle_ was created
  cnrtQueue_t bound_queue_ = nullptr;   // queue handle_ was last bound to (cnnlSetQueue)
  cnnlTensorDescriptor_t input_desc_ = nullptr;
  cnnlTensorDescriptor_t output_desc_ = nullptr;
  bool configured_ = false;
  std::vector<int64_t> shape_;
  uint64_t element_count_ = 0;
  std::vector<int> shifts_;
  std::vector<int> dims_;
  size_t workspace_size_ = 0;           // for the configured shape
  size_t reported_workspace_size_ = 0;  // last value returned by GetWorkspaceSize
};

class CnnlRollKernelFactory : public magicmind::IPluginKernelFactory {
 public:
  // `Create() override` as in the sample (same file); the destructor without `override`, as there.
  magicmind::IPluginKernel *Create() override { return new CnnlRollKernel(); }
  ~CnnlRollKernelFactory() {}
};

#endif  // SWIN_PLUGINS_ROLL_PLUGIN_ROLL_H_
