"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (70,000 real 28x28 grey images, 10 classes, MIT).

Images are zero-padded by 2 px to 32x32 (the background is black), then resized when another
resolution is asked for.  Order: the 60,000 training images, then the 10,000 test images.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from zoo.errors import ZooError

SOURCE = Path("/usr/share/datasets/fashion-mnist")
LABEL_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzipped): uint8 images [N, H, W] or labels [N]."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ZooError(f"cannot read {path}: {exc}") from None
    magic = int.from_bytes(data[:4], "big")
    if magic == 2049:
        n = int.from_bytes(data[4:8], "big")
        arr = np.frombuffer(data, np.uint8, n, offset=8)
    elif magic == 2051:
        n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
        arr = np.frombuffer(data, np.uint8, n * h * w, offset=16).reshape(n, h, w)
    else:
        raise ZooError(f"{path}: not an idx label/image file (magic {magic})")
    return arr.copy()


def _files(source: Path, split: str) -> tuple[Path, Path]:
    prefix = SPLITS[split]
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        candidates = [source / f"{prefix}-{kind}-ubyte.gz", source / f"{prefix}-{kind}-ubyte"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ZooError(f"{candidates[0]} not found: install the Debian package 'dataset-fashion-mnist' "
                           f"(apt-get install dataset-fashion-mnist) or pass --source DIR")
        found.append(path)
    return found[0], found[1]


def build_fashion_mnist(resolution: int = 32, split: str = "all", source: str | os.PathLike = SOURCE):
    """Fashion-MNIST as an ImageDataset (1 channel). Returns ``(ImageDataset, source, build)``."""
    from PIL import Image

    from zoo.train.data.dataset import ImageDataset

    if split not in ("all", *SPLITS):
        raise ZooError(f"unknown split {split!r}; choose all, train or test")
    if not 8 <= resolution <= 1024:
        raise ZooError(f"--res must be in [8, 1024], got {resolution}")
    source = Path(source)
    images, labels, files = [], [], {}
    for s in (["train", "test"] if split == "all" else [split]):
        img_path, lab_path = _files(source, s)
        x, y = read_idx(img_path), read_idx(lab_path)
        if x.ndim != 3 or len(x) != len(y):
            raise ZooError(f"{img_path} and {lab_path} do not match ({x.shape} vs {y.shape})")
        images.append(x)
        labels.append(y)
        for p in (img_path, lab_path):
            files[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    x = np.concatenate(images)
    y = np.concatenate(labels).astype(np.int64)
    pad = (32 - x.shape[1]) // 2
    x = np.pad(x, ((0, 0), (pad, 32 - x.shape[1] - pad), (pad, 32 - x.shape[2] - pad)))
    if resolution != 32:
        x = np.stack([np.asarray(Image.fromarray(im).resize((resolution, resolution), Image.Resampling.LANCZOS))
                      for im in x])
    ds = ImageDataset(x[:, None].copy(), y, list(LABEL_NAMES), f"fashion-mnist-{resolution}"
                      + ("" if split == "all" else f"-{split}"))
    src = {"kind": "fashion-mnist", "path": str(source), "files_sha256": files,
           "licence": "Fashion-MNIST (Zalando Research): MIT"}
    build = {"builder": "fashion-mnist", "split": split, "resolution": resolution,
             "transform": "zero-pad 28->32" + ("" if resolution == 32 else f", LANCZOS resize to {resolution}")}
    return ds, src, build
