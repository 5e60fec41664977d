"""Running exported artifacts: one wrapper per runtime, all with the eager generator's call signature.

An export artifact is a directory written by ``zoo export`` (package ``export``); the registry keeps it
under ``<entry>/exports/<backend>/``::

    DIR/model.onnx | model.pt2 | model.ts | model.ep   the exported graph (one file)
    DIR/export.json                                   backend, dtype, batch range, inputs/outputs, ...

This package is the *loading* side only, so that both ``zoo.load(..., backend="onnx"|"tensorrt")``
and the ``export`` package (``export.artifact.load_export``, ``zoo bench``) use the same wrappers
without ``zoo`` importing ``export``.  Writing artifacts stays in ``export``.

    >>> from zoo.runtime import load_artifact
    >>> G = load_artifact("exports/student-onnx")        # OnnxGenerator
    >>> img = G(z, c=None, truncation_psi=0.7)             # float32 NCHW torch tensor

``import zoo.runtime`` is light: torch and the runtimes (onnxruntime, torch-tensorrt) are imported
only when an artifact is loaded.  Back-end modules: :mod:`zoo.runtime.onnx` (:class:`OnnxGenerator`),
:mod:`zoo.runtime.torchscript`, :mod:`zoo.runtime.compile` (AOTInductor), :mod:`zoo.runtime.tensorrt`.
"""
from __future__ import annotations

import importlib
import os

from zoo.errors import ZooError
from zoo.runtime.base import (EXPORT_FILE, FORMAT, BatchRange, ExportedGenerator, ModuleGenerator, TensorSpec,
                              is_artifact, model_file, positive_int, read_export_json)

# back-end name (export.json "backend") -> module of this package that loads it
RUNTIMES: dict[str, str] = {
    "onnx": "zoo.runtime.onnx",
    "torchscript": "zoo.runtime.torchscript",
    "compile": "zoo.runtime.compile",
    "tensorrt": "zoo.runtime.tensorrt",
}


def runtime_module(backend: str):
    """The module that loads artifacts of ``backend`` (``load(path, device, **kwargs)``)."""
    if backend not in RUNTIMES:
        raise ZooError(f"unknown backend {backend!r}; choose from: {', '.join(RUNTIMES)}")
    return importlib.import_module(RUNTIMES[backend])


def load_artifact(path: str | os.PathLike, device: str = "cpu", **kwargs) -> ExportedGenerator:
    """Open an artifact directory (or its model file) as a generator-like callable.

    The back-end named in export.json picks the wrapper; ``kwargs`` go to it (``threads=``/``providers=``
    for ONNX Runtime).  See :class:`ExportedGenerator` for the call signature."""
    _, meta = read_export_json(path)
    return runtime_module(meta.get("backend", "?")).load(path, device=device, **kwargs)


__all__ = [
    "EXPORT_FILE", "FORMAT", "RUNTIMES", "BatchRange", "ExportedGenerator", "ModuleGenerator", "TensorSpec",
    "is_artifact",
    "load_artifact", "model_file", "positive_int", "read_export_json", "runtime_module",
]
