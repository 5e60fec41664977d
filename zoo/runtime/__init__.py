"""Running exported artifacts: one wrapper per runtime, all with the eager generator's call signature.

An export artifact is a directory written by ``zoo export`` (package ``export``); the registry keeps it
under ``<entry>/exports/<backend>/``::

    DIR/model.onnx | model.pt2 | model.ts | model.ep   the exported graph (one file)
    DIR/export.json                                   backend, dtype, batch range, inputs/outputs, ...

Which module loads which back-end is the ``runtime_module`` column of :data:`zoo.backends.BACKENDS`.
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

from zoo.backends import get_backend
from zoo.runtime.base import (EXPORT_FILE, FORMAT, BatchRange, ExportedGenerator, ModuleGenerator, TensorSignature,
                              is_artifact, model_file, positive_int, read_export_json)


def runtime_module(backend: str):
    """The module that loads artifacts of ``backend`` (``load(path, device, **kwargs)``), named by
    :data:`zoo.backends.BACKENDS`; ZooError for a back-end that table does not list."""
    return importlib.import_module(get_backend(backend).runtime_module)


def load_artifact(path: str | os.PathLike, device: str = "cpu", **kwargs) -> ExportedGenerator:
    """Open an artifact directory (or its model file) as a generator-like callable.

    The back-end named in export.json picks the wrapper; ``kwargs`` go to it (``threads=``/``providers=``
    for ONNX Runtime).  See :class:`ExportedGenerator` for the call signature."""
    _, meta = read_export_json(path)
    return runtime_module(meta.get("backend", "?")).load(path, device=device, **kwargs)


__all__ = [
    "EXPORT_FILE", "FORMAT", "BatchRange", "ExportedGenerator", "ModuleGenerator", "TensorSignature",
    "is_artifact", "load_artifact", "model_file", "positive_int", "read_export_json", "runtime_module",
]
