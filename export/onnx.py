"""ONNX export (opset >= 17, dynamic batch) and :class:`OnnxGenerator`, an ONNX Runtime session with
the generator call signature.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) is tried first; if it fails, the
TorchScript exporter; the one used is recorded in export.json (``exporter``).  ``fp16`` exports the
synthesis network in half precision with float32 inputs and output (ONNX Runtime runs it on CPU too,
slowly; it is meant for the CUDA execution provider).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from export.artifact import ExportedGenerator
from export.spec import BatchRange
from zoo.errors import ZooError, require

FILE = "model.onnx"


def check_available(device: str = "cpu", dtype: str = "fp32") -> None:
    """Raise a clear error when onnx / onnxruntime (or its CUDA provider, for device cuda) is missing."""
    require("onnx", "onnx", "ONNX export")
    ort = require("onnxruntime", "onnx", "running ONNX models")
    if str(device).startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ZooError("ONNX Runtime has no CUDAExecutionProvider here "
                       f"(available: {', '.join(ort.get_available_providers())}); "
                       "install onnxruntime-gpu instead of onnxruntime, or use --device cpu")


def export(graph, example: tuple, specs, batch: BatchRange, directory: Path, *, dtype: str, device: str,
           opset: int = 18) -> dict:
    """Write ``directory/model.onnx``; return the export.json fields of this back-end."""
    import onnx

    path = Path(directory) / FILE
    names = [s.name for s in specs]
    graph, example = graph.cpu(), tuple(t.cpu() for t in example)  # the graph is device-independent
    failures = []
    exporter = None
    try:
        dynamic = None
        if batch.dynamic:
            dim = torch.export.Dim("batch", min=batch.min, max=batch.max)
            dynamic = {name: {0: dim} for name in names}
        program = torch.onnx.export(graph, example, dynamo=True, dynamic_shapes=dynamic, opset_version=opset,
                                    input_names=names, output_names=["img"], verbose=False)
        program.save(str(path))
        exporter = "dynamo"
    except Exception as exc:  # noqa: BLE001 - any exporter failure -> try the other exporter
        failures.append(f"dynamo exporter: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        try:
            axes = {name: {0: "batch"} for name in [*names, "img"]} if batch.dynamic else None
            torch.onnx.export(graph, example, str(path), dynamo=False, opset_version=opset, input_names=names,
                              output_names=["img"], dynamic_axes=axes)
            exporter = "torchscript"
        except Exception as exc2:  # noqa: BLE001
            failures.append(f"TorchScript exporter: {type(exc2).__name__}: {exc2}")
            raise ZooError("ONNX export failed with both exporters: " + " | ".join(failures)) from None
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)
    actual_opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=opset)
    info = {"file": FILE, "opset": int(actual_opset), "exporter": exporter}
    if failures:
        info["exporter_fallback_reason"] = failures[0]
    return info


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
        ort = require("onnxruntime", "onnx", "running ONNX models")
        self.cuda = str(device).startswith("cuda")
        if self.cuda:
            check_available("cuda")
        options = ort.SessionOptions()
        self.threads = int(threads or default_threads())
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if providers is None:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.path / self.meta["file"]), options, providers=providers)
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
