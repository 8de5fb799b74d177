#!/usr/bin/env python3
"""Generate the MagicMind model of SwinV2 with the MyPlugin ops (the Cambricon lab's step 4).

Pipeline:
  1. patch the official ``swin_transformer_v2.py`` (path given with --swin-source, never vendored)
     with the lab's changes (models/swin_patch.py): cpb_mlp ReLU -> MyPlugin::PluginReLU,
     torch.roll -> MyPlugin::CnnlRoll, AdaptiveAvgPool1d -> AdaptiveAvgPool2d, plus a batch-agnostic
     window_reverse so that the traced graph keeps a mutable batch;
  2. load the PyTorch-side op library (plugins/torch, built on the fly if missing) so that
     ``torch.ops.MyPlugin.*`` exist, build the patched model, load the official checkpoint;
  3. ``torch.jit.trace`` it with a [1, 3, S, S] float32 input (NCHW, normalized on the host);
  4. with ``magicmind`` importable (a Cambricon host): load the MagicMind plugin libraries, parse the
     TorchScript file, build for ``mtp_372`` with ``force_float32`` and a mutable batch dimension
     (dim_range [1..max_batch]), serialize, and (by default) run it once on the device against the
     CPU reference.

Versions: the PyTorch that traces must be one the MagicMind PyTorch parser reads. The lab's stack is
PyTorch 1.6 + MagicMind 0.14, Cambricon's model zoo pins 1.13 for its own exports; those two are
accepted for building, anything else only with --allow-untested-torch (``--check`` runs on any
torch >= 1.6, today's included). The script avoids APIs newer than 1.6 on the tracing path
(``torch.load(weights_only=...)`` only where it exists; the timm fallback takes
``torch.nn.init.trunc_normal_``, present in 1.6.0, or its own; no OpOverload ``.default``) and needs
Python >= 3.7. Run with torch 1.6.0 (Python 3.7, 3.8), 1.13.1 (Python 3.8, 3.11) and 2.15.0
(Python 3.11): models/README.md, models/check_torch_versions.sh.

The PyTorch-side ops are registered once per process: ``TORCH_LIBRARY(MyPlugin, ...)`` cannot run
twice. A ``--plugin-lib`` that already contains them (the lab's ``*_with_pytorch.so``) is used as the
op library instead of --torch-ops-lib; giving both is refused.

``--check`` runs anywhere (no MagicMind): patched+traced model vs the original on CPU, with the
official checkpoint or seeded random weights; logits must agree within 1e-5, the traced graph must
contain every expected MyPlugin::CnnlRoll / MyPlugin::PluginReLU node and no aten::roll / aten::relu;
sensitivity controls show that disabling the roll or the ReLU in the original moves the logits far
more than the tolerance (so a wrong plugin op could not pass).

Swin V1 (``--model swin_*`` or a converted V1 file) patches ``models/swin_transformer.py`` the
same way minus the ReLU: V1's attention has a learned bias table, no MLP, so it needs the roll
plugin only. ``--checkpoint X.safetensors`` takes what ``swin-serve convert`` writes from any source
it reads (official, timm, Hugging Face): the architecture comes from the file's metadata, and the
buffers convert leaves out (relative position index/coordinates, attention masks) are computed by
the model itself.

Examples:
  python models/generate_magicmind.py --swin-source ~/Swin-Transformer --check
  swin-serve convert ./swin-tiny-hf/ swin_tiny.safetensors
  python models/generate_magicmind.py --swin-source ~/Swin-Transformer --check --checkpoint swin_tiny.safetensors
  python models/generate_magicmind.py --swin-source ~/Swin-Transformer \\
      --checkpoint swinv2_tiny_patch4_window8_256.pth \\
      --plugin-lib plugins/build/libmagicmind_plugin.so --out swinv2_tiny_myplugin.magicmind
"""

import argparse
import copy
import importlib.util
import inspect
import json
import sys
import time
import types
from pathlib import Path
from typing import List, Optional, Tuple

if sys.version_info < (3, 7):
    sys.exit("generate_magicmind.py needs Python >= 3.7 (found %d.%d)" % sys.version_info[:2])

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "plugins" / "torch"))

import swin_patch  # noqa: E402

