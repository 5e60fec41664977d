""":class:`CompiledGenerator`: an AOTInductor package (``model.pt2``), with the generator call signature.

The package holds code compiled ahead of time for one device type, so it refuses another one.
"""
from __future__ import annotations

import os

import torch

from zoo.errors import ZooError
from zoo.runtime.base import ModuleGenerator


class CompiledGenerator(ModuleGenerator):
    """An AOTInductor package, callable like the generator."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        super().__init__(path, device)
        built_for = torch.device(self.meta.get("device", "cpu")).type
        if torch.device(device).type != built_for:
            raise ZooError(f"{self.path} was compiled for {built_for}; it cannot run on {device} "
                           f"(export it again with --device {torch.device(device).type})")
        self.module = torch._inductor.aoti_load_package(str(self.model_file))


def load(path: str | os.PathLike, device: str = "cpu", **kwargs) -> CompiledGenerator:
    return CompiledGenerator(path, device=device)
