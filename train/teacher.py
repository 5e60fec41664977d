"""The teacher of a DGL-GAN run: where it comes from, whether it fits the student, its frozen D_bar.

A teacher is a full-width (ch_mul 1) checkpoint of the student's family, resolution, image channels
and classes: a directory written by ``zoo train --ch-mul 1`` or ``zoo import``, or a registry entry
``NAME[@version]``.  Only its discriminator is used.  Every check runs before any training starts.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import WEIGHT_FILES, read_config, sha256_file
from zoo.errors import ZooError


@dataclass(frozen=True)
class TeacherRef:
    """A resolved, validated teacher checkpoint."""

    ref: str          # what the user passed
    path: Path        # the checkpoint directory
    name: str | None  # its configuration name (config.json)
    config: Any       # its architecture config
    d_sha256: str     # sha256 of its discriminator.safetensors

    def summary(self) -> dict[str, Any]:
        return {"ref": self.ref, "path": str(self.path), "name": self.name,
                "discriminator_sha256": self.d_sha256}

    def load_discriminator(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """D_bar, frozen: eval mode (no spectral-norm / BN updates), no gradients, never optimised."""
        from zoo.checkpoint import load_checkpoint

        D_bar = load_checkpoint(self.path, device=str(device)).D
        return freeze(D_bar)


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    module.eval().requires_grad_(False)
    return module


def num_classes(cfg) -> int:
    """Classes of an architecture config (0 = unconditional)."""
    return int(getattr(cfg, "c_dim", 0) or getattr(cfg, "n_classes", 0) or 0)


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over every tensor of a state dict (names, dtypes, shapes, bytes): bit-identity check."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _locate(ref: str) -> Path:
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    looks_like_path = "/" in ref or ref.startswith(".") or path.suffix != ""
    name, _, version = ref.partition("@")
    try:
        from zoo.registry import resolve
    except ImportError:
        resolve = None
    if resolve is not None and not looks_like_path:
        try:
            store, entry = resolve(name, 1, version or None)
        except ZooError as exc:
            raise ZooError(f"--teacher {ref!r} is neither a checkpoint directory nor a registry entry ({exc})") from None
        return Path(store.fetch(entry))
    raise ZooError(f"--teacher {ref!r}: no such checkpoint directory")


def resolve_teacher(ref: str, student_cfg) -> TeacherRef:
    """Find and validate a teacher for ``student_cfg``; raises ZooError with the first mismatch."""
    path = _locate(ref)
    if not (path / "config.json").is_file():
        raise ZooError(f"--teacher {ref!r}: {path} is not a checkpoint directory (no config.json)")
    d_file = path / WEIGHT_FILES["D"]
    if not d_file.is_file():
        raise ZooError(f"--teacher {ref!r}: {path} has no {WEIGHT_FILES['D']}; DGL-GAN needs the teacher's "
                       "discriminator (train it with `zoo train --ch-mul 1` or import it with its D)")
    try:
        name, cfg = read_config(path)
    except ValueError as exc:
        raise ZooError(f"--teacher {ref!r}: unreadable config.json ({exc})") from None
    checks = [
        ("family", cfg.family, student_cfg.family),
        ("resolution", cfg.resolution, student_cfg.resolution),
        ("image channels", cfg.img_channels, student_cfg.img_channels),
        ("classes", num_classes(cfg), num_classes(student_cfg)),
    ]
    for what, got, want in checks:
        if got != want:
            raise ZooError(f"--teacher {ref!r} does not fit the student: its {what} is {got}, the student's is "
                           f"{want}")
    if str(cfg.ch_mul) != "1":
        raise ZooError(f"--teacher {ref!r} has ch_mul={cfg.ch_mul}; a DGL-GAN teacher is the full-width "
                       "(ch_mul 1) network")
    return TeacherRef(ref=ref, path=path.resolve(), name=name, config=cfg, d_sha256=sha256_file(d_file))