#: Official SwinV2 configurations at 256x256 (configs/swinv2/*.yaml of the official repository),
#: and Swin V1 ones (configs/swin/*.yaml); a ``.safetensors`` written by ``swin-serve convert``
#: carries its own configuration instead.
MODEL_CONFIGS = {
    "swinv2_tiny_patch4_window8_256": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=8),
    "swinv2_tiny_patch4_window16_256": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=16),
    "swinv2_small_patch4_window8_256": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=8),
    "swinv2_small_patch4_window16_256": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=16),
    "swinv2_base_patch4_window8_256": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=8),
    "swinv2_base_patch4_window16_256": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=16),
}
MODEL_CONFIGS_V1 = {
    "swin_tiny_patch4_window7_224": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7),
    "swin_small_patch4_window7_224": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7),
    "swin_base_patch4_window7_224": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=7),
}
#: The ``__metadata__`` ``format`` of a ``.safetensors`` written by ``swin-serve convert``.
SWIN_SERVE_FORMAT = "swin-serve"
IMG_SIZE = 256
NUM_CLASSES = 1000
TOLERANCE = 1e-5

#: torch versions whose TorchScript the MagicMind PyTorch parser is known to read: the lab's stack
#: (PyTorch 1.6 + MagicMind 0.14) and the version Cambricon's model zoo pins (1.13).
MAGICMIND_TESTED_TORCH = ((1, 6), (1, 13))
#: Oldest torch the script itself runs on (TORCH_LIBRARY and the op-library build need 1.6).
MIN_TORCH = (1, 6)


def log(msg: str) -> None:
    print(msg, flush=True)


def torch_version_tuple(version: str) -> Tuple[int, int]:
    """(major, minor) of a torch version string such as '1.6.0', '1.13.1+cpu' or '2.5.0a0+git1'."""
    parts = version.split("+")[0].split(".")
    digits = lambda p: int("".join(c for c in p if c.isdigit()) or 0)  # noqa: E731
    return digits(parts[0]), digits(parts[1]) if len(parts) > 1 else 0


def check_torch_version(version: str, building: bool, allow_untested: bool) -> Optional[str]:
    """None when `version` may be used, else the error to print. Building a MagicMind model needs a
    torch whose TorchScript the parser reads (MAGICMIND_TESTED_TORCH); --check only needs MIN_TORCH."""
    have = torch_version_tuple(version)
    tested = " or ".join("%d.%d" % v for v in MAGICMIND_TESTED_TORCH)
    if have < MIN_TORCH:
        return "torch %s is too old: this script needs torch >= %d.%d" % ((version,) + MIN_TORCH)
    if building and have not in MAGICMIND_TESTED_TORCH and not allow_untested:
        return ("torch %s: the TorchScript this traces is parsed by MagicMind's PyTorch parser, which is known to "
                "read models traced with torch %s (the lab: PyTorch 1.6 + MagicMind 0.14; Cambricon's model zoo: "
                "1.13). Trace with one of those (e.g. the Cambricon PyTorch 1.6 container), or pass "
                "--allow-untested-torch to try anyway (--check runs on any torch >= %d.%d)."
                % ((version, tested) + MIN_TORCH))
    return None


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """In-place truncated normal init (inverse-CDF sampling, like torch.nn.init.trunc_normal_), for a
    torch without that function. torch 1.6.0 has it (checked), so this only runs on a custom build
    that lacks it; it only initializes weights that the checkpoint then replaces."""
    import math

    import torch

    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0)).add_(mean)
        tensor.clamp_(min=a, max=b)
    return tensor


