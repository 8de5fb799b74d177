"""Apply the Cambricon lab's changes to the official SwinV2 source, programmatically.

The official file (microsoft/Swin-Transformer, commit d19503d7, ``models/swin_transformer_v2.py``)
is never vendored: the caller passes its path, this module rewrites the text and writes the patched
copy to a work directory. Every edit names the exact official text it replaces and how many times
that text must occur, so a different revision of the file fails loudly instead of being half-patched.

The edits (lab step 3, plus one fix the lab's model needs for a mutable batch):

1. ``nn.ReLU(inplace=True)`` inside ``WindowAttention.cpb_mlp`` -> ``PluginReLU()``, a module that
   calls ``torch.ops.MyPlugin.PluginReLU`` (the BANG C plugin on the MLU).
2. ``torch.roll(x, shifts=(a, b), dims=(1, 2))`` (cyclic shift and its reverse in
   ``SwinTransformerBlock.forward``) -> ``torch.ops.MyPlugin.CnnlRoll(x, [a, b], [1, 2])``.
3. ``nn.AdaptiveAvgPool1d(1)`` -> ``nn.AdaptiveAvgPool2d(1)``; its input becomes 4-D
   (``B C L`` -> ``B C L 1``), because a 2-D pool on the 3-D tensor would treat it as unbatched
   ``C H W`` and average over the wrong axes.
4. ``window_reverse`` takes the batch from ``view(-1, ...)`` instead of
   ``B = int(windows.shape[0] / ...)``. ``int()`` freezes the batch of the example input into the
   traced graph; the lab traced with batch 1, so its model computes wrong logits for batch > 1
   (measured by `generate_magicmind.py --check`, seeded random weights: max |diff| 0.138 at batch 3).
   Required for the mutable batch dimension.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

#: sha256 of ``models/swin_transformer_v2.py`` at commit d19503d7fbed704792a5e5a3a5ee36f9357d26c1.
OFFICIAL_SHA256 = "faccc1ff0ad4760716de985084eafa3998ceb5005f8496f8ac2956dbf96cfe07"

#: sha256 of ``models/swin_transformer.py`` (Swin V1) at commit d19503d7.
OFFICIAL_V1_SHA256 = "779c9ad487e2c577eff12a60c7a2f92267e2bb55c68f7bb32c8edad5ad5bd1e1"

#: Name of the patched module written next to the work files.
PATCHED_MODULE_NAME = "swin_transformer_v2_myplugin"
#: The same for Swin V1.
PATCHED_V1_MODULE_NAME = "swin_transformer_myplugin"

PLUGIN_BLOCK = '''

# ---- swin-serve: MagicMind plugin ops (inserted by models/swin_patch.py; not official code) ----
# Launch configuration of the BANG C ReLU kernel, recorded as the `Dim` / `FuncType` attributes of
# every MyPlugin::PluginReLU node: task dimensions [x, y, z] and cnrtFunctionType_t
# (1 = BLOCK, 4 = UNION1, 8 = UNION2, 16 = UNION4).
PLUGIN_RELU_DIM = {relu_dim}
PLUGIN_RELU_FUNC_TYPE = {relu_func_type}


class PluginReLU(nn.Module):
    """nn.ReLU replaced by the MagicMind plugin op MyPlugin::PluginReLU (BANG C kernel on the MLU)."""

    def forward(self, x):
        return torch.ops.MyPlugin.PluginReLU(x, PLUGIN_RELU_DIM, PLUGIN_RELU_FUNC_TYPE)
# ---- end of swin-serve insertion ----
'''


@dataclass(frozen=True)
class Edit:
    """One textual edit: ``pattern`` (a regex) must match exactly ``count`` times."""

    name: str
    pattern: str
    replacement: str
    count: int


RELU_EDIT = Edit(
    name="cpb_mlp ReLU -> MyPlugin::PluginReLU",
    pattern=r"(self\.cpb_mlp = nn\.Sequential\(nn\.Linear\(2, 512, bias=True\),\s*)nn\.ReLU\(inplace=True\)",
    replacement=r"\1PluginReLU()",
    count=1,
)

#: What V1 and V2 share: the rolls, the pooling and window_reverse.
COMMON_EDITS: Sequence[Edit] = (
    Edit(
        name="torch.roll -> MyPlugin::CnnlRoll",
        pattern=r"torch\.roll\((\w+), shifts=\(([^()]*)\), dims=\(([^()]*)\)\)",
        replacement=r"torch.ops.MyPlugin.CnnlRoll(\1, [\2], [\3])",
        count=2,
    ),
    Edit(
        name="AdaptiveAvgPool1d -> AdaptiveAvgPool2d",
        pattern=r"self\.avgpool = nn\.AdaptiveAvgPool1d\(1\)",
        replacement="self.avgpool = nn.AdaptiveAvgPool2d(1)",
        count=1,
    ),
    Edit(
        name="avgpool input B C L -> B C L 1",
        pattern=r"x = self\.avgpool\(x\.transpose\(1, 2\)\)  # B C 1",
        replacement="x = self.avgpool(x.transpose(1, 2).unsqueeze(-1))  # B C L 1 -> B C 1 1",
        count=1,
    ),
    Edit(
        name="window_reverse: batch from view(-1) (traceable mutable batch)",
        pattern=(
            r"    B = int\(windows\.shape\[0\] / \(H \* W / window_size / window_size\)\)\n"
            r"    x = windows\.view\(B, H // window_size, W // window_size, window_size, window_size, -1\)\n"
            r"    x = x\.permute\(0, 1, 3, 2, 4, 5\)\.contiguous\(\)\.view\(B, H, W, -1\)\n"
        ),
        replacement=(
            "    C = windows.shape[-1]\n"
            "    x = windows.view(-1, H // window_size, W // window_size, window_size, window_size, C)\n"
            "    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)\n"
        ),
        count=1,
    ),
)

#: SwinV2: the ReLU of the continuous position bias MLP, the common edits, and the PluginReLU module.
EDITS: Sequence[Edit] = (RELU_EDIT,) + tuple(COMMON_EDITS) + (
    Edit(
        name="insert PluginReLU module after the imports",
        pattern=r"(\nimport numpy as np\n)",
        replacement=r"\1{plugin_block}",
        count=1,
    ),
)

#: Swin V1 has no ReLU in its attention (a learned bias table, not an MLP): only the roll plugin,
#: plus the pooling and window_reverse edits for a traceable mutable batch.
EDITS_V1: Sequence[Edit] = tuple(COMMON_EDITS)


class PatchError(RuntimeError):
    """The official source does not look like the file these edits were written for."""


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_official_source(path: Path, file_name: str = "swin_transformer_v2.py") -> Path:
    """Accept the repository root, its ``models/`` folder, or the file itself (V2 by default;
    ``swin_transformer.py`` for V1)."""
    path = Path(path)
    if path.is_file():
        if path.name != file_name:
            path = path.parent
        else:
            return path
    for candidate in (path / file_name, path / "models" / file_name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {file_name} at or under {path}")


def patch_source(text: str, relu_dim: Sequence[int] = (4, 1, 1), relu_func_type: int = 4,
                 version: int = 2) -> tuple[str, list[str]]:
    """Return the patched source and a log line per edit (what changed and how often);
    ``version`` 1 patches the official Swin V1 file (rolls only)."""
    if len(relu_dim) != 3 or any(int(d) < 1 for d in relu_dim):
        raise ValueError(f"relu_dim must be 3 positive ints, got {list(relu_dim)}")
    if relu_func_type not in (1, 4, 8, 16):
        raise ValueError(f"relu_func_type must be 1, 4, 8 or 16, got {relu_func_type}")
    if "torch.ops.MyPlugin" in text:
        raise PatchError("the source already calls torch.ops.MyPlugin: pass the unmodified official file")
    plugin_block = PLUGIN_BLOCK.format(relu_dim=[int(d) for d in relu_dim], relu_func_type=int(relu_func_type))
    log = []
    for edit in (EDITS if version == 2 else EDITS_V1):
        found = len(re.findall(edit.pattern, text))
        if found != edit.count:
            raise PatchError(f"edit '{edit.name}': expected {edit.count} match(es) of /{edit.pattern}/, found {found}")
        replacement = edit.replacement.replace("{plugin_block}", plugin_block.replace("\\", "\\\\"))
        text, done = re.subn(edit.pattern, replacement, text)
        assert done == edit.count
        log.append(f"{edit.name}: {done} site(s)")
    return text, log


def write_patched(official: Path, work_dir: Path, relu_dim: Sequence[int] = (4, 1, 1),
                  relu_func_type: int = 4, version: int = 2) -> tuple[Path, list[str]]:
    """Patch ``official`` and write ``<work_dir>/swin_transformer_v2_myplugin.py``
    (``swin_transformer_myplugin.py`` for V1)."""
    text = official.read_text(encoding="utf-8")
    expected = OFFICIAL_SHA256 if version == 2 else OFFICIAL_V1_SHA256
    log = [f"official source {official} sha256 {sha256_of(text)}"
           + ("" if sha256_of(text) == expected else " (NOT the d19503d7 file; patterns still matched)")]
    patched, edit_log = patch_source(text, relu_dim, relu_func_type, version)
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / f"{PATCHED_MODULE_NAME if version == 2 else PATCHED_V1_MODULE_NAME}.py"
    out.write_text(patched, encoding="utf-8")
    return out, log + edit_log
