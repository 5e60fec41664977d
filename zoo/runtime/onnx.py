""":class:`OnnxGenerator`: an ONNX artifact in ONNX Runtime, with the generator call signature.

Session options are fixed so that runs are comparable: ``intra_op_num_threads`` stated explicitly
(default: torch's thread count), one inter-op thread, sequential execution, all graph optimisations,
warnings silenced.  On CUDA (``onnxruntime-gpu``) inputs and outputs are bound on the GPU (IO binding).
"""
from __future__ import annotations

import os

import torch

from zoo.backends import get_backend
from zoo.errors import ZooError, require
from zoo.runtime.base import ExportedGenerator

EXTRA = get_backend("onnx").extra


def check_runtime(device: str = "cpu"):
    """ONNX Runtime (with its CUDA provider, for device cuda), or a clear error; returns the module."""
    ort = require("onnxruntime", EXTRA, "running ONNX models")
    if str(device).startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ZooError("ONNX Runtime has no CUDAExecutionProvider here "
                       f"(available: {', '.join(ort.get_available_providers())}); "
                       "install onnxruntime-gpu instead of onnxruntime, or use --device cpu")
    return ort


def default_threads() -> int:
    return max(1, torch.get_num_threads())


class OnnxGenerator(ExportedGenerator):
    """An ONNX artifact in ONNX Runtime, callable like the generator: ``G(z, c=None, truncation_psi=1)``.

    ``path``: the artifact directory (or its model.onnx).  ``device``: 'cpu' (CPUExecutionProvider) or
    'cuda' (CUDAExecutionProvider, inputs/outputs bound on the GPU).  ``threads``: ONNX Runtime's
    intra-op threads (default: torch's thread count), stated explicitly so runs are comparable.
    Returns float32 torch tensors on ``device``.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 providers: list | None = None):
        super().__init__(path, device)
        self.cuda = str(device).startswith("cuda")
        ort = check_runtime(device)
        options = ort.SessionOptions()
        self.threads = int(threads or default_threads())
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if providers is None:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.model_file), options, providers=providers)
        self.providers = self.session.get_providers()

    def _run(self, feeds: dict) -> torch.Tensor:
        if not self.cuda:
            arrays = {k: v.detach().cpu().numpy() for k, v in feeds.items()}
            return torch.from_numpy(self.session.run(["img"], arrays)[0]).float()
        import numpy as np

        binding = self.session.io_binding()
        index = torch.device(self.device).index or 0
        keep = []
        for name, value in feeds.items():
            t = value.detach().to(self.device).contiguous()
            keep.append(t)
            binding.bind_input(name, "cuda", index, np.int64 if t.dtype == torch.int64 else np.float32,
                               list(t.shape), t.data_ptr())
        n = feeds["z"].shape[0]
        out = torch.empty((n, self.img_channels, self.img_resolution, self.img_resolution),
                          dtype=torch.float32, device=self.device)
        binding.bind_output("img", "cuda", index, np.float32, list(out.shape), out.data_ptr())
        self.session.run_with_iobinding(binding)
        return out


def load(path: str | os.PathLike, device: str = "cpu", **kwargs) -> OnnxGenerator:
    return OnnxGenerator(path, device=device, **kwargs)