def install_timm_fallback() -> Optional[str]:
    """The official file imports DropPath, to_2tuple and trunc_normal_ from timm.models.layers. If that
    import fails, provide minimal equivalents (DropPath is the identity in eval mode, which is all we
    run; trunc_normal_ is torch.nn.init's, or the one above) and return why; None when timm works.

    Any exception counts, not only ImportError: a recent timm on an old torch fails while importing
    (timm 0.9.16 on torch 1.6: AttributeError, torch.nn has no SiLU), and timm 0.4.12 (the version
    the official repository names) needs Pillow."""
    try:
        import timm.models.layers  # noqa: F401
        return None
    except Exception as err:  # noqa: BLE001 -- see the docstring
        reason = "%s: %s" % (type(err).__name__, str(err).splitlines()[0] if str(err) else "")
    import torch

    class DropPath(torch.nn.Module):
        def __init__(self, drop_prob=0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1.0 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
            return x * mask / keep

    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple = DropPath, to_2tuple
    layers.trunc_normal_ = getattr(torch.nn.init, "trunc_normal_", trunc_normal_)
    timm, models = types.ModuleType("timm"), types.ModuleType("timm.models")
    timm.models, models.layers = models, layers
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
    return reason


def import_file(module_name: str, path: Path):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_config(name: str) -> dict:
    """The constructor arguments of a named official model, with ``model_type`` as convert writes it."""
    if name in MODEL_CONFIGS:
        return dict(model_type="swinv2", img_size=256, patch_size=4, in_chans=3, num_classes=1000, mlp_ratio=4.0,
                    qkv_bias=True, ape=False, patch_norm=True, pretrained_window_sizes=[0, 0, 0, 0],
                    **MODEL_CONFIGS[name])
    return dict(model_type="swin", img_size=224, patch_size=4, in_chans=3, num_classes=1000, mlp_ratio=4.0,
                qkv_bias=True, ape=False, patch_norm=True, **MODEL_CONFIGS_V1[name])


def build_model(module, cfg: dict):
    """The official model of ``cfg`` (``model_type`` swinv2: SwinTransformerV2, swin: SwinTransformer)."""
    args = {k: v for k, v in cfg.items() if k != "model_type"}
    args.update(drop_rate=0.0, drop_path_rate=0.0)
    if cfg["model_type"] == "swinv2":
        return module.SwinTransformerV2(**args)
    args.pop("pretrained_window_sizes", None)
    return module.SwinTransformer(fused_window_process=False, **args)


def read_safetensors(path: Path):
    """(state dict, ``__metadata__``) of a ``.safetensors`` file, read without the safetensors
    package (which torch 1.6's Pythons may lack): 8-byte little-endian header length, JSON header,
    raw little-endian tensors."""
    import struct

    import numpy as np
    import torch

    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
              "U8": np.uint8, "I8": np.int8, "BOOL": np.bool_}
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    state = {}
    for name, info in header.items():
        dtype = dtypes.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, not supported here")
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=np.dtype(dtype).newbyteorder("<")).reshape(info["shape"])
        state[name] = torch.from_numpy(array.astype(dtype, copy=True))
        if state[name].dtype == torch.float16:
            state[name] = state[name].float()
    return state, metadata


def checkpoint_config(metadata: dict, path: Path) -> dict:
    """The configuration ``swin-serve convert`` wrote into a file's metadata."""
    if metadata.get("format") != SWIN_SERVE_FORMAT or "config" not in metadata:
        raise ValueError(f"{path}: a .safetensors without swin-serve's metadata (format={metadata.get('format')!r}): "
                         "write it with `swin-serve convert SRC DST.safetensors`, or pass an official .pth and --model")
    cfg = json.loads(metadata["config"])
    if cfg.get("model_type") not in ("swin", "swinv2"):
        raise ValueError(f"{path}: model_type {cfg.get('model_type')!r}: supported are 'swin' (V1) and 'swinv2' (V2)")
    return cfg


