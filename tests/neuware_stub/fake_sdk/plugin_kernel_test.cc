// TEST-ONLY: the plugin kernels' SetLocalVar / GetWorkspaceSize / Enqueue driven the way MagicMind
// would drive them, against the fake SDK (fake CNRT/CNNL/MagicMind, the BANG kernel on emulated
// cores). Built and run by build_fake_sdk.sh. Checks:
//   * CnnlRoll: the result equals a host roll; a second shape goes through SetLocalVar again (the
//     fake CNNL rejects a cnnlSetTensorDescriptor without cnnlResetTensorDescriptor, so a missing
//     reset fails here); the CNNL handle is created on the thread that enqueues (the kernel object
//     is made on a thread without a current device, so creating it there would fail in
//     cnrtGetDevice), and a different queue is bound before use;
//   * PluginReLU: FuncType 4 (UNION1) with the lab's default Dim {1,1,1} launches with Dim.x rounded
//     up to the fake device's 4 cores per cluster (the emulated launch aborts otherwise), and the
//     result equals max(x, 0).
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "cnrt.h"
#include "mm_plugin.h"
#include "plugin_relu.h"
#include "plugin_roll.h"

namespace {

int g_failures = 0;
void Expect(bool ok, const std::string &what) {
  std::printf("%s  %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++g_failures;
}

class FakeNode : public magicmind::INodeResource {
 public:
  magicmind::DataType dtype = magicmind::DataType::FLOAT32;
  std::vector<int64_t> shape;
  std::map<std::string, int64_t> int_attrs;
  std::map<std::string, std::vector<int64_t>> list_attrs;
  void *input = nullptr;
  void *output = nullptr;
  void *workspace = nullptr;
  cnrtQueue_t queue = nullptr;

  magicmind::Status GetTensorDataType(const std::string &, magicmind::DataType *d) override {
    *d = dtype;
    return magicmind::Status::OK();
  }
  magicmind::Status GetTensorShape(const std::string &, std::vector<int64_t> *s) override {
    *s = shape;
    return magicmind::Status::OK();
  }
  magicmind::Status GetAttr(const std::string &name, int64_t *v) override {
    if (!int_attrs.count(name)) return magicmind::Status(magicmind::error::Code::NOT_FOUND, name);
    *v = int_attrs[name];
    return magicmind::Status::OK();
  }
  magicmind::Status GetAttr(const std::string &name, std::vector<int64_t> *v) override {
    if (!list_attrs.count(name)) return magicmind::Status(magicmind::error::Code::NOT_FOUND, name);
    *v = list_attrs[name];
    return magicmind::Status::OK();
  }
  magicmind::Status GetTensorDataPtr(const std::string &name, void **p) override {
    *p = name == "input" ? input : output;
    return magicmind::Status::OK();
  }
  magicmind::Status GetQueue(cnrtQueue_t *q) override {
    *q = queue;
    return magicmind::Status::OK();
  }
  magicmind::Status GetWorkspace(void **w) override {
    *w = workspace;
    return magicmind::Status::OK();
  }
};

std::vector<float> HostRoll(const std::vector<float> &x, const std::vector<int64_t> &shape, int64_t shift,
                            int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= shape[i];
  for (size_t i = dim + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t n = shape[dim];
  std::vector<float> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = 0; i < inner; ++i) y[(o * n + ((k + shift) % n + n) % n) * inner + i] = x[(o * n + k) * inner + i];
  return y;
}

// One roll through the kernel on the calling thread (device already set): returns whether the
// result equals the host reference.
bool RunRoll(CnnlRollKernel *kernel, FakeNode *node, const std::vector<int64_t> &shape, int64_t shift,
             std::string *why) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  std::vector<float> x(count), y(count, -1.0f);
  for (size_t i = 0; i < count; ++i) x[i] = static_cast<float>(i);
  node->shape = shape;
  node->list_attrs["shifts"] = {shift};
  node->list_attrs["dims"] = {1};
  if (cnrtMalloc(&node->input, count * 4) != cnrtSuccess || cnrtMalloc(&node->output, count * 4) != cnrtSuccess) {
    *why = "cnrtMalloc";
    return false;
  }
  cnrtMemcpy(node->input, x.data(), count * 4, CNRT_MEM_TRANS_DIR_HOST2DEV);
  magicmind::Status s = kernel->SetLocalVar(node);
  const size_t ws = s.ok() ? kernel->GetWorkspaceSize(node) : 0;
  if (s.ok() && ws > 0 && cnrtMalloc(&node->workspace, ws) != cnrtSuccess) s = magicmind::Status(magicmind::error::Code::INTERNAL, "workspace");
  if (s.ok()) s = kernel->Enqueue(node);
  bool ok = s.ok();
  if (ok) {
    cnrtMemcpy(y.data(), node->output, count * 4, CNRT_MEM_TRANS_DIR_DEV2HOST);
    ok = y == HostRoll(x, shape, shift, 1);
    if (!ok) *why = "result differs from the host roll";
  } else {
    *why = s.ToString();
  }
  cnrtFree(node->input);
  cnrtFree(node->output);
  if (node->workspace) cnrtFree(node->workspace);
  node->workspace = nullptr;
  return ok;
}

}  // namespace

