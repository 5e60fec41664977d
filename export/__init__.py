"""Export and measurement: parameter/MAC reports, ONNX / TorchScript / torch.compile / TensorRT exports
(each verified against eager PyTorch), and latency tables.  See docs/export.md.

    >>> from export import export_generator, load_export, run_bench
    >>> path, meta = export_generator(G, "out/g-onnx", backend="onnx")
    >>> G_ort = load_export(path)                      # OnnxGenerator: G_ort(z, c, truncation_psi=0.7)

Names are imported on first use, so ``import export`` stays light.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "export_generator": "export.exporter",
    "load_export": "export.artifact",
    "ExportedGenerator": "export.artifact",
    "OnnxGenerator": "export.onnx",
    "run_bench": "export.bench",
    "latency_for": "export.bench",
    "BatchRange": "export.spec",
    "BACKENDS": "export.spec",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = list(_LAZY)