def load_state(model, state: dict, name: str) -> None:
    """Load ``state`` strictly, except for the buffers derived from the geometry (relative position
    index and coordinates, attention masks), which files written by ``swin-serve convert`` leave out
    and the model computes itself."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    buffers = {n for n, _ in model.named_buffers()}
    not_buffers = [k for k in missing if k not in buffers]
    if unexpected or not_buffers:
        raise RuntimeError(f"{name}: the checkpoint does not fit the model: missing {not_buffers[:8]}, "
                           f"unexpected {list(unexpected)[:8]}")


class _Unavailable(dict):
    """Stand-in for a class whose module is not installed: keeps dict items and pickled state."""

    def __setstate__(self, state):
        self.__dict__["_state"] = state


def _stub_module(name: str) -> types.ModuleType:
    """An empty module whose every attribute is a fresh _Unavailable subclass (PEP 562, Python 3.7+)."""
    module = types.ModuleType(name)

    def getattr_(attr):
        if attr.startswith("__"):  # __path__, __spec__, ...: the import system probes these
            raise AttributeError(attr)
        return type(attr, (_Unavailable,), {"__module__": name})

    module.__getattr__ = getattr_
    return module


def load_checkpoint(path: Path):
    import torch

    # The official checkpoints are plain pickles with a 'model' dict. torch >= 2.6 defaults to
    # weights_only=True, which refuses some of them; torch < 1.13 has no such argument at all.
    kwargs = {}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False
    # The official training script also saves its yacs CfgNode under 'config'; without yacs installed
    # the unpickler fails with "No module named 'yacs'". Such modules are stubbed for the load only
    # (via sys.modules: torch 1.13.1's torch.load ignores pickle_module= when weights_only=False).
    stubbed = []
    try:
        for _ in range(16):
            try:
                ckpt = torch.load(str(path), map_location="cpu", **kwargs)
                break
            except ModuleNotFoundError as err:
                if not err.name or err.name in sys.modules:
                    raise
                log(f"[weights] {path}: no module {err.name!r} for an object in the file; stubbing it for the load "
                    "(only the 'model' state dict is used)")
                parts = err.name.split(".")
                for i in range(1, len(parts) + 1):
                    name = ".".join(parts[:i])
                    if name not in sys.modules:
                        sys.modules[name] = _stub_module(name)
                        stubbed.append(name)
                    if i > 1:
                        setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[name])
        else:
            raise RuntimeError(f"{path}: too many missing modules")
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
    return ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt


def random_state_dict(model, seed: int):
    """Seeded random weights that exercise every op. The official init zeroes the res-post-norm
    weights, which would make every attention branch (and so both rolls) contribute nothing."""
    import torch

    gen = torch.Generator()
    gen.manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point() or name.endswith(("relative_coords_table", "attn_mask")):
            state[name] = tensor.clone()  # buffers derived from the geometry
        elif name.endswith("logit_scale"):
            state[name] = tensor + 0.3 * torch.randn(tensor.shape, generator=gen)
        elif "norm" in name and name.endswith("weight"):
            state[name] = 1.0 + 0.2 * torch.randn(tensor.shape, generator=gen)
        elif "cpb_mlp" in name:
            state[name] = 0.5 * torch.randn(tensor.shape, generator=gen)
        elif name.endswith("bias"):
            state[name] = 0.05 * torch.randn(tensor.shape, generator=gen)
        else:
            state[name] = 0.02 * torch.randn(tensor.shape, generator=gen)
    return state


def count_expected_plugin_nodes(model) -> Tuple[int, int]:
    """(rolls, relus) the patched forward must record: 2 rolls per block with a shift, 1 ReLU per
    SwinV2 block (the continuous position bias MLP; Swin V1 has none)."""
    blocks = [blk for layer in model.layers for blk in layer.blocks]
    relus = sum(1 for blk in blocks if hasattr(blk.attn, "cpb_mlp"))
    return 2 * sum(1 for blk in blocks if blk.shift_size > 0), relus


def trace(model, batch: int):
    import torch

    example = torch.randn(batch, 3, IMG_SIZE, IMG_SIZE)
    with torch.no_grad():
        return torch.jit.trace(model, example, check_trace=False)


def graph_op_counts(traced) -> dict:
    # Keep the graph in a variable: `inlined_graph` builds a new graph, and iterating the nodes of a
    # temporary one reads freed memory (torch 1.6: a segfault or a garbage vector index).
    graph = traced.inlined_graph
    counts = {}
    for node in graph.nodes():
        counts[node.kind()] = counts.get(node.kind(), 0) + 1
    return counts


def run_check(original, patched, traced, traced_path: Path, args) -> bool:
    import torch

    ok = True
    reloaded = torch.jit.load(str(traced_path))  # what the MagicMind parser reads
    exp_roll, exp_relu = count_expected_plugin_nodes(patched)
    counts = graph_op_counts(traced)
    got_roll, got_relu = counts.get("MyPlugin::CnnlRoll", 0), counts.get("MyPlugin::PluginReLU", 0)
    leftovers = {k: counts[k] for k in ("aten::roll", "aten::relu", "aten::relu_", "aten::adaptive_avg_pool1d") if k in counts}
    graph_ok = got_roll == exp_roll and got_relu == exp_relu and not leftovers and exp_roll > 0
    log(f"[check] traced graph: MyPlugin::CnnlRoll x{got_roll} (expected {exp_roll}), "
        f"MyPlugin::PluginReLU x{got_relu} (expected {exp_relu}), "
        f"aten::adaptive_avg_pool2d x{counts.get('aten::adaptive_avg_pool2d', 0)}, "
        f"leftover native ops {leftovers or 'none'} -> {'OK' if graph_ok else 'FAIL'}")
    ok &= graph_ok

    gen = torch.Generator()
    gen.manual_seed(args.seed + 1)
    with torch.no_grad():
        for batch in args.check_batches:
            x = torch.randn(batch, 3, IMG_SIZE, IMG_SIZE, generator=gen)
            reference = original(x)
            eager = patched(x)
            scripted = traced(x)
            d_eager = (eager - reference).abs().max().item()
            d_traced = max((scripted - reference).abs().max().item(), (reloaded(x) - reference).abs().max().item())
            same_top1 = bool((scripted.argmax(1) == reference.argmax(1)).all())
            good = d_eager <= TOLERANCE and d_traced <= TOLERANCE and scripted.shape == (batch, NUM_CLASSES)
            log(f"[check] batch {batch}: logits {tuple(scripted.shape)}, std {reference.std().item():.4f}; "
                f"max|patched eager - original| = {d_eager:.3g}, max|patched traced (in memory and reloaded .pt) - original| = {d_traced:.3g} "
                f"(tol {TOLERANCE:g}), top-1 equal: {same_top1} -> {'OK' if good else 'FAIL'}")
            ok &= good

        # Sensitivity controls: the same comparison must fail if a plugin op were wrong.
        x = torch.randn(2, 3, IMG_SIZE, IMG_SIZE, generator=gen)
        reference = original(x)
        no_shift = copy.deepcopy(original)
        for layer in no_shift.layers:
            for blk in layer.blocks:
                blk.shift_size = 0  # both torch.roll calls skipped, masks kept
        d_roll = (no_shift(x) - reference).abs().max().item()
        if exp_relu:
            no_relu = copy.deepcopy(original)
            for layer in no_relu.layers:
                for blk in layer.blocks:
                    blk.attn.cpb_mlp[1] = torch.nn.Identity()
            d_relu = (no_relu(x) - reference).abs().max().item()
        else:
            d_relu = float("inf")  # Swin V1: no ReLU to replace
        sensitive = d_roll > 1000 * TOLERANCE and d_relu > 1000 * TOLERANCE
        relu_text = f"{d_relu:.3g}" if exp_relu else "n/a (Swin V1 has no ReLU plugin site)"
        log(f"[check] sensitivity: without the rolls max|diff| = {d_roll:.3g}, without the cpb_mlp ReLU "
            f"max|diff| = {relu_text} (both must exceed {1000 * TOLERANCE:g}) -> {'OK' if sensitive else 'FAIL'}")
        ok &= sensitive

        # Why window_reverse is patched: the unpatched model traced at batch 1 is wrong at batch 3.
        if max(args.check_batches) > 1:
            batch = max(args.check_batches)
            x = torch.randn(batch, 3, IMG_SIZE, IMG_SIZE, generator=gen)
            d_frozen = (trace(original, batch=1)(x) - original(x)).abs().max().item()
            log(f"[check] control: the UNPATCHED model traced at batch 1 and run at batch {batch} is off by "
                f"max|diff| = {d_frozen:.3g} (batch frozen by int() in window_reverse; fixed by the patch)")
    return ok


def build_magicmind(traced_path: Path, args) -> int:
    """Parse the traced model with the MagicMind PyTorch parser and serialize the built model."""
    try:
        import magicmind.python.runtime as mm
        from magicmind.python.runtime.parser import Parser
    except ImportError as err:
        log(f"[build] magicmind is not importable ({err}); the traced model is at {traced_path}. "
            "Run this script on a Cambricon host with the MagicMind Python package to build the model.")
        return 2

    keep_alive = []
    for lib in args.plugin_lib:
        loader = mm.LoadPluginLibrary()
        if not loader.load(str(lib)):
            log(f"[build] mm.LoadPluginLibrary().load({lib}) failed")
            return 1
        keep_alive.append(loader)
        log(f"[build] loaded plugin library {lib}")

    model_kind = getattr(mm, "ModelKind", None) or mm.enums.ModelKind
    parser = Parser(model_kind.kPytorch)
    parser.set_model_param("pytorch-input-dtypes", [mm.DataType.FLOAT32])
    network = mm.Network()
    status = parser.parse(network, str(traced_path))
    if not status.ok():
        log(f"[build] parser.parse failed: {status}")
        return 1
    input_tensor = network.get_input(0)
    if not input_tensor.set_dimension(mm.Dims((-1, 3, IMG_SIZE, IMG_SIZE))).ok():
        assert input_tensor.set_dimension(mm.Dims((args.max_batch, 3, IMG_SIZE, IMG_SIZE))).ok()

    build_config = {
        "archs": ["mtp_372"],
        "graph_shape_mutable": True,
        "dim_range": {"0": {"min": [1, 3, IMG_SIZE, IMG_SIZE], "max": [args.max_batch, 3, IMG_SIZE, IMG_SIZE]}},
        "precision_config": {"precision_mode": "force_float32"},
        "opt_config": {"type64to32_conversion": True, "conv_scale_fold": True},
    }
    config = mm.BuilderConfig()
    if not config.parse_from_string(json.dumps(build_config)).ok():
        log(f"[build] BuilderConfig rejected {json.dumps(build_config)}")
        return 1
    log(f"[build] builder config {json.dumps(build_config)}")
    t0 = time.time()
    model = mm.Builder().build_model("swinv2_myplugin", network, config)
    if model is None:
        log("[build] build_model returned None")
        return 1
    status = model.serialize_to_file(str(args.out))
    if status is not None and hasattr(status, "ok") and not status.ok():
        log(f"[build] serialize_to_file failed: {status}")
        return 1
    log(f"[build] serialized {args.out} in {time.time() - t0:.1f} s")
    if args.verify_on_device:
        return verify_on_device(mm, args)
    return 0


def verify_on_device(mm, args) -> int:
    """Run the serialized model on device --device (batch 1 and 3) against the CPU reference."""
    import numpy as np
    import torch

    dev = mm.Device()
    dev.id = args.device
    if not dev.active().ok():
        log(f"[verify] cannot activate MLU device {args.device}")
        return 1
    model = mm.Model()
    assert model.deserialize_from_file(str(args.out)).ok()
    engine = model.create_i_engine()
    context = engine.create_i_context()
    queue = dev.create_queue()
    gen = torch.Generator()
    gen.manual_seed(args.seed + 7)
    worst = 0.0
    for batch in (1, 3):
        x = torch.randn(batch, 3, IMG_SIZE, IMG_SIZE, generator=gen)
        with torch.no_grad():
            reference = args.reference_model(x).numpy()
        inputs = context.create_inputs()
        inputs[0].from_numpy(np.ascontiguousarray(x.numpy()))
        outputs = []
        assert context.enqueue(inputs, outputs, queue).ok()
        assert queue.sync().ok()
        logits = outputs[0].asnumpy()
        diff = float(np.abs(logits - reference).max())
        worst = max(worst, diff)
        log(f"[verify] MLU batch {batch}: logits {logits.shape}, max|MLU - CPU| = {diff:.3g}, "
            f"top-1 equal: {bool((logits.argmax(1) == reference.argmax(1)).all())}")
    ok = worst <= args.device_tolerance
    log(f"[verify] {'OK' if ok else 'FAIL'} (tolerance {args.device_tolerance:g})")
    return 0 if ok else 1


#: Markers of a shared library that registers TORCH_LIBRARY(MyPlugin, ...): it links libc10 (the
#: plain MagicMind plugin library does not), or its unstripped symbol table names the init function.
TORCH_OPS_MARKERS = (b"libc10.so", b"TORCH_LIBRARY_init_MyPlugin")


def registers_torch_ops(lib: Path) -> bool:
    """Whether `lib` carries the PyTorch-side MyPlugin ops (e.g. the lab's *_with_pytorch.so)."""
    try:
        data = lib.read_bytes()
    except OSError:
        return False
    return any(marker in data for marker in TORCH_OPS_MARKERS)


def select_torch_ops_lib(torch_ops_lib: Optional[Path], plugin_libs: List[Path]) -> Tuple[Optional[Path], str]:
    """The one library that registers TORCH_LIBRARY(MyPlugin) in this process, and why.

    Loading two such libraries aborts (torch: "Only a single TORCH_LIBRARY can be used to register
    the namespace MyPlugin"), so: a --plugin-lib that carries the ops is the op library (the same
    file, dlopen'ed again by MagicMind, is not initialized twice); with an explicit --torch-ops-lib
    as well, that is an error; None means "build the default plugins/torch library"."""
    with_ops = [p for p in plugin_libs if registers_torch_ops(p)]
    if len(with_ops) > 1:
        raise SystemExit("--plugin-lib: %s all register TORCH_LIBRARY(MyPlugin); load only one of them"
                         % ", ".join(map(str, with_ops)))
    if with_ops and torch_ops_lib is not None and torch_ops_lib.resolve() != with_ops[0].resolve():
        raise SystemExit("--torch-ops-lib %s and --plugin-lib %s both register TORCH_LIBRARY(MyPlugin); a process "
                         "can load only one: drop --torch-ops-lib (the plugin library provides the ops) or use the "
                         "plain libmagicmind_plugin.so" % (torch_ops_lib, with_ops[0]))
    if with_ops:
        return with_ops[0], "from --plugin-lib (it registers the PyTorch-side ops too)"
    return torch_ops_lib, "--torch-ops-lib"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swin-source", type=Path, required=True,
                    help="official Swin-Transformer checkout (commit d19503d7), its models/ folder, or swin_transformer_v2.py")
    ap.add_argument("--checkpoint", type=Path,
                    help="official checkpoint (.pth with a 'model' key, architecture from --model), or a .safetensors "
                         "written by `swin-serve convert` (any source it reads; architecture from its metadata); "
                         "random weights if omitted (--check only)")
    ap.add_argument("--model", choices=sorted(MODEL_CONFIGS) + sorted(MODEL_CONFIGS_V1),
                    help="official architecture of a .pth or of random weights (default swinv2_tiny_patch4_window8_256); "
                         "a swin-serve .safetensors names its own")
    ap.add_argument("--torch-ops-lib", type=Path, help="libmyplugin_torch_ops.so (built into plugins/build/torch if omitted)")
    ap.add_argument("--plugin-lib", type=Path, action="append", default=[],
                    help="MagicMind plugin library to load before parsing (repeatable), e.g. libmagicmind_plugin.so")
    ap.add_argument("--out", type=Path, default=Path("swinv2_tiny_myplugin.magicmind"), help="serialized MagicMind model")
    ap.add_argument("--work-dir", type=Path, default=Path("build/magicmind_gen"), help="patched source and traced .pt go here")
    ap.add_argument("--max-batch", type=int, default=32, help="upper end of the mutable batch dimension")
    ap.add_argument("--relu-dim", type=int, nargs=3, default=[4, 1, 1], metavar=("X", "Y", "Z"),
                    help="PluginReLU `Dim` attribute (BANG task dimensions)")
    ap.add_argument("--relu-func-type", type=int, default=4, choices=[1, 4, 8, 16],
                    help="PluginReLU `FuncType` attribute (1 BLOCK, 4 UNION1, 8 UNION2, 16 UNION4)")
    ap.add_argument("--check", action="store_true", help="CPU check only (no MagicMind): patched+traced vs original")
    ap.add_argument("--check-batches", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", type=int, default=0, help="MLU used by the on-device verification")
    ap.add_argument("--no-verify-on-device", dest="verify_on_device", action="store_false",
                    help="skip running the built model on the MLU against the CPU reference")
    ap.add_argument("--device-tolerance", type=float, default=1e-3, help="max |MLU - CPU| logit difference (FP32)")
    ap.add_argument("--allow-untested-torch", action="store_true",
                    help="build even with a torch other than 1.6 / 1.13 (MagicMind's parser may reject the trace)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    problem = check_torch_version(torch.__version__, building=not args.check, allow_untested=args.allow_untested_torch)
    if problem:
        log("[setup] " + problem)
        return 2
    log("[setup] torch %s, Python %d.%d" % ((torch.__version__,) + sys.version_info[:2]))
    torch.set_grad_enabled(False)
    # Before anything is built or loaded: at most one library may register TORCH_LIBRARY(MyPlugin).
    args.torch_ops_lib, source = select_torch_ops_lib(args.torch_ops_lib, args.plugin_lib)
    global IMG_SIZE, NUM_CLASSES
    state = None
    if args.checkpoint and args.checkpoint.suffix == ".safetensors":
        try:
            state, metadata = read_safetensors(args.checkpoint)
            cfg = checkpoint_config(metadata, args.checkpoint)
        except (ValueError, KeyError, json.JSONDecodeError) as err:
            log(f"[weights] {err}")
            return 2
        if args.model and model_config(args.model) != cfg:
            log(f"[weights] --model {args.model} disagrees with the configuration in {args.checkpoint}: {cfg}")
            return 2
        name = f"{cfg['model_type']}_{cfg['embed_dim']}_{'-'.join(map(str, cfg['depths']))}_w{cfg['window_size']}_{cfg['img_size']}"
        log(f"[weights] {args.checkpoint}: swin-serve convert output, {cfg['model_type']} configuration {cfg}")
    else:
        name = args.model or "swinv2_tiny_patch4_window8_256"
        cfg = model_config(name)
    args.model = name
    IMG_SIZE, NUM_CLASSES = cfg["img_size"], cfg["num_classes"]
    version = 2 if cfg["model_type"] == "swinv2" else 1
    official = swin_patch.find_official_source(
        args.swin_source, "swin_transformer_v2.py" if version == 2 else "swin_transformer.py")
    patched_path, patch_log = swin_patch.write_patched(official, args.work_dir, args.relu_dim, args.relu_func_type,
                                                       version=version)
    for line in patch_log:
        log(f"[patch] {line}")
    log(f"[patch] wrote {patched_path}")

    if args.torch_ops_lib is None:
        import build_torch_ops

        args.torch_ops_lib, source = build_torch_ops.build(REPO / "plugins" / "build" / "torch"), "built"
    torch.ops.load_library(str(args.torch_ops_lib))
    log(f"[ops] loaded {args.torch_ops_lib} ({source}): torch.ops.MyPlugin.CnnlRoll, torch.ops.MyPlugin.PluginReLU")

    timm_problem = install_timm_fallback()
    if timm_problem:
        log("[setup] timm.models.layers not importable (%s): using minimal DropPath/to_2tuple/trunc_normal_ "
            "stand-ins (eval only)" % timm_problem)
    original_module = import_file(official.stem + "_official", official)
    patched_module = import_file(patched_path.stem, patched_path)
    original = build_model(original_module, cfg).eval()
    patched = build_model(patched_module, cfg).eval()
    if state is not None:
        log(f"[weights] {len(state)} tensors")
    elif args.checkpoint:
        state = load_checkpoint(args.checkpoint)
        log(f"[weights] checkpoint {args.checkpoint} ({len(state)} tensors)")
    elif args.check:
        state = random_state_dict(original, args.seed)
        log(f"[weights] seeded random weights (seed {args.seed}), {len(state)} tensors")
    else:
        log("[weights] --checkpoint is required to build a model (random weights only with --check)")
        return 2
    load_state(original, state, str(args.checkpoint or "random weights"))
    load_state(patched, state, str(args.checkpoint or "random weights"))

    t0 = time.time()
    traced = trace(patched, batch=1)
    traced_path = args.work_dir / f"trace_{args.model}_myplugin.pt"
    torch.jit.save(traced, str(traced_path))
    log(f"[trace] traced with input [1, 3, {IMG_SIZE}, {IMG_SIZE}] in {time.time() - t0:.1f} s -> {traced_path}")

    if args.check:
        ok = run_check(original, patched, traced, traced_path, args)
        log(f"[check] {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    args.reference_model = original
    return build_magicmind(traced_path, args)


if __name__ == "__main__":
    sys.exit(main())
