"""TorchScript export (``torch.jit.trace``), for runtimes that still load ``.ts`` files (LibTorch C++).

TorchScript is deprecated upstream (torch >= 2.11); prefer ``onnx`` or ``compile``.  The traced graph
keeps the batch axis symbolic (the non-fused graph reads it with ``size(0)``), which verification at
two batch sizes checks.
"""
from __future__ import annotations

from pathlib import Path

import torch

from zoo.backends import get_backend
from zoo.errors import ZooError
from zoo.runtime.base import BatchRange
from zoo.runtime.torchscript import TorchScriptGenerator, load

FILE = get_backend("torchscript").artifact_file


def check_available(device: str = "cpu", dtype: str = "fp32") -> None:
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ZooError("--device cuda was asked for but torch sees no CUDA device")


def export(graph, example: tuple, inputs, batch: BatchRange, directory: Path, *, dtype: str, device: str,
           opset: int = 18) -> dict:
    traced = torch.jit.trace(graph, example, check_trace=False)
    torch.jit.save(traced, str(Path(directory) / FILE))
    return {"file": FILE, "exporter": "torch.jit.trace"}


# the runtime side lives in zoo.runtime.torchscript; re-exported here
__all__ = ["FILE", "TorchScriptGenerator", "check_available", "export", "load"]
