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

from zoo.checkpoint import WEIGHT_FILES, read_config
from zoo.integrity import sha256_file, verify_manifest
from zoo.errors import ZooError


@dataclass(frozen=True)
class TeacherRef:
    """A resolved, validated teacher checkpoint."""

    ref: str          # what the user passed
    path: Path        # the checkpoint directory
    name: str | None  # its configuration name (config.json)
    config: Any       # its architecture config
    d_sha256: str     # sha256 of its discriminator.safetensors
    # files of a registry entry, verified against the registry index (None: a directory, checked against
    # its own manifest.json on every load)
    index_files: frozenset | None = None

    def summary(self) -> dict[str, Any]:
        return {"ref": self.ref, "path": str(self.path), "name": self.name,
                "discriminator_sha256": self.d_sha256}

    def load_discriminator(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """D_bar, frozen: eval mode (no spectral-norm / BN updates), no gradients, never optimised.

        Only listed, verified files are read; the discriminator must still be the one resolve_teacher
        hashed (d_sha256), so a file swapped in between is refused.
        """
        from zoo.checkpoint import load_checkpoint

        d_file = self.path / WEIGHT_FILES["D"]
        if sha256_file(d_file) != self.d_sha256:
            raise ZooError(f"--teacher {self.ref!r}: {d_file} changed since it was checked (sha256 differs)")
        if self.index_files is not None:  # a registry entry: its index, not its own manifest, is the anchor
            ckpt = load_checkpoint(self.path, device=str(device), verify=False, listed=self.index_files)
        else:
            ckpt = load_checkpoint(self.path, device=str(device))
        return freeze(ckpt.D)


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


def _locate(ref: str) -> tuple[Path, dict[str, Any] | None]:
    """(checkpoint directory, the registry index's file records or None for a plain directory)."""
    from zoo.registry import locate

    try:
        path, entry = locate(ref)
    except ZooError as exc:
        raise ZooError(f"--teacher {exc}") from None
    return path, None if entry is None else entry.files


def resolve_teacher(ref: str, student_cfg) -> TeacherRef:
    """Find and validate a teacher for ``student_cfg``; raises ZooError with the first mismatch."""
    path, index_files = _locate(ref)
    # what lists the teacher's files: the registry index (already verified), else its manifest.json
    listed = set(index_files) if index_files is not None else verify_manifest(path)
    d_file = path / WEIGHT_FILES["D"]
    if not d_file.is_file():
        raise ZooError(f"--teacher {ref!r}: {path} has no {WEIGHT_FILES['D']}; DGL-GAN needs the teacher's "
                       "discriminator (train it with `zoo train --ch-mul 1` or import it with its D)")
    if listed is not None and WEIGHT_FILES["D"] not in listed:
        raise ZooError(f"--teacher {ref!r}: {d_file} is not listed in the "
                       f"{'registry index' if index_files is not None else 'checkpoint manifest.json'} (copied in "
                       "after it was written or published); refusing an unverified discriminator")
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
    d_sha256 = index_files[WEIGHT_FILES["D"]]["sha256"] if index_files is not None else sha256_file(d_file)
    return TeacherRef(ref=ref, path=path.resolve(), name=name, config=cfg, d_sha256=d_sha256,
                      index_files=frozenset(index_files) if index_files is not None else None)
