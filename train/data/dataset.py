"""The on-disk dataset format, its loader and the training iterator.

A dataset is a directory:

    DIR/images.npy     uint8 [N, C, H, W] (NCHW, C = 1 or 3, H = W = resolution)
    DIR/labels.npy     int64 [N] class indices in [0, num_classes)  (absent for unlabelled data)
    DIR/items.json     optional: one small record per image (emoji code points, source file name, ...)
    DIR/dataset.json   the manifest: format, name, count, resolution, channels, label names, class counts,
                       sha256 of the content, source and build parameters

``sha256`` is the hash of the *content* (shapes + image bytes + label bytes), so two builds with the
same inputs and parameters have the same sha256, and metrics can name exactly the data they used.
The manifest holds no timestamps: building is deterministic down to the bytes of every file.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from zoo.errors import ZooError

FORMAT = "ganzoo-dataset/1"
MANIFEST = "dataset.json"
IMAGES = "images.npy"
LABELS = "labels.npy"
ITEMS = "items.json"


def content_sha256(images: np.ndarray, labels: Optional[np.ndarray]) -> str:
    """sha256 of shapes, image bytes and label bytes (the dataset's identity)."""
    h = hashlib.sha256()
    h.update(f"{FORMAT}|images|uint8|{list(images.shape)}|".encode())
    h.update(np.ascontiguousarray(images).data)
    if labels is not None:
        h.update(f"|labels|int64|{list(labels.shape)}|".encode())
        h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return h.hexdigest()


@dataclass
class ImageDataset:
    """An image dataset in memory. ``images`` is uint8 NCHW (numpy); ``labels`` int64 [N] or None."""

    images: np.ndarray
    labels: Optional[np.ndarray] = None
    label_names: Optional[list[str]] = None
    name: str = "dataset"
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    items: Optional[list[dict[str, Any]]] = None

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 [N, C, H, W] with C = 1 or 3, got {self.images.dtype} "
                             f"{list(self.images.shape)}")
        if self.images.shape[2] != self.images.shape[3]:
            raise ValueError(f"images must be square, got {self.images.shape[2]}x{self.images.shape[3]}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64)
            if self.labels.shape != (len(self.images),):
                raise ValueError(f"labels must be [N={len(self.images)}], got {list(self.labels.shape)}")
            if len(self.labels) and self.labels.min() < 0:
                raise ValueError("labels must be >= 0")
            if self.label_names is None:
                self.label_names = [str(i) for i in range(int(self.labels.max()) + 1 if len(self.labels) else 0)]
            if len(self.labels) and self.labels.max() >= len(self.label_names):
                raise ValueError(f"label {int(self.labels.max())} has no name ({len(self.label_names)} names)")
        self._sha256: Optional[str] = self.manifest.get("sha256")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        """0 for unlabelled data."""
        return 0 if self.labels is None else len(self.label_names or [])

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = content_sha256(self.images, self.labels)
        return self._sha256

    def subset(self, index: np.ndarray, name: Optional[str] = None) -> "ImageDataset":
        """A new in-memory dataset of the given rows (its sha256 is recomputed from content)."""
        index = np.asarray(index)
        return ImageDataset(self.images[index], None if self.labels is None else self.labels[index],
                            self.label_names, name or f"{self.name}[subset]",
                            items=None if self.items is None else [self.items[i] for i in index])

    def describe(self) -> dict[str, Any]:
        """What metrics and training record about the data they used."""
        return {"name": self.name, "path": str(self.path) if self.path else None, "sha256": self.sha256,
                "count": len(self), "resolution": self.resolution, "channels": self.channels,
                "num_classes": self.num_classes}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temporary sibling + rename (readers never see half a file), mode 0666 & ~umask."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def save_dataset(ds: ImageDataset, out: str | os.PathLike, *, source: dict[str, Any] | None = None,
                 build: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
    """Write ``ds`` as a dataset directory (each file atomically; the manifest last). Returns the path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"{out} exists and is not a directory")
    if out.exists() and (out / MANIFEST).exists() and not overwrite:
        raise ZooError(f"{out} already holds a dataset (pass overwrite=True / --force to replace it)")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ZooError(f"{out} is not empty and holds no dataset: refusing to write into it")
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():  # replacing: a reader must never pair the old manifest with new arrays
        (out / MANIFEST).unlink()
    counts = None if ds.labels is None else np.bincount(ds.labels, minlength=ds.num_classes).tolist()
    manifest = {
        "format": FORMAT, "name": ds.name, "count": len(ds), "resolution": ds.resolution,
        "channels": ds.channels, "layout": "NCHW", "dtype": "uint8",
        "num_classes": ds.num_classes, "label_names": ds.label_names if ds.labels is not None else None,
        "class_counts": counts, "sha256": content_sha256(ds.images, ds.labels),
        "source": source or {}, "build": build or {},
    }
    _atomic_write_bytes(out / IMAGES, _npy_bytes(ds.images))
    if ds.labels is not None:
        _atomic_write_bytes(out / LABELS, _npy_bytes(ds.labels.astype(np.int64)))
    elif (out / LABELS).exists():
        (out / LABELS).unlink()
    if ds.items is not None:
        _atomic_write_bytes(out / ITEMS, _json_bytes(ds.items))
    elif (out / ITEMS).exists():
        (out / ITEMS).unlink()
    _atomic_write_bytes(out / MANIFEST, _json_bytes(manifest))
    ds.manifest, ds.path, ds._sha256 = manifest, out, manifest["sha256"]
    return out


def load_dataset(path: str | os.PathLike, *, verify: bool = True) -> ImageDataset:
    """Load a dataset directory written by ``zoo data build`` / ``zoo data import``.

    ``verify`` re-hashes the content and raises ZooError if it does not match the manifest.
    """
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise ZooError(f"{path}: not a dataset directory (no {MANIFEST}); build one with 'zoo data build' "
                       f"or 'zoo data import'")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"{path / MANIFEST} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise ZooError(f"{path}: unsupported dataset format {manifest.get('format')!r} (expected {FORMAT})")
    try:
        images = np.load(path / IMAGES, allow_pickle=False)
        labels = np.load(path / LABELS, allow_pickle=False) if (path / LABELS).exists() else None
    except (OSError, ValueError) as exc:
        raise ZooError(f"{path}: cannot read the arrays ({exc})") from None
    if manifest.get("num_classes") and labels is None:
        raise ZooError(f"{path}: the manifest lists {manifest['num_classes']} classes but {LABELS} is missing")
    if verify and content_sha256(images, labels) != manifest.get("sha256"):
        raise ZooError(f"{path}: content does not match the sha256 in {MANIFEST} (corrupted or modified)")
    items = json.loads((path / ITEMS).read_text()) if (path / ITEMS).exists() else None
    return ImageDataset(images, labels, manifest.get("label_names"), manifest.get("name", path.name),
                        manifest=manifest, path=path, items=items)


def infinite_loader(ds: ImageDataset, batch_size: int, seed: int = 0, xflip: bool = False, rank: int = 0,
                    world_size: int = 1, device: Any = "cpu") -> Iterator[tuple[Any, Any]]:
    """Endless shuffled batches ``(images float32 [-1, 1] NCHW, labels int64 [B] or None)`` on ``device``.

    Every epoch is a permutation seeded by ``(seed, epoch)``; rank ``r`` of ``world_size`` takes the
    entries ``r, r + world_size, ...`` of it (DistributedSampler-style, disjoint across ranks), so
    all ranks together see each image once per epoch.  Batches run across epoch boundaries.  With
    ``xflip`` each sample is mirrored horizontally with probability 1/2 (seeded the same way).
    uint8 -> float is ``x / 127.5 - 1``: the inverse of ``zoo.images.to_uint8``.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if len(ds) < world_size:
        raise ValueError(f"{len(ds)} images cannot be split over {world_size} ranks")
    images = torch.from_numpy(np.ascontiguousarray(ds.images))
    labels = None if ds.labels is None else torch.from_numpy(ds.labels)

    def stream() -> Iterator[tuple[int, bool]]:
        epoch = 0
        while True:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
            perm = torch.randperm(len(ds), generator=g)
            flip = torch.rand(len(ds), generator=g) < 0.5
            for k in range(rank, len(ds), world_size):
                yield int(perm[k]), bool(flip[k]) and xflip
            epoch += 1

    it = stream()
    while True:
        picks = [next(it) for _ in range(batch_size)]
        idx = torch.tensor([i for i, _ in picks])
        img = images[idx].to(torch.float32)
        flips = torch.tensor([f for _, f in picks])
        if flips.any():
            img[flips] = img[flips].flip(-1)
        img = (img / 127.5 - 1).to(device)
        yield img, (None if labels is None else labels[idx].to(device))
