"""Names and small value types shared by ``zoo export`` and ``zoo bench``: back-ends, dtypes, batch specs."""
from __future__ import annotations

from zoo.errors import ZooError
# BatchRange is part of export.json, which zoo.runtime reads back; defined there, re-exported here
from zoo.runtime.base import BatchRange  # noqa: F401
from zoo.runtime.base import positive_int as _positive_int

# back-end -> (module implementing it, pip extra it needs, one-line description)
BACKENDS: dict[str, tuple[str, str | None, str]] = {
    "onnx": ("zoo.export.onnx", "onnx", "ONNX (opset >= 17) run with ONNX Runtime"),
    "torchscript": ("zoo.export.torchscript", None, "torch.jit.trace (legacy; TorchScript is deprecated upstream)"),
    "compile": ("zoo.export.compile", None, "torch.export + AOTInductor package (.pt2), compiled ahead of time"),
    "tensorrt": ("zoo.export.tensorrt", "trt", "TensorRT FP16 engine through torch-tensorrt (CUDA only)"),
}
# what `zoo bench` can time: the exported back-ends plus plain PyTorch
BENCH_BACKENDS = ("eager", *BACKENDS)
DTYPES = ("fp32", "fp16")


def check_backend(name: str, allowed=tuple(BACKENDS)) -> str:
    if name not in allowed:
        raise ZooError(f"unknown backend {name!r}; choose from: {', '.join(allowed)}")
    return name


def check_dtype(name: str) -> str:
    if name not in DTYPES:
        raise ZooError(f"unknown dtype {name!r}; choose from: {', '.join(DTYPES)}")
    return name


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16}[check_dtype(name)]


def parse_batch_list(text: str) -> list[int]:
    """'1,8,48' -> [1, 8, 48]. Empty, zero, negative or non-numeric entries are errors."""
    if text is None or not str(text).strip():
        raise ZooError("bad batch spec '': give batch sizes such as '1,8,48'")
    sizes = [_positive_int(part, f"batch spec {text!r}") for part in str(text).split(",")]
    return sorted(set(sizes), key=sizes.index)
