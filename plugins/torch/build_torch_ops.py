#!/usr/bin/env python3
"""Build the PyTorch-side MyPlugin op library (libmyplugin_torch_ops.so) with g++ only.

Uses torch.utils.cpp_extension for the include/library paths and the C++ ABI flag, and calls g++
directly (no ninja, no setuptools), so it runs wherever torch and a C++17 compiler exist:

    python plugins/torch/build_torch_ops.py --out plugins/build/torch

The CMake build (plugins/CMakeLists.txt, -DSWIN_BUILD_TORCH_OPS=ON) produces the same library.
"""

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "myplugin_torch_ops.cc"
LIB_NAME = "libmyplugin_torch_ops.so"


def cxx_standard() -> str:
    """C++ standard the installed torch headers need: recent torch (2.10+) requires C++20, 2.1+ C++17;
    older torch (the lab's 1.6) was built and tested as C++14, so its headers get C++14."""
    import torch
    from torch.utils import cpp_extension

    major_minor = tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in torch.__version__.split("+")[0].split(".")[:2])
    if major_minor < (2, 1):
        return "c++14"
    for inc in cpp_extension.include_paths():
        aten = Path(inc) / "ATen" / "ATen.h"
        if aten.exists() and "C++20" in aten.read_text(errors="replace"):
            return "c++20"
    return "c++17"


def build_command(out_lib: Path) -> list:
    import torch
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "g++")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [cxx, "-O2", f"-std={cxx_standard()}", "-fPIC", "-shared", f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    for inc in cpp_extension.include_paths():
        cmd += ["-isystem", inc]
    cmd += [str(SOURCE), "-o", str(out_lib)]
    for lib_dir in cpp_extension.library_paths():
        cmd += [f"-L{lib_dir}", f"-Wl,-rpath,{lib_dir}"]
    cmd += ["-lc10", "-ltorch_cpu", "-ltorch"]
    return cmd


def build(out_dir: Path, force: bool = False) -> Path:
    """Build the library into out_dir (skipped when it is newer than the source) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_lib = out_dir / LIB_NAME
    if not force and out_lib.exists() and out_lib.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out_lib
    cmd = build_command(out_lib)
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return out_lib


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE.parent / "build" / "torch", help="output directory")
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = ap.parse_args()
    lib = build(args.out, force=args.force)
    print(lib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
