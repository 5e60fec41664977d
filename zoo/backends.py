"""The export back-ends: one table that ``zoo export``, ``zoo bench``, :mod:`zoo.runtime`, the registry and
the server all read, so that adding a back-end is one :class:`Backend` row plus its two modules.

A back-end turns a generator into an artifact directory (``zoo export``, module ``export_module``) holding
one model file (``artifact_file``) and ``export.json``; ``runtime_module`` loads it back with the generator's
call signature.  The registry keeps an artifact under ``exports/<name>/`` of an entry
(:attr:`Backend.registry_file`).  Modules are named as strings: ``zoo`` must not import ``zoo.export``, and
nothing here imports torch.

"eager" (plain PyTorch) is not a back-end of this table: it has no artifact.  :data:`EAGER` names it for
the places that accept it beside the exported ones (``zoo bench --backend``, ``zoo.load(backend=...)``).
"""
from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError

EAGER = "eager"


@dataclass(frozen=True)
class Backend:
    """One export back-end.

    name:           the ``--backend`` value and export.json's ``backend``.
    artifact_file:  the model file inside an artifact directory.
    extra:          the pip extra of ``dglgan-zoo`` it needs (``pip install 'dglgan-zoo[EXTRA]'``), or None.
    runtime_module: the module that loads an artifact: ``load(path, device, **kwargs)``.
    export_module:  the module that writes one: ``export(...)``, ``check_available(device, dtype)``.
    description:    one line for ``--help``.
    load_requires:  the package loading needs (checked with a message naming ``extra``), or None.
    default_device: where an artifact runs unless told otherwise (TensorRT engines: the GPU only).
    default_dtype:  what ``zoo export`` builds unless told otherwise.
    from_registry:  ``zoo.load`` may open it from a registry entry.  Only formats that are data to their
                    runtime: a TorchScript or AOTInductor artifact is a program (pickled code, a shared
                    library), and nothing downloaded is executed (docs/security.md).
    """

    name: str
    artifact_file: str
    extra: str | None
    runtime_module: str
    export_module: str
    description: str
    load_requires: str | None = None
    default_device: str = "cpu"
    default_dtype: str = "fp32"
    from_registry: bool = False

    @property
    def registry_dir(self) -> str:
        """Where a registry entry keeps this back-end's artifact (model file + export.json)."""
        return f"exports/{self.name}"

    @property
    def registry_file(self) -> str:
        """The model file's path inside a registry entry."""
        return f"{self.registry_dir}/{self.artifact_file}"


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("onnx", "model.onnx", "onnx", "zoo.runtime.onnx", "zoo.export.onnx",
            "ONNX (opset >= 17) run with ONNX Runtime", load_requires="onnxruntime", from_registry=True),
    Backend("torchscript", "model.ts", None, "zoo.runtime.torchscript", "zoo.export.torchscript",
            "torch.jit.trace (legacy; TorchScript is deprecated upstream)"),
    Backend("compile", "model.pt2", None, "zoo.runtime.compile", "zoo.export.compile",
            "torch.export + AOTInductor package (.pt2), compiled ahead of time"),
    Backend("tensorrt", "model.ep", "trt", "zoo.runtime.tensorrt", "zoo.export.tensorrt",
            "TensorRT FP16 engine through torch-tensorrt (CUDA only)", load_requires="torch_tensorrt",
            default_device="cuda", default_dtype="fp16", from_registry=True),
)}


def get_backend(name: str) -> Backend:
    """The back-end called ``name``; ZooError listing the back-ends if there is none."""
    return BACKENDS[check_backend(name)]


def check_backend(name: str, allowed: tuple[str, ...] | None = None) -> str:
    """``name`` if it is one of ``allowed`` (default: the exported back-ends), else ZooError listing them.
    ``allowed`` may include :data:`EAGER`."""
    choices = tuple(BACKENDS) if allowed is None else allowed
    if not isinstance(name, str) or name not in choices:
        raise ZooError(f"unknown backend {name!r:.40}; choose from: {', '.join(choices)}")
    return name


# what `zoo.load(backend=...)` opens: plain PyTorch and the back-ends whose artifacts are data
LOAD_BACKENDS: tuple[str, ...] = (EAGER, *(b.name for b in BACKENDS.values() if b.from_registry))
# what `zoo bench` can time: plain PyTorch and every exported back-end
BENCH_BACKENDS: tuple[str, ...] = (EAGER, *BACKENDS)
