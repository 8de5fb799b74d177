// MagicMind plugin op `MyPlugin::CnnlRoll` (see plugin_roll.h).
#include "plugin_roll.h"

#include <climits>
#include <iostream>
#include <mutex>
#include <string>

#include "../common/plugin_status.h"

namespace {

constexpr const char *kOp = CNNL_ROLL_OP_NAME;

bool ToCnnlDataType(magicmind::DataType dtype, cnnlDataType_t *out) {
  switch (dtype) {
    case magicmind::DataType::FLOAT32:
      *out = CNNL_DTYPE_FLOAT;
      return true;
    case magicmind::DataType::FLOAT16:
      *out = CNNL_DTYPE_HALF;
      return true;
    default:
      return false;
  }
}

}  // namespace

// 1. Register the op (name and attributes as in the lab).
namespace magicmind {

Status CnnlRollDoShapeInfer(IShapeInferResource *context) {
  std::vector<int64_t> input_shape;
  SWIN_MM_CHECK(context->GetShape("input", &input_shape));
  SWIN_MM_CHECK(context->SetShape("output", input_shape));
  return Status::OK();
}

PLUGIN_REGISTER_OP(CNNL_ROLL_OP_NAME)
    .Input("input")
    .TypeConstraint("T")
    .Output("output")
    .TypeConstraint("T")
    .Param("T")
    .Type("type")
    .Allowed({DataType::FLOAT32, DataType::FLOAT16})
    .Default(DataType::FLOAT32)
    .Param("shifts")
    .TypeList("int")
    .Param("dims")
    .TypeList("int")
    .ShapeFn(CnnlRollDoShapeInfer);

}  // namespace magicmind

// 2. The kernel.
// Descriptors are host-side objects: created with the kernel. The CNNL handle is not (EnsureHandle).
CnnlRollKernel::CnnlRollKernel() : init_status_(magicmind::Status::OK()) {
  cnnlStatus_t status = cnnlCreateTensorDescriptor(&input_desc_);
  if (status == CNNL_STATUS_SUCCESS) status = cnnlCreateTensorDescriptor(&output_desc_);
  if (status != CNNL_STATUS_SUCCESS) {
    init_status_ = swin_plugin::Fail(kOp, __func__, std::string("creating the CNNL tensor descriptors failed: ") +
                                                        cnnlGetErrorString(status));
  }
}

CnnlRollKernel::~CnnlRollKernel() {
  // Destructors cannot report errors; the calls are still made in reverse order of creation.
  if (handle_ != nullptr) cnnlDestroy(handle_);
  if (output_desc_ != nullptr) cnnlDestroyTensorDescriptor(output_desc_);
  if (input_desc_ != nullptr) cnnlDestroyTensorDescriptor(input_desc_);
}

// The CNNL handle is created lazily, on the first thread that needs it -- the enqueueing thread,
// where MagicMind has made the queue's device current -- as Cambricon's MagicMind plugin sample
// does (the handle is created where Enqueue runs). It belongs to the device that was current then:
// if a later call finds another current device, the handle is destroyed and created again there,
// and Enqueue binds it to the call's queue (cnnlSetQueue) whenever the queue changes.
magicmind::Status CnnlRollKernel::EnsureHandle() {
  int device = -1;
  SWIN_CNRT_CHECK(kOp, cnrtGetDevice(&device));
  if (handle_ != nullptr && device == handle_device_) {
    return magicmind::Status::OK();
  }
  if (handle_ != nullptr) {
    cnnlHandle_t old = handle_;
    handle_ = nullptr;
    bound_queue_ = nullptr;
    SWIN_CNNL_CHECK(kOp, cnnlDestroy(old));
  }
  SWIN_CNNL_CHECK(kOp, cnnlCreate(&handle_));
  handle_device_ = device;
  return magicmind::Status::OK();
}

