"""TensorRT back-end: an FP16 engine built by torch-tensorrt, saved as ``model.ep``.

* Requires CUDA, ``torch_tensorrt`` and ``tensorrt`` (``pip install 'dglgan-zoo[trt]'``); both are imported
  only inside functions, here and in :mod:`zoo.runtime.tensorrt` (``import torch_tensorrt`` fails on
  hosts without an NVIDIA driver).
* TensorRT >= 10 builds *strongly typed* networks: precision follows the tensor dtypes, there is no
  FP16 builder flag to trust.  So the export graph is cast explicitly (synthesis network in half, the
  tiny mapping network and truncation in fp32, output image in half) and after the build we assert
  that every convolution of the graph handed to TensorRT is fp16, that no convolution fell back to
  PyTorch, and that the engine really returns half images; the engines' I/O dtypes (and layer report,
  where the runtime exposes it) are stored in export.json.
* One optimisation profile covers the batch range (min/opt/max from ``--dynamic-batch``).
* The engine is tied to the TensorRT version and the GPU architecture: both (and CUDA) are recorded
  in export.json, and :class:`TrtGenerator` (:mod:`zoo.runtime.tensorrt`) refuses an artifact built
  by another TensorRT version.
* ``model.ep`` is torch-tensorrt's default format (an ExportedProgram holding the engine bytes); it
  loads with ``torch_tensorrt.load(path).module()``, wrapped by :class:`TrtGenerator`, which the registry's
  ``backend="tensorrt"`` returns too.

Not exercised in this project's CI (no GPU there, and TensorRT cannot be installed from PyPI alone);
its tests are marked ``gpu`` and skip when TensorRT is missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from zoo.backends import get_backend
from zoo.errors import ZooError, require
from zoo.export.artifact import package_versions
from zoo.export.options import torch_dtype
from zoo.runtime.base import BatchRange
from zoo.runtime.tensorrt import TrtGenerator, check_available, load

FILE = get_backend("tensorrt").artifact_file


def output_dtype(dtype: str) -> torch.dtype:
    """The engine's image output is in the export dtype (an FP16 engine returns half images)."""
    return torch_dtype(dtype)


def _graph_conv_dtypes(program) -> dict[str, int]:
    """Count the convolutions of an ExportedProgram by output dtype (what the strongly typed build follows)."""
    counts: dict[str, int] = {}
    for node in program.graph.nodes:
        if node.op == "call_function" and "convolution" in str(node.target):
            val = node.meta.get("val")
            key = str(getattr(val, "dtype", "unknown")).replace("torch.", "")
            counts[key] = counts.get(key, 0) + 1
    return counts


def _engine_report(trt_module) -> dict:
    """Best-effort description of the TensorRT engines inside a compiled module (runtime-dependent)."""
    engines, fallbacks = [], []
    for name, sub in trt_module.named_children():
        if name.startswith("_run_on_gpu") or name.startswith("_run_on_cpu"):  # PyTorch fallback partition
            convs = sum(1 for n in getattr(sub, "graph", None).nodes if "convolution" in str(n.target)) \
                if hasattr(sub, "graph") else 0
            fallbacks.append({"name": name, "convolutions": convs})
            continue
        info: dict = {"name": name, "type": type(sub).__name__}
        engine = getattr(sub, "engine", None)
        if engine is not None and hasattr(engine, "num_io_tensors"):  # Python runtime: an ICudaEngine
            info["io_dtypes"] = {engine.get_tensor_name(i): str(engine.get_tensor_dtype(engine.get_tensor_name(i)))
                                 for i in range(engine.num_io_tensors)}
        if hasattr(sub, "get_layer_info"):
            try:
                layers = sub.get_layer_info()
                info["layer_info"] = json.loads(layers) if isinstance(layers, str) and len(layers) < 200_000 else None
            except Exception:  # noqa: BLE001 - informative only
                pass
        engines.append(info)
    return {"engines": engines, "pytorch_fallbacks": fallbacks}


def export(graph, example: tuple, inputs, batch: BatchRange, directory: Path, *, dtype: str, device: str,
           opset: int = 18) -> dict:
    import torch_tensorrt

    dim = torch.export.Dim("batch", min=batch.min, max=batch.max) if batch.dynamic else None
    dynamic = {s.name: {0: dim} for s in inputs} if dim is not None else None
    program = torch.export.export(graph, example, dynamic_shapes=dynamic)
    conv_dtypes = _graph_conv_dtypes(program)
    want = torch_dtype(dtype)
    want_name = str(want).replace("torch.", "")
    if not conv_dtypes or set(conv_dtypes) != {want_name}:
        raise ZooError(f"the graph handed to TensorRT is not all {want_name}: convolutions by dtype {conv_dtypes}")
    trt_inputs = [
        torch_tensorrt.Input(min_shape=(batch.min, *t.shape[1:]), opt_shape=(batch.opt, *t.shape[1:]),
                             max_shape=(batch.max, *t.shape[1:]), dtype=t.dtype, name=s.name)
        for s, t in zip(inputs, example)
    ]
    trt_module = torch_tensorrt.dynamo.compile(program, arg_inputs=trt_inputs, use_explicit_typing=True,
                                               min_block_size=1, truncate_double=True)
    report = _engine_report(trt_module)
    if not report["engines"]:
        raise ZooError("torch-tensorrt produced no TensorRT engine (everything fell back to PyTorch)")
    heavy = [f for f in report["pytorch_fallbacks"] if f["convolutions"]]
    if heavy:
        raise ZooError(f"convolutions fell back to PyTorch instead of TensorRT: {heavy}")
    with torch.no_grad():
        out = trt_module(*example)
    out = out[0] if isinstance(out, (list, tuple)) else out
    if out.dtype != want:
        raise ZooError(f"the TensorRT engine returns {out.dtype}, not {want}: the build is not {dtype}")
    path = Path(directory) / FILE
    try:  # keep the dynamic batch: save from the Input shapes without re-tracing at the example size
        torch_tensorrt.save(trt_module, str(path), output_format="exported_program", arg_inputs=trt_inputs,
                            retrace=False)
    except TypeError:  # older torch-tensorrt signatures
        torch_tensorrt.save(trt_module, str(path), output_format="exported_program", arg_inputs=list(example))
    trt = require("tensorrt", get_backend("tensorrt").extra, "TensorRT engines")
    props = torch.cuda.get_device_properties(torch.device(device))
    return {
        "file": FILE,
        "exporter": "torch.export + torch_tensorrt.dynamo.compile (use_explicit_typing=True, one optimisation "
                    "profile) + torch_tensorrt.save(output_format='exported_program')",
        "engine_check": {"graph_convolutions_by_dtype": conv_dtypes, "output_dtype": str(out.dtype), **report},
        "versions": {**package_versions("torch_tensorrt", "torch-tensorrt"),
                     "tensorrt_runtime": trt.__version__, "cuda": torch.version.cuda,
                     "gpu": props.name, "gpu_capability": f"{props.major}.{props.minor}"},
    }


# the runtime side (loading, and the availability check both sides share) lives in zoo.runtime.tensorrt
__all__ = ["FILE", "TrtGenerator", "check_available", "export", "load", "output_dtype"]
