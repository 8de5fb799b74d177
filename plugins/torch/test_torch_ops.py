#!/usr/bin/env python3
"""Check (a) of issue 3: the PyTorch-side MyPlugin ops equal torch.roll / relu on random shapes.

    python plugins/torch/test_torch_ops.py [--lib plugins/build/torch/libmyplugin_torch_ops.so]

Builds the library first when --lib is not given. Exits non-zero on the first mismatch.
"""

import argparse
import random
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def random_case(rng: random.Random):
    rank = rng.randint(1, 5)
    shape = [rng.randint(1, 7) for _ in range(rank)]
    n = rng.randint(1, rank)
    dims = rng.sample(range(rank), n)
    dims = [d - rank if rng.random() < 0.3 else d for d in dims]  # negative dims too
    shifts = [rng.randint(-2 * max(shape), 2 * max(shape)) for _ in dims]
    return shape, shifts, dims


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", type=Path)
    ap.add_argument("--cases", type=int, default=500)
    args = ap.parse_args()
    if args.lib is None:
        import build_torch_ops

        args.lib = build_torch_ops.build(HERE.parent / "build" / "torch")
    torch.ops.load_library(str(args.lib))
    roll, relu = torch.ops.MyPlugin.CnnlRoll, torch.ops.MyPlugin.PluginReLU
    for name in ("MyPlugin::CnnlRoll", "MyPlugin::PluginReLU"):  # (torch 1.6 has no OpOverload `.default`)
        for schema in torch._C._jit_get_schemas_for_operator(name):
            print(f"schema: {schema}")
    print(f"torch {torch.__version__}")

    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(args.cases):
        shape, shifts, dims = random_case(rng)
        for dtype in (torch.float32, torch.float16):
            x = torch.randn(shape, generator=gen).to(dtype)
            got, want = roll(x, shifts, dims), torch.roll(x, shifts, dims)
            if got.dtype != dtype or not torch.equal(got, want):
                print(f"FAIL CnnlRoll shape {shape} shifts {shifts} dims {dims} {dtype}")
                return 1
            dim = [rng.randint(1, 8), rng.randint(1, 4), 1]
            func_type = rng.choice([1, 4, 8, 16])
            got, want = relu(x, dim, func_type), torch.relu(x.float()).to(dtype)  # no CPU Half relu on 1.6/1.13
            if got.dtype != dtype or not torch.equal(got, want):
                print(f"FAIL PluginReLU shape {shape} {dtype}")
                return 1
            checked += 2
    # Defaults of the schema (Dim=[1,1,1], FuncType=1) and the non-contiguous case.
    x = torch.randn(6, 5, 4, generator=gen).transpose(0, 2)
    assert torch.equal(relu(x), torch.relu(x)) and torch.equal(roll(x, [3], [1]), torch.roll(x, 3, 1))
    # Invalid attributes are rejected like the MagicMind plugin rejects them.
    bad = [lambda: roll(x, [1, 2], [0]), lambda: roll(x, [], []), lambda: relu(x, [1, 1], 1),
           lambda: relu(x, [0, 1, 1], 1), lambda: relu(x, [1, 1, 1], 2), lambda: roll(x.double(), [1], [0])]
    for i, call in enumerate(bad):
        try:
            call()
        except RuntimeError:
            continue
        print(f"FAIL invalid case {i} was accepted")
        return 1
    # torch.jit.trace records the ops by their qualified names.
    graph = str(torch.jit.trace(lambda t: relu(roll(t, [-1, 2], [0, 1]), [4, 1, 1], 4), torch.randn(3, 4)).graph)
    assert "MyPlugin::CnnlRoll" in graph and "MyPlugin::PluginReLU" in graph, graph
    print(f"OK: {checked} random comparisons (fp32+fp16, ranks 1-5, negative dims/shifts) exact; "
          f"{len(bad)} invalid calls rejected; trace records MyPlugin::CnnlRoll and MyPlugin::PluginReLU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
