"""Export and measurement: parameter/MAC reports, ONNX / TorchScript / torch.compile / TensorRT exports
(each verified against eager PyTorch), and latency tables.  See docs/export.md.

    >>> from zoo.export import export_generator, load_export, run_bench
    >>> path, meta = export_generator(G, "out/g-onnx", backend="onnx")
    >>> G_ort = load_export(path)                      # OnnxGenerator: G_ort(z, c, truncation_psi=0.7)

Names are imported on first use, so ``import zoo.export`` stays light.  The back-ends are the table
:data:`zoo.backends.BACKENDS` (re-exported here as ``BACKENDS``).
"""
from __future__ import annotations

import importlib

_LAZY = {
    "export_generator": "zoo.export.exporter",
    "load_export": "zoo.export.artifact",
    "ExportedGenerator": "zoo.export.artifact",
    "OnnxGenerator": "zoo.export.onnx",
    "run_bench": "zoo.export.bench",
    "latency_for": "zoo.export.bench",
    "BatchRange": "zoo.runtime.base",
    "BACKENDS": "zoo.backends",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = list(_LAZY)
