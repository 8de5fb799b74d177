#!/usr/bin/env python3
"""Build the PyTorch-side MyPlugin op library (libmyplugin_torch_ops.so) with g++ only.

Uses torch.utils.cpp_extension for the include/library paths and the C++ ABI flag, and calls g++
directly (no ninja), so it runs wherever torch and a C++ compiler exist (C++14 for torch < 2.1, C++17,
C++20 for torch >= 2.10 headers):

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
    """Build the library into out_dir and return its path. The build is skipped when the library is
    newer than the source AND was built by the same command (same torch install, version, C++ ABI
    and standard: recorded in a .stamp file next to it) -- a library built against another torch
    (e.g. from a second venv) does not load or, worse, loads and crashes, so it is rebuilt."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    out_lib = out_dir / LIB_NAME
    stamp = out_dir / (LIB_NAME + ".stamp")
    cmd = build_command(out_lib)
    recipe = "torch %s\n%s\n" % (torch.__version__, " ".join(shlex.quote(c) for c in cmd))
    up_to_date = (out_lib.exists() and out_lib.stat().st_mtime >= SOURCE.stat().st_mtime
                  and stamp.exists() and stamp.read_text() == recipe)
    if not force and up_to_date:
        return out_lib
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    if stamp.exists():
        stamp.unlink()
    subprocess.run(cmd, check=True)
    stamp.write_text(recipe)
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
