"""torch.compile back-end: ``torch.export`` + AOTInductor, packaged as ``model.pt2``.

The package holds code compiled ahead of time for one device type (CPU: a shared library built with
the host C++ compiler for the host's instruction set; CUDA: Triton kernels for the GPU architecture),
so it loads in milliseconds with no compiler at load time, but is not portable across device types.
It runs any batch in the exported range (``torch.export.Dim``).

``zoo bench --backend compile`` measures the same Inductor code path without writing a package:
:func:`compile_at_load` wraps the eager graph in ``torch.compile(dynamic=True)`` and the warm-up
iterations absorb the compilation (how long that takes: docs/export.md).
"""
from __future__ import annotations

from pathlib import Path

import torch

from zoo.backends import get_backend
from zoo.errors import ZooError
from zoo.runtime.base import BatchRange
from zoo.runtime.compile import CompiledGenerator, load

FILE = get_backend("compile").artifact_file


def check_available(device: str = "cpu", dtype: str = "fp32") -> None:
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ZooError("--device cuda was asked for but torch sees no CUDA device")
    if not hasattr(torch._inductor, "aoti_compile_and_package"):
        raise ZooError(f"torch {torch.__version__} has no AOTInductor packaging (needs torch >= 2.6)")
    if not str(device).startswith("cuda"):
        import shutil

        if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            raise ZooError("the compile back-end on CPU needs a C++ compiler (g++ or clang++) on PATH")


def export(graph, example: tuple, inputs, batch: BatchRange, directory: Path, *, dtype: str, device: str,
           opset: int = 18) -> dict:
    dynamic = None
    if batch.dynamic:
        dim = torch.export.Dim("batch", min=batch.min, max=batch.max)
        dynamic = {s.name: {0: dim} for s in inputs}
    program = torch.export.export(graph, example, dynamic_shapes=dynamic)
    path = Path(directory) / FILE
    torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    return {"file": FILE, "exporter": "torch.export + AOTInductor (aoti_compile_and_package)"}


def compile_at_load(graph, mode: str | None = None):
    """``torch.compile`` of an eager export graph (JIT, dynamic batch); the first call compiles."""
    return torch.compile(graph, dynamic=True, mode=mode)


# the runtime side lives in zoo.runtime.compile; re-exported here
__all__ = ["FILE", "CompiledGenerator", "check_available", "compile_at_load", "export", "load"]
