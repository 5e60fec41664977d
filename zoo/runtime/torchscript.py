""":class:`TorchScriptGenerator`: a TorchScript artifact (``model.ts``), with the generator call signature."""
from __future__ import annotations

import os
import warnings

import torch

from zoo.runtime.base import ModuleGenerator


class TorchScriptGenerator(ModuleGenerator):
    """A TorchScript artifact, callable like the generator."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        super().__init__(path, device)
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": we know, it is the legacy back-end
            warnings.simplefilter("ignore", DeprecationWarning)
            self.module = torch.jit.load(str(self.model_file), map_location=device).eval()


def load(path: str | os.PathLike, device: str = "cpu", **kwargs) -> TorchScriptGenerator:
    return TorchScriptGenerator(path, device=device)
