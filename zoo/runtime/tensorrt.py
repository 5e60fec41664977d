""":class:`TrtGenerator`: a TensorRT artifact (``model.ep``, torch-tensorrt's ExportedProgram holding the
engine), with the generator call signature.

Needs CUDA, ``tensorrt`` and ``torch_tensorrt`` (``pip install 'dglgan-zoo[trt]'``), imported only when an
artifact is loaded.  The engine is tied to the TensorRT version that built it (export.json records
it): another version is refused with a clear error rather than a deserialisation failure.
"""
from __future__ import annotations

import os

import torch

from zoo.backends import get_backend
from zoo.errors import ZooError, require
from zoo.runtime.base import ModuleGenerator

EXTRA = get_backend("tensorrt").extra


def check_available(device: str = "cpu", dtype: str = "fp16") -> None:
    if not torch.cuda.is_available():
        raise ZooError("the tensorrt backend needs an NVIDIA GPU with CUDA, and torch sees none here; "
                       "use --backend onnx or --backend compile on this machine")
    if not str(device).startswith("cuda"):
        raise ZooError("the tensorrt backend runs on the GPU only: pass --device cuda")
    require("tensorrt", EXTRA, "TensorRT engines")
    require("torch_tensorrt", EXTRA, "building TensorRT engines")


class TrtGenerator(ModuleGenerator):
    """A TensorRT artifact (``torch_tensorrt.load(...).module()``), callable like the generator."""

    grad_context = "no_grad"

    def __init__(self, path: str | os.PathLike, device: str = "cuda"):
        super().__init__(path, device)
        check_available(device, self.dtype)
        trt = require("tensorrt", EXTRA, "TensorRT engines")
        torch_tensorrt = require("torch_tensorrt", EXTRA, "loading TensorRT artifacts")
        built = self.meta.get("versions", {}).get("tensorrt_runtime")
        if built and built != trt.__version__:
            raise ZooError(f"{self.path}: engine built with TensorRT {built}, this is TensorRT {trt.__version__}; "
                           "export it again on this machine")
        self.module = torch_tensorrt.load(str(self.model_file)).module()


def load(path: str | os.PathLike, device: str = "cuda", **kwargs) -> TrtGenerator:
    return TrtGenerator(path, device=device)
