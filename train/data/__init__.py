"""Datasets for training and metrics: the embedded sets (emoji, Fashion-MNIST), a user's images, the loader.

    >>> from train.data import build_dataset, load_dataset, infinite_loader
    >>> build_dataset("emoji", "data/emoji-portrait-64", resolution=64, subset="portrait")
    >>> ds = load_dataset("data/emoji-portrait-64")      # images uint8 NCHW, labels int64 or None
    >>> img, labels = next(infinite_loader(ds, batch_size=16, seed=0, xflip=True))  # float [-1, 1] NCHW

The same from the shell: ``zoo data build emoji|fashion-mnist`` and ``zoo data import``; see docs/data.md.
Importing this package pulls in numpy only (torch and Pillow load on use).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from zoo.train.data.dataset import FORMAT, ImageDataset, content_sha256, infinite_loader, load_dataset, save_dataset

# kind -> (module, builder function); each builder returns (ImageDataset, source, build)
BUILDERS = {
    "emoji": ("zoo.train.data.emoji", "build_emoji"),
    "fashion-mnist": ("zoo.train.data.fashion_mnist", "build_fashion_mnist"),
    "import": ("zoo.train.data.folder", "import_images"),
}


def build_dataset(kind: str, out: str | os.PathLike, *, overwrite: bool = True, **params: Any) -> ImageDataset:
    """Build a dataset of ``kind`` ('emoji', 'fashion-mnist' or 'import') and write it to ``out``.

    ``params`` go to the builder: emoji ``resolution, subset, limit``; fashion-mnist ``resolution,
    split, source``; import ``src, resolution, channels, fit, labels_from_dirs, name``.
    """
    if kind not in BUILDERS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(BUILDERS)}")
    module, fn = BUILDERS[kind]
    from zoo.errors import ZooError

    if not overwrite and (Path(out) / "dataset.json").exists():  # fail before spending time on the build
        raise ZooError(f"{out} already holds a dataset (pass --force to replace it)")
    if kind == "import":
        params = dict(params)
        src = params.pop("src")
        ds, source, build = getattr(importlib.import_module(module), fn)(src, **params)
    else:
        ds, source, build = getattr(importlib.import_module(module), fn)(**params)
    save_dataset(ds, out, source=source, build=build, overwrite=overwrite)
    return ds


__all__ = ["BUILDERS", "FORMAT", "ImageDataset", "build_dataset", "content_sha256", "infinite_loader",
           "load_dataset", "save_dataset"]