magicmind::Status CnnlRollKernel::SetLocalVar(magicmind::INodeResource *context) {
  configured_ = false;
  element_count_ = 0;  // recomputed on every call: shapes are mutable
  shape_.clear();
  shifts_.clear();
  dims_.clear();
  workspace_size_ = 0;
  SWIN_MM_CHECK(init_status_);

  magicmind::DataType input_dtype, output_dtype;
  SWIN_MM_CHECK(context->GetTensorDataType("input", &input_dtype));
  SWIN_MM_CHECK(context->GetTensorDataType("output", &output_dtype));
  cnnlDataType_t cnnl_dtype;
  if (!ToCnnlDataType(input_dtype, &cnnl_dtype)) {
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
  if (input_shape != output_shape) {
    return swin_plugin::InvalidArgument(kOp, __func__, "output shape " + swin_plugin::ShapeToString(output_shape) +
                                                           " differs from input shape " +
                                                           swin_plugin::ShapeToString(input_shape));
  }
  const int64_t rank = static_cast<int64_t>(input_shape.size());
  if (rank < 1) {
    return swin_plugin::InvalidArgument(kOp, __func__, "input must have at least one dimension");
  }
  uint64_t count = 0;
  if (!swin_plugin::ElementCount(input_shape, &count)) {
    return swin_plugin::InvalidArgument(kOp, __func__, "input shape " + swin_plugin::ShapeToString(input_shape) +
                                                           " is not a concrete shape");
  }
  std::vector<int> cnnl_shape;
  for (int64_t d : input_shape) {
    if (d > INT_MAX) {
      return swin_plugin::InvalidArgument(kOp, __func__, "dimension " + std::to_string(d) + " exceeds INT_MAX");
    }
    cnnl_shape.push_back(static_cast<int>(d));
  }

  std::vector<int64_t> shifts, dims;
  SWIN_MM_CHECK(context->GetAttr("shifts", &shifts));
  SWIN_MM_CHECK(context->GetAttr("dims", &dims));
  if (shifts.empty() || shifts.size() != dims.size()) {
    return swin_plugin::InvalidArgument(kOp, __func__, "shifts " + swin_plugin::ShapeToString(shifts) +
                                                           " and dims " + swin_plugin::ShapeToString(dims) +
                                                           " must be non-empty and of equal length");
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t dim = dims[i] < 0 ? dims[i] + rank : dims[i];
    if (dim < 0 || dim >= rank) {
      return swin_plugin::InvalidArgument(kOp, __func__, "dims[" + std::to_string(i) + "] = " +
                                                             std::to_string(dims[i]) + " is out of range for rank " +
                                                             std::to_string(rank));
    }
    // Reduce the shift modulo the dimension so that it always fits an int.
    const int64_t extent = input_shape[dim];
    const int64_t shift = extent > 0 ? ((shifts[i] % extent) + extent) % extent : 0;
    dims_.push_back(static_cast<int>(dim));
    shifts_.push_back(static_cast<int>(shift));
  }

  // Shapes are mutable, so descriptors are set again on every SetLocalVar: cnnl.h says
  // cnnlSetTensorDescriptor "cannot be called continuously" (memory leaks) without
  // cnnlResetTensorDescriptor in between; resetting a fresh descriptor is harmless.
  SWIN_CNNL_CHECK(kOp, cnnlResetTensorDescriptor(input_desc_));
  SWIN_CNNL_CHECK(kOp, cnnlSetTensorDescriptor(input_desc_, CNNL_LAYOUT_ARRAY, cnnl_dtype,
                                               static_cast<int>(rank), cnnl_shape.data()));
  SWIN_CNNL_CHECK(kOp, cnnlResetTensorDescriptor(output_desc_));
  SWIN_CNNL_CHECK(kOp, cnnlSetTensorDescriptor(output_desc_, CNNL_LAYOUT_ARRAY, cnnl_dtype,
                                               static_cast<int>(rank), cnnl_shape.data()));
  SWIN_MM_CHECK(EnsureHandle());
  SWIN_CNNL_CHECK(kOp, cnnlGetRollWorkspaceSize(handle_, input_desc_, &workspace_size_));

  shape_ = input_shape;
  element_count_ = count;
  configured_ = true;
  static std::once_flag announced;
  std::call_once(announced, [] { std::cout << "plugin roll success" << std::endl; });
  return magicmind::Status::OK();
}

size_t CnnlRollKernel::GetWorkspaceSize(magicmind::INodeResource *context) {
  if (!configured_ && !SetLocalVar(context).ok()) {
    return 0;  // Enqueue reports the configuration error
  }
  reported_workspace_size_ = workspace_size_;
  return workspace_size_;
}

magicmind::Status CnnlRollKernel::Enqueue(magicmind::INodeResource *context) {
  std::vector<int64_t> input_shape;
  SWIN_MM_CHECK(context->GetTensorShape("input", &input_shape));
  if (!configured_ || input_shape != shape_) {
    SWIN_MM_CHECK(SetLocalVar(context));
    if (workspace_size_ > reported_workspace_size_) {
      return swin_plugin::Fail(kOp, __func__, "shape changed to " + swin_plugin::ShapeToString(input_shape) +
                                                  " without GetWorkspaceSize: roll needs " +
                                                  std::to_string(workspace_size_) + " workspace bytes, " +
                                                  std::to_string(reported_workspace_size_) + " were reserved");
    }
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
  void *workspace = nullptr;
  if (workspace_size_ > 0) {
    SWIN_MM_CHECK(context->GetWorkspace(&workspace));
    if (workspace == nullptr) {
      return swin_plugin::Fail(kOp, __func__, "GetWorkspace returned null for " + std::to_string(workspace_size_) +
                                                  " bytes");
    }
  }
  SWIN_MM_CHECK(EnsureHandle());
  if (queue != bound_queue_) {
    SWIN_CNNL_CHECK(kOp, cnnlSetQueue(handle_, queue));
    bound_queue_ = queue;
  }
  SWIN_CNNL_CHECK(kOp, cnnlRoll(handle_, input_desc_, input, shifts_.data(), static_cast<int>(shifts_.size()),
                                dims_.data(), static_cast<int>(dims_.size()), workspace, workspace_size_,
                                output_desc_, output));
  return magicmind::Status::OK();
}

// 3. Register the kernel for the MLU.
namespace magicmind {
PLUGIN_REGISTER_KERNEL(CreatePluginKernelDefBuilder(CNNL_ROLL_OP_NAME).DeviceType("MLU"), CnnlRollKernelFactory);
}  // namespace magicmind
