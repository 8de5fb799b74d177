// PyTorch side of the MagicMind plugin ops: `MyPlugin::CnnlRoll` and `MyPlugin::PluginReLU`.
//
// The lab replaces `torch.roll` and the `nn.ReLU` of `cpb_mlp` in the official SwinV2 source by these
// ops, so that `torch.jit.trace` records them as `MyPlugin::CnnlRoll` / `MyPlugin::PluginReLU` nodes
// and the MagicMind PyTorch parser maps those nodes onto the plugin ops of libmagicmind_plugin.so
// (same qualified names, same attribute names). On the host (CPU) they are plain `roll` and `relu`,
// so the traced model still runs on CPU and can be compared with the original model.
//
// Schema arguments are named after the MagicMind plugin attributes (`shifts`, `dims`; `Dim`,
// `FuncType`); the plugin's type attribute `T` comes from the tensor dtype.

#include <torch/library.h>
#include <ATen/ATen.h>

namespace {

// `MyPlugin::CnnlRoll` on CPU: exactly `torch.roll(input, shifts, dims)`.
at::Tensor cnnl_roll_cpu(const at::Tensor& input, at::IntArrayRef shifts, at::IntArrayRef dims) {
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kHalf,
              "MyPlugin::CnnlRoll: T must be float32 or float16 (the plugin's allowed types), got ",
              input.scalar_type());
  TORCH_CHECK(!shifts.empty() && shifts.size() == dims.size(),
              "MyPlugin::CnnlRoll: shifts and dims must be non-empty and of equal length, got ",
              shifts.size(), " and ", dims.size());
  return at::roll(input, shifts, dims);
}

// `MyPlugin::PluginReLU` on CPU: exactly `relu(input)`. `Dim` and `FuncType` are the BANG launch
// configuration of the MLU kernel (task dimensions and cnrtFunctionType_t); they do not change the
// result, but are validated the way the plugin validates them.
at::Tensor plugin_relu_cpu(const at::Tensor& input, at::IntArrayRef Dim, int64_t FuncType) {
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kHalf,
              "MyPlugin::PluginReLU: T must be float32 or float16, got ", input.scalar_type());
  TORCH_CHECK(Dim.size() == 3, "MyPlugin::PluginReLU: Dim must have 3 entries, got ", Dim.size());
  for (int64_t d : Dim) {
    TORCH_CHECK(d >= 1, "MyPlugin::PluginReLU: every Dim entry must be >= 1, got ", d);
  }
  TORCH_CHECK(FuncType == 1 || FuncType == 4 || FuncType == 8 || FuncType == 16,
              "MyPlugin::PluginReLU: FuncType must be 1 (BLOCK), 4 (UNION1), 8 (UNION2) or 16 (UNION4), got ",
              FuncType);
  // CPU relu has no Half kernel on torch 1.6 and 1.13 ("threshold_cpu" / "clamp_min_cpu" not implemented
  // for 'Half' on 1.6 and 1.13): go through float, which is exact for max(x, 0).
  if (input.scalar_type() == at::kHalf) {
    return at::relu(input.to(at::kFloat)).to(at::kHalf);
  }
  return at::relu(input);
}

}  // namespace

TORCH_LIBRARY(MyPlugin, m) {
  m.def("CnnlRoll(Tensor input, int[] shifts, int[] dims) -> Tensor");
  m.def("PluginReLU(Tensor input, int[] Dim=[1, 1, 1], int FuncType=1) -> Tensor");
}

TORCH_LIBRARY_IMPL(MyPlugin, CPU, m) {
  m.impl("CnnlRoll", cnnl_roll_cpu);
  m.impl("PluginReLU", plugin_relu_cpu);
}
