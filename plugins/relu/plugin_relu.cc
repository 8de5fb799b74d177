// MagicMind plugin op `MyPlugin::PluginReLU` (see plugin_relu.h).
#include "plugin_relu.h"

#include <iostream>
#include <mutex>
#include <string>

#include "../common/plugin_status.h"
#include "kernel_relu.h"
#include "relu_launch.h"

namespace {
constexpr const char *kOp = PLUGIN_RELU_OP_NAME;
}  // namespace

// 1. Register the op (name and attributes as in the lab).
namespace magicmind {

Status PluginReluDoShapeInfer(IShapeInferResource *context) {
  std::vector<int64_t> input_shape;
  SWIN_MM_CHECK(context->GetShape("input", &input_shape));
  SWIN_MM_CHECK(context->SetShape("output", input_shape));
  return Status::OK();
}

PLUGIN_REGISTER_OP(PLUGIN_RELU_OP_NAME)
    .Input("input")
    .TypeConstraint("T")
    .Output("output")
    .TypeConstraint("T")
    .Param("T")
    .Type("type")
    .Allowed({DataType::FLOAT32, DataType::FLOAT16})
    .Default(DataType::FLOAT32)
    .Param("Dim")
    .TypeList("int")
    .Default(std::vector<int64_t>{1, 1, 1})
    .Param("FuncType")
    .Type("int")
    .Default(1)
    .ShapeFn(PluginReluDoShapeInfer);

}  // namespace magicmind

// 2. The kernel.
magicmind::Status PluginReLUKernel::SetLocalVar(magicmind::INodeResource *context) {
  configured_ = false;
  element_count_ = 0;  // recomputed on every call: shapes are mutable
  shape_.clear();

  magicmind::DataType input_dtype, output_dtype;
  SWIN_MM_CHECK(context->GetTensorDataType("input", &input_dtype));
  SWIN_MM_CHECK(context->GetTensorDataType("output", &output_dtype));
  if (input_dtype != magicmind::DataType::FLOAT32 && input_dtype != magicmind::DataType::FLOAT16) {
    return swin_plugin::InvalidArgument(kOp, __func__, "T must be FLOAT32 or FLOAT16, got " +
                                                           magicmind::TypeEnumToString(input_dtype));
  }
  if (output_dtype != input_dtype) {
    return swin_plugin::InvalidArgument(kOp, __func__, "output type " + magicmind::TypeEnumToString(output_dtype) +
                                                           " differs from input type " +
                                                           magicmind::TypeEnumToString(input_dtype));
  }

  std::vector<int64_t> input_shape, output_shape;
  SWIN_MM_CHECK(context->GetTensorShape("input", &input_shape));
  SWIN_MM_CHECK(context->GetTensorShape("output", &output_shape));
  uint64_t input_count = 0, output_count = 0;
  if (!swin_plugin::ElementCount(input_shape, &input_count) ||
      !swin_plugin::ElementCount(output_shape, &output_count) || input_count != output_count) {
    return swin_plugin::InvalidArgument(kOp, __func__, "input shape " + swin_plugin::ShapeToString(input_shape) +
                                                           " and output shape " +
                                                           swin_plugin::ShapeToString(output_shape) +
                                                           " must be concrete and hold the same number of elements");
  }
  if (input_count > UINT32_MAX) {
    return swin_plugin::InvalidArgument(kOp, __func__, std::to_string(input_count) +
                                                           " elements exceed the kernel's uint32 count");
  }

  std::vector<int64_t> dim;
  int64_t func_type = 0;
  SWIN_MM_CHECK(context->GetAttr("Dim", &dim));
  SWIN_MM_CHECK(context->GetAttr("FuncType", &func_type));
  if (dim.size() != 3) {
    return swin_plugin::InvalidArgument(kOp, __func__, "Dim must have 3 entries, got " +
                                                           swin_plugin::ShapeToString(dim));
  }
  for (int64_t d : dim) {
    if (d < 1 || d > 65535) {
      return swin_plugin::InvalidArgument(kOp, __func__, "Dim entries must be in [1, 65535], got " +
                                                             swin_plugin::ShapeToString(dim));
    }
  }
  switch (func_type) {
    case 1:
      ktype_ = cnrtFuncTypeBlock;
      break;
    case 4:
      ktype_ = cnrtFuncTypeUnion1;
      break;
    case 8:
      ktype_ = cnrtFuncTypeUnion2;
      break;
    case 16:
      ktype_ = cnrtFuncTypeUnion4;
      break;
    default:
      return swin_plugin::InvalidArgument(kOp, __func__, "FuncType must be 1 (BLOCK), 4 (UNION1), 8 (UNION2) or "
                                                         "16 (UNION4), got " + std::to_string(func_type));
  }
  dim_.x = static_cast<unsigned int>(dim[0]);
  dim_.y = static_cast<unsigned int>(dim[1]);
  dim_.z = static_cast<unsigned int>(dim[2]);

  dtype_ = input_dtype;
  shape_ = input_shape;
  element_count_ = static_cast<uint32_t>(input_count);
  configured_ = true;
  static std::once_flag announced;
  std::call_once(announced, [] { std::cout << "plugin relu success" << std::endl; });
  return magicmind::Status::OK();
}

size_t PluginReLUKernel::GetWorkspaceSize(magicmind::INodeResource * /*context*/) { return 0; }

magicmind::Status PluginReLUKernel::Enqueue(magicmind::INodeResource *context) {
  std::vector<int64_t> input_shape;
  SWIN_MM_CHECK(context->GetTensorShape("input", &input_shape));
  if (!configured_ || input_shape != shape_) {
    SWIN_MM_CHECK(SetLocalVar(context));
  }
  if (element_count_ == 0) {
    return magicmind::Status::OK();
  }
  void *input = nullptr;
  void *output = nullptr;
  cnrtQueue_t queue = nullptr;
  SWIN_MM_CHECK(context->GetTensorDataPtr("input", &input));
  SWIN_MM_CHECK(context->GetTensorDataPtr("output", &output));
  SWIN_MM_CHECK(context->GetQueue(&queue));
  // UNIONn: Dim.x rounded up to whole clusters of this device (relu_launch.h). Queried here, on the
  // enqueueing thread, where the queue's device is current; once per kernel object.
  if (swin_plugin::UnionClusters(ktype_) != 0 && cores_per_cluster_ == 0) {
    unsigned clusters = 0;
    SWIN_CNRT_CHECK(kOp, swin_plugin::QueryClusterGeometry(&cores_per_cluster_, &clusters));
  }
  const cnrtDim3_t launch_dim = swin_plugin::UnionAlignedDim(dim_, ktype_, cores_per_cluster_);
  if (dtype_ == magicmind::DataType::FLOAT32) {
    SWIN_KERNEL_CHECK(kOp, ReluEnqueue(launch_dim, ktype_, queue, static_cast<float *>(input),
                                       static_cast<float *>(output), element_count_));
  } else {
    SWIN_KERNEL_CHECK(kOp, ReluEnqueue(launch_dim, ktype_, queue, static_cast<uint16_t *>(input),
                                       static_cast<uint16_t *>(output), element_count_));
  }
  return magicmind::Status::OK();
}

// 3. Register the kernel for the MLU.
namespace magicmind {
PLUGIN_REGISTER_KERNEL(CreatePluginKernelDefBuilder(PLUGIN_RELU_OP_NAME).DeviceType("MLU"), PluginReLUKernelFactory);
}  // namespace magicmind
