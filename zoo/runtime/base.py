"""What every loaded artifact shares: export.json, its value types, and :class:`ExportedGenerator`.

Light on purpose (no torch at import time): ``zoo.registry`` and ``export`` import it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.integrity import check_relpath, file_problem, read_json
from zoo.errors import ZooError

FORMAT = "ganzoo-export/1"
EXPORT_FILE = "export.json"


# ------------------------------------------------------------------------------------------ value types

def positive_int(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) < 1:
        raise ZooError(f"bad {what}: {text!r} is not a positive whole number")
    return int(text)


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
        sizes = [positive_int(p, f"dynamic batch {text!r}") for p in parts]
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


@dataclass(frozen=True)
class TensorSignature:
    """One graph input or output: name, shape with 'N' for the batch axis, numpy dtype name."""

    name: str
    shape: tuple
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict) -> "TensorSignature":
        return cls(data["name"], tuple(data["shape"]), data["dtype"])



# ------------------------------------------------------------------------------------------ export.json

def read_export_json(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(artifact directory, export.json) for an artifact directory or its model file."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    meta_path = directory / EXPORT_FILE
    if not meta_path.exists():
        raise ZooError(f"{directory}: not an export artifact (no {EXPORT_FILE})")
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else f"a JSON {type(meta).__name__}"
        raise ZooError(f"{meta_path}: unsupported export format {found!r} (expected {FORMAT})")
    return directory, meta


def model_file(directory: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """The artifact's model file, checked before any runtime opens it.

    export.json says which file to load, but it is only as trustworthy as whoever wrote the directory:
    ``file`` must be a plain relative path to a regular file inside the artifact directory (no '..', no
    absolute path, no symlinked directory on the way, never a FIFO or device) whose size and sha256 are the
    ones export.json records (``zoo export`` always records them).  Otherwise ZooError: nothing outside
    the artifact, and nothing unverified, is ever loaded.  The file itself may be a symlink because the
    Hugging Face cache stores every file that way; its content is what the hash check reads.
    """
    directory = Path(directory)
    where = directory / EXPORT_FILE
    rel = check_relpath(meta.get("file"), f"{where}: 'file'")
    info = {"sha256": meta.get("file_sha256"), "size": meta.get("file_size")}
    if not isinstance(info["sha256"], str):
        raise ZooError(f"{where} records no file_sha256 for {rel!r}, so the model file cannot be verified; "
                       "export it again with `zoo export`")
    problem = file_problem(directory, rel, info, follow_symlinks=True)
    if problem is not None:
        raise ZooError(f"{directory}/{problem} (checked against {EXPORT_FILE}); refusing to load it")
    return directory / rel


def is_artifact(path: str | os.PathLike) -> bool:
    return (Path(path) / EXPORT_FILE).is_file()


# ------------------------------------------------------------------------------------------ the wrapper

class ExportedGenerator:
    """Base of the loaded artifacts: the generator call signature on top of a runtime.

    ``G(z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode='const')`` returns a float32
    NCHW torch tensor like the eager generator.  ``c`` may be class indices or one-hot; it is converted
    to what the graph takes.  Only constant noise and the baked truncation cutoff are available.
    Subclasses implement ``_run(feeds: dict[str, torch.Tensor]) -> torch.Tensor``.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        self.path, self.meta = read_export_json(path)
        self.device = device
        self.model_file = model_file(self.path, self.meta)  # the only file a runtime may open
        model = self.meta["model"]
        self.z_dim, self.c_dim = model["z_dim"], model["c_dim"]
        self.img_resolution, self.img_channels = model["img_resolution"], model["img_channels"]
        self.inputs = [TensorSignature.from_dict(d) for d in self.meta["inputs"]]
        self.batch = BatchRange.from_dict(self.meta["batch"])
        self.backend, self.dtype = self.meta["backend"], self.meta["dtype"]
        self.config = None
        if model.get("arch"):
            from zoo.models import config_from_dict

            self.config = config_from_dict(model["arch"])

    # torch.nn.Module look-alikes, so code written for G keeps working
    def eval(self):
        return self

    def to(self, device):
        if str(device) != str(self.device):
            raise ZooError(f"this {self.backend} artifact was loaded for {self.device}; load it again for {device}")
        return self

    def _feeds(self, z, c, truncation_psi) -> dict:
        import torch

        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        n = z.shape[0]
        if self.batch.dynamic and not self.batch.contains(n) and self.backend in ("tensorrt", "compile"):
            raise ValueError(f"batch {n} is outside this artifact's range {self.batch.min}..{self.batch.max}")
        if not self.batch.dynamic and n != self.batch.min:
            raise ValueError(f"this artifact has a static batch of {self.batch.min}, got {n}")
        feeds = {"z": z}
        names = {s.name: s for s in self.inputs}
        if "c" in names:
            if c is None:
                raise ValueError(f"this model is class-conditional (c_dim={self.c_dim}): pass c")
            c = torch.as_tensor(c)
            if names["c"].dtype == "int64":
                c = c.argmax(dim=1) if c.ndim == 2 else c
                feeds["c"] = c.to(torch.int64).reshape(n)
            else:
                c = torch.nn.functional.one_hot(c.long(), self.c_dim) if c.ndim == 1 else c
                feeds["c"] = c.float().reshape(n, self.c_dim)
        if "psi" in names:
            psi = torch.as_tensor(truncation_psi, dtype=torch.float32)
            feeds["psi"] = psi.expand(n).contiguous() if psi.ndim == 0 else psi.reshape(n)
        elif float(truncation_psi) != 1.0:
            raise ValueError("this artifact has no truncation input; truncate z before calling it")
        return feeds

    def __call__(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                 noise_mode: str = "const", **unused):
        if noise_mode != "const":
            raise ValueError(f"exported generators use constant noise only (noise_mode='const'), got {noise_mode!r}")
        baked = self.meta.get("truncation", {}).get("cutoff")
        if truncation_cutoff is not None and truncation_cutoff != baked:
            raise ValueError(f"truncation cutoff is baked into this artifact as {baked}, got {truncation_cutoff}")
        return self._run(self._feeds(z, c, truncation_psi))

    def _run(self, feeds: dict):  # pragma: no cover - implemented by each back-end
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, backend={self.backend}, dtype={self.dtype}, "
                f"device={self.device})")


class ModuleGenerator(ExportedGenerator):
    """An artifact that loads as a torch callable (``self.module``, set by the subclass) taking the graph
    inputs positionally in export.json's order: TorchScript, AOTInductor, TensorRT."""

    module = None
    grad_context = "inference_mode"  # or "no_grad" (torch-tensorrt modules are run under no_grad)

    def _run(self, feeds: dict):
        import torch

        with getattr(torch, self.grad_context)():
            out = self.module(*[feeds[s.name].to(self.device) for s in self.inputs])
        return (out[0] if isinstance(out, (list, tuple)) else out).float()
