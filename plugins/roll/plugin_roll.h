// MagicMind plugin op `MyPlugin::CnnlRoll`: torch.roll on the MLU through CNNL's cnnlRoll.
//
// Op name and attributes are the lab's: input "input", output "output", type parameter T in
// {FLOAT32, FLOAT16}, int lists `shifts` and `dims` (same length, like torch.roll).
// Fixed against the lab's version: the CNNL handle and both tensor descriptors are created once per
// kernel object and destroyed in the destructor; GetWorkspaceSize reports cnnlGetRollWorkspaceSize
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
  ~CnnlRollKernel() override;
  CnnlRollKernel(const CnnlRollKernel &) = delete;
  CnnlRollKernel &operator=(const CnnlRollKernel &) = delete;

  // Reads dtypes, shapes, `shifts` and `dims`, validates them, sets the CNNL descriptors and
  // queries the roll workspace for this shape.
  magicmind::Status SetLocalVar(magicmind::INodeResource *context) override;
  // cnnlGetRollWorkspaceSize for the current shape (0 if the configuration failed).
  size_t GetWorkspaceSize(magicmind::INodeResource *context) override;
  magicmind::Status Enqueue(magicmind::INodeResource *context) override;

 private:
  magicmind::Status init_status_;
  cnnlHandle_t handle_ = nullptr;
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
  magicmind::IPluginKernel *Create() override { return new CnnlRollKernel(); }
  ~CnnlRollKernelFactory() override {}
};

#endif  // SWIN_PLUGINS_ROLL_PLUGIN_ROLL_H_
