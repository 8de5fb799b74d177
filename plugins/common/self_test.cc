// swin_plugin_self_test: run each plugin kernel once on the MLU and compare with a host reference.
#include "self_test.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../relu/kernel_relu.h"
#include "../relu/relu_launch.h"
#include "cnnl.h"
#include "cnrt.h"

namespace {

// Device buffers and the queue, released in reverse order whatever happens.
struct DeviceScope {
  std::vector<void *> buffers;
  cnrtQueue_t queue = nullptr;
  cnnlHandle_t handle = nullptr;
  std::vector<cnnlTensorDescriptor_t> descs;
  ~DeviceScope() {
    for (cnnlTensorDescriptor_t d : descs) cnnlDestroyTensorDescriptor(d);
    if (handle != nullptr) cnnlDestroy(handle);
    if (queue != nullptr) cnrtQueueDestroy(queue);
    for (void *p : buffers) cnrtFree(p);
  }
  void *Malloc(size_t bytes, std::string *error) {
    void *p = nullptr;
    cnrtRet_t ret = cnrtMalloc(&p, bytes);
    if (ret != cnrtSuccess) {
      *error = std::string("cnrtMalloc(") + std::to_string(bytes) + ") failed: " + cnrtGetErrorStr(ret);
      return nullptr;
    }
    buffers.push_back(p);
    return p;
  }
};

#define SELF_TEST_CNRT(call)                                                          \
  do {                                                                                \
    cnrtRet_t ret_ = (call);                                                          \
    if (ret_ != cnrtSuccess) {                                                        \
      *message = std::string(#call " failed: ") + cnrtGetErrorStr(ret_);              \
      return 2;                                                                       \
    }                                                                                 \
  } while (0)

#define SELF_TEST_CNNL(call)                                                          \
  do {                                                                                \
    cnnlStatus_t ret_ = (call);                                                       \
    if (ret_ != CNNL_STATUS_SUCCESS) {                                                \
      *message = std::string(#call " failed: ") + cnnlGetErrorString(ret_);           \
      return 2;                                                                       \
    }                                                                                 \
  } while (0)

// ReLU on 115233 fp32 elements (the 1x15x15x512 CPB table plus an odd tail), UNION1 on one cluster
// (Dim.x = the device's cores per cluster).
int SelfTestRelu(std::string *message) {
  const uint32_t count = 115233;
  std::vector<float> host_in(count), host_out(count, -1.0f);
  for (uint32_t i = 0; i < count; ++i) host_in[i] = static_cast<float>(static_cast<int>(i % 97) - 48) * 0.25f;
  DeviceScope scope;
  std::string error;
  void *dev_in = scope.Malloc(count * sizeof(float), &error);
  void *dev_out = dev_in ? scope.Malloc(count * sizeof(float), &error) : nullptr;
  if (dev_out == nullptr) {
    *message = error;
    return 2;
  }
  SELF_TEST_CNRT(cnrtQueueCreate(&scope.queue));
  SELF_TEST_CNRT(cnrtMemcpy(dev_in, host_in.data(), count * sizeof(float), CNRT_MEM_TRANS_DIR_HOST2DEV));
  unsigned cores_per_cluster = 0, clusters = 0;
  SELF_TEST_CNRT(swin_plugin::QueryClusterGeometry(&cores_per_cluster, &clusters));
  const cnrtDim3_t dim = swin_plugin::UnionAlignedDim({1, 1, 1}, cnrtFuncTypeUnion1, cores_per_cluster);
  (void)cnrtGetLastError();  // clear, then launch and peek (mlu-ops core/logging.h KERNEL_CHECK)
  ReluEnqueue(dim, cnrtFuncTypeUnion1, scope.queue, static_cast<float *>(dev_in), static_cast<float *>(dev_out),
              count);
  SELF_TEST_CNRT(cnrtPeekAtLastError());
  SELF_TEST_CNRT(cnrtQueueSync(scope.queue));
  SELF_TEST_CNRT(cnrtMemcpy(host_out.data(), dev_out, count * sizeof(float), CNRT_MEM_TRANS_DIR_DEV2HOST));
  for (uint32_t i = 0; i < count; ++i) {
    const float expected = host_in[i] > 0.0f ? host_in[i] : 0.0f;
    if (host_out[i] != expected) {
      *message = "element " + std::to_string(i) + " is " + std::to_string(host_out[i]) + ", expected " +
                 std::to_string(expected);
      return 1;
    }
  }
  *message = "BANG ReLU, UNION1 {" + std::to_string(dim.x) + ",1,1} (" + std::to_string(cores_per_cluster) +
             " cores per cluster, " + std::to_string(clusters) + " clusters), 115233 fp32 elements equal the host "
             "reference";
  return 0;
}

// Roll of a [2, 9, 7, 5] fp32 tensor by shifts (-3, 4) over dims (1, 2), as in a Swin block.
int SelfTestRoll(std::string *message) {
  const int shape[4] = {2, 9, 7, 5};
  const int shifts[2] = {-3, 4};
  const int dims[2] = {1, 2};
  const size_t count = 2 * 9 * 7 * 5;
  std::vector<float> host_in(count), host_out(count, -1.0f), expected(count);
  for (size_t i = 0; i < count; ++i) host_in[i] = static_cast<float>(i);
  for (int a = 0; a < shape[0]; ++a)
    for (int b = 0; b < shape[1]; ++b)
      for (int c = 0; c < shape[2]; ++c)
        for (int d = 0; d < shape[3]; ++d) {
          const int b_to = ((b + shifts[0]) % shape[1] + shape[1]) % shape[1];
          const int c_to = ((c + shifts[1]) % shape[2] + shape[2]) % shape[2];
          expected[((a * shape[1] + b_to) * shape[2] + c_to) * shape[3] + d] =
              host_in[((a * shape[1] + b) * shape[2] + c) * shape[3] + d];
        }
  DeviceScope scope;
  std::string error;
  void *dev_in = scope.Malloc(count * sizeof(float), &error);
  void *dev_out = dev_in ? scope.Malloc(count * sizeof(float), &error) : nullptr;
  if (dev_out == nullptr) {
    *message = error;
    return 2;
  }
  SELF_TEST_CNRT(cnrtQueueCreate(&scope.queue));
  SELF_TEST_CNNL(cnnlCreate(&scope.handle));
  SELF_TEST_CNNL(cnnlSetQueue(scope.handle, scope.queue));
  cnnlTensorDescriptor_t in_desc = nullptr, out_desc = nullptr;
  SELF_TEST_CNNL(cnnlCreateTensorDescriptor(&in_desc));
  scope.descs.push_back(in_desc);
  SELF_TEST_CNNL(cnnlCreateTensorDescriptor(&out_desc));
  scope.descs.push_back(out_desc);
  SELF_TEST_CNNL(cnnlSetTensorDescriptor(in_desc, CNNL_LAYOUT_ARRAY, CNNL_DTYPE_FLOAT, 4, shape));
  SELF_TEST_CNNL(cnnlSetTensorDescriptor(out_desc, CNNL_LAYOUT_ARRAY, CNNL_DTYPE_FLOAT, 4, shape));
  size_t workspace_size = 0;
  SELF_TEST_CNNL(cnnlGetRollWorkspaceSize(scope.handle, in_desc, &workspace_size));
  void *workspace = nullptr;
  if (workspace_size > 0 && (workspace = scope.Malloc(workspace_size, &error)) == nullptr) {
    *message = error;
    return 2;
  }
  SELF_TEST_CNRT(cnrtMemcpy(dev_in, host_in.data(), count * sizeof(float), CNRT_MEM_TRANS_DIR_HOST2DEV));
  SELF_TEST_CNNL(cnnlRoll(scope.handle, in_desc, dev_in, shifts, 2, dims, 2, workspace, workspace_size, out_desc,
                          dev_out));
  SELF_TEST_CNRT(cnrtQueueSync(scope.queue));
  SELF_TEST_CNRT(cnrtMemcpy(host_out.data(), dev_out, count * sizeof(float), CNRT_MEM_TRANS_DIR_DEV2HOST));
  for (size_t i = 0; i < count; ++i) {
    if (host_out[i] != expected[i]) {
      *message = "element " + std::to_string(i) + " is " + std::to_string(host_out[i]) + ", expected " +
                 std::to_string(expected[i]);
      return 1;
    }
  }
  *message = "cnnlRoll [2,9,7,5] fp32, shifts (-3,4) dims (1,2), workspace " + std::to_string(workspace_size) +
             " bytes, equals the host reference";
  return 0;
}

}  // namespace

extern "C" int32_t swin_plugin_self_test(const char *op_name, char *message, size_t message_len) {
  std::string text;
  int32_t result = -1;
  try {
    if (op_name != nullptr && std::strcmp(op_name, "MyPlugin::PluginReLU") == 0) {
      result = SelfTestRelu(&text);
    } else if (op_name != nullptr && std::strcmp(op_name, "MyPlugin::CnnlRoll") == 0) {
      result = SelfTestRoll(&text);
    } else {
      text = std::string("unknown op ") + (op_name ? op_name : "(null)");
    }
  } catch (const std::exception &e) {
    text = std::string("C++ exception: ") + e.what();
    result = 2;
  }
  if (message != nullptr && message_len > 0) {
    std::snprintf(message, message_len, "%s", text.c_str());
  }
  return result;
}
