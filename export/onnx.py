"""ONNX export (opset >= 17, dynamic batch).  The runtime side, :class:`OnnxGenerator` (an ONNX Runtime
session with the generator call signature), lives in :mod:`zoo.runtime.onnx` and is re-exported here.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) is tried first; if it fails, the
TorchScript exporter; the one used is recorded in export.json (``exporter``).  ``fp16`` exports the
synthesis network in half precision with float32 inputs and output (ONNX Runtime runs it on CPU too,
slowly; it is meant for the CUDA execution provider).
"""
from __future__ import annotations

from pathlib import Path

import torch

from zoo.backends import get_backend
from zoo.errors import ZooError, require
from zoo.runtime.base import BatchRange
from zoo.runtime.onnx import OnnxGenerator, check_runtime, default_threads, load

FILE = get_backend("onnx").artifact_file


def check_available(device: str = "cpu", dtype: str = "fp32") -> None:
    """Raise a clear error when onnx / onnxruntime (or its CUDA provider, for device cuda) is missing."""
    require("onnx", get_backend("onnx").extra, "ONNX export")
    check_runtime(device)


def export(graph, example: tuple, inputs, batch: BatchRange, directory: Path, *, dtype: str, device: str,
           opset: int = 18) -> dict:
    """Write ``directory/model.onnx``; return the export.json fields of this back-end."""
    import onnx

    path = Path(directory) / FILE
    names = [s.name for s in inputs]
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


# the runtime side lives in zoo (zoo.load(..., backend="onnx") uses it too); re-exported here
__all__ = ["FILE", "OnnxGenerator", "check_available", "default_threads", "export", "load"]