int main() {
  // Kernel objects made on this thread, which never calls cnrtSetDevice (the fake CNRT then fails
  // every device call here, cnrtGetDevice included).
  CnnlRollKernel roll;
  PluginReLUKernel relu;
  std::thread worker([&] {
    Expect(cnrtSetDevice(0) == cnrtSuccess, "cnrtSetDevice(0) on the enqueueing thread");
    cnrtQueue_t q1 = nullptr, q2 = nullptr;
    cnrtQueueCreate(&q1);
    cnrtQueueCreate(&q2);
    FakeNode node;
    node.queue = q1;
    std::string why;
    Expect(RunRoll(&roll, &node, {2, 9, 7, 5}, -3, &why), "CnnlRoll [2,9,7,5] shift -3 dim 1 " + why);
    why.clear();
    node.queue = q2;
    Expect(RunRoll(&roll, &node, {3, 4, 6}, 2, &why),
           "CnnlRoll again with a new shape [3,4,6] and another queue (descriptors reset, queue rebound) " + why);

    const uint32_t count = 1000;
    std::vector<float> x(count), y(count, -7.0f);
    for (uint32_t i = 0; i < count; ++i) x[i] = static_cast<float>(static_cast<int>(i % 13) - 6);
    FakeNode rn;
    rn.shape = {10, 100};
    rn.queue = q1;
    rn.list_attrs["Dim"] = {1, 1, 1};
    rn.int_attrs["FuncType"] = 4;
    cnrtMalloc(&rn.input, count * 4);
    cnrtMalloc(&rn.output, count * 4);
    cnrtMemcpy(rn.input, x.data(), count * 4, CNRT_MEM_TRANS_DIR_HOST2DEV);
    magicmind::Status s = relu.SetLocalVar(&rn);
    if (s.ok()) s = relu.Enqueue(&rn);
    Expect(s.ok(), "PluginReLU UNION1 with Dim {1,1,1}: Enqueue " + s.ToString());
    cnrtMemcpy(y.data(), rn.output, count * 4, CNRT_MEM_TRANS_DIR_DEV2HOST);
    bool same = true;
    for (uint32_t i = 0; i < count; ++i) same &= y[i] == (x[i] > 0 ? x[i] : 0.0f);
    Expect(same, "PluginReLU result equals max(x, 0)");
    cnrtFree(rn.input);
    cnrtFree(rn.output);
    cnrtQueueDestroy(q1);
    cnrtQueueDestroy(q2);
  });
  worker.join();
  std::printf("plugin kernels on the fake SDK: %d failure(s)\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
