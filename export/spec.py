"""Names and small value types shared by ``zoo export`` and ``zoo bench``: back-ends, dtypes, batch specs."""
from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError

# back-end -> (module implementing it, pip extra it needs, one-line description)
BACKENDS: dict[str, tuple[str, str | None, str]] = {
    "onnx": ("export.onnx", "onnx", "ONNX (opset >= 17) run with ONNX Runtime"),
    "torchscript": ("export.torchscript", None, "torch.jit.trace (legacy; TorchScript is deprecated upstream)"),
    "compile": ("export.compile", None, "torch.export + AOTInductor package (.pt2), compiled ahead of time"),
    "tensorrt": ("export.tensorrt", "trt", "TensorRT FP16 engine through torch-tensorrt (CUDA only)"),
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


def _positive_int(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) < 1:
        raise ZooError(f"bad {what}: {text!r} is not a positive whole number")
    return int(text)


def parse_batch_list(text: str) -> list[int]:
    """'1,8,48' -> [1, 8, 48]. Empty, zero, negative or non-numeric entries are errors."""
    if text is None or not str(text).strip():
        raise ZooError("bad batch spec '': give batch sizes such as '1,8,48'")
    sizes = [_positive_int(part, f"batch spec {text!r}") for part in str(text).split(",")]
    return sorted(set(sizes), key=sizes.index)


@dataclass(frozen=True)
class BatchRange:
    """Batch sizes an artifact must serve. ``min == max`` is a static batch; otherwise the batch axis is
    dynamic and ``opt`` is the size TensorRT tunes for (ONNX and AOTInductor run any size in the range)."""

    min: int = 1
    opt: int = 8
    max: int = 64

    def __post_init__(self):
        if not (1 <= self.min <= self.opt <= self.max):
            raise ZooError(f"bad batch range {self.min}:{self.opt}:{self.max}: need 1 <= MIN <= OPT <= MAX")

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    @classmethod
    def static(cls, n: int) -> "BatchRange":
        return cls(n, n, n)

    @classmethod
    def parse(cls, text: str) -> "BatchRange":
        """'MIN:OPT:MAX' (or 'MIN:MAX', opt = min) -> BatchRange."""
        parts = str(text).split(":")
        if len(parts) not in (2, 3):
            raise ZooError(f"bad dynamic batch {text!r}: use MIN:OPT:MAX, e.g. 1:8:64")
        sizes = [_positive_int(p, f"dynamic batch {text!r}") for p in parts]
        return cls(sizes[0], sizes[1], sizes[-1]) if len(sizes) == 3 else cls(sizes[0], sizes[0], sizes[1])

    def contains(self, n: int) -> bool:
        return self.min <= n <= self.max

    def to_dict(self) -> dict:
        return {"min": self.min, "opt": self.opt, "max": self.max, "dynamic": self.dynamic}

    @classmethod
    def from_dict(cls, data: dict) -> "BatchRange":
        return cls(int(data["min"]), int(data["opt"]), int(data["max"]))

    def verification_sizes(self) -> list[int]:
        """Two distinct sizes when the batch is dynamic (proves one artifact serves several), else the one."""
        return [self.min, self.min + 1] if self.dynamic else [self.min]
