"""TorchScript export (``torch.jit.trace``), for runtimes that still load ``.ts`` files (LibTorch C++).

TorchScript is deprecated upstream (torch >= 2.11); prefer ``onnx`` or ``compile``.  The traced graph
keeps the batch axis symbolic (the non-fused graph reads it with ``size(0)``), which verification at
two batch sizes checks.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from export.artifact import ExportedGenerator
from export.spec import BatchRange

FILE = "model.ts"


def check_available(device: str = "cpu", dtype: str = "fp32") -> None:
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        from zoo.errors import ZooError

        raise ZooError("--device cuda was asked for but torch sees no CUDA device")


def export(graph, example: tuple, specs, batch: BatchRange, directory: Path, *, dtype: str, device: str,
           opset: int = 18) -> dict:
    traced = torch.jit.trace(graph, example, check_trace=False)
    torch.jit.save(traced, str(Path(directory) / FILE))
    return {"file": FILE, "exporter": "torch.jit.trace"}


class TorchScriptGenerator(ExportedGenerator):
    """A TorchScript artifact, callable like the generator."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        super().__init__(path, device)
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": we know, it is the legacy back-end
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(str(self.path / self.meta["file"]), map_location=device).eval()
        self.names = [s.name for s in self.inputs]

    def _run(self, feeds: dict) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(*[feeds[n].to(self.device) for n in self.names]).float()


def load(path: str | os.PathLike, device: str = "cpu", **kwargs) -> TorchScriptGenerator:
    return TorchScriptGenerator(path, device=device)
