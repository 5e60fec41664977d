"""A user's own images: a folder (searched recursively) or a zip, into the dataset format.

Labels, optional, come from a ``dataset.json`` at the top of the folder/zip in the StyleGAN2-ADA
convention ``{"labels": [["relative/path.png", 3], ...]}`` (an extra ``"label_names": [...]`` is
honoured), or from the first-level sub-directory names with ``labels_from_dirs``.  Every other file
is decoded with Pillow; files that are not decodable images (corrupt, text, hidden files) are skipped
with one warning and counted in the manifest.  No decodable image at all is an error.

Each image is made square (``fit='crop'``: centre crop; ``fit='pad'``: pad with white), resized
with LANCZOS to the target resolution, composited on white if it has transparency, and converted
to RGB (3 channels) or greyscale (1).  ``channels=None`` picks 1 when every source image is
greyscale, else 3.  Files are processed in sorted path order, so the result is deterministic.
"""
from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from zoo.errors import ZooError

LABELS_FILE = "dataset.json"
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def _entries(src: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(relative path with '/', reader) for every file of a folder or zip, sorted by path."""
    if src.is_dir():
        files = sorted((p for p in src.rglob("*") if p.is_file()), key=lambda p: p.relative_to(src).as_posix())
        for p in files:
            yield p.relative_to(src).as_posix(), p.read_bytes
    elif src.is_file() and zipfile.is_zipfile(src):
        zf = zipfile.ZipFile(src)  # stays open while readers reference it; closed when collected
        for info in sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename):
            yield info.filename, (lambda info=info: zf.read(info))
    elif src.exists():
        raise ZooError(f"{src}: neither a directory nor a zip file")
    else:
        raise ZooError(f"{src}: no such file or directory")


def _to_square(img, resolution: int, fit: str, channels: int):
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if fit == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    elif fit == "pad":
        side = max(w, h)
        square = Image.new(img.mode, (side, side), 255 if channels == 1 else (255, 255, 255))
        square.paste(img, ((side - w) // 2, (side - h) // 2))
        img = square
    else:
        raise ZooError(f"unknown fit {fit!r}; choose crop or pad")
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def read_images(src: str | os.PathLike, resolution: Optional[int] = None, *, channels: Optional[int] = None,
                fit: str = "crop", labels_from_dirs: bool = False, progress: bool = True) -> dict:
    """Decode a folder or zip of images. Returns a dict with ``images`` (uint8 NCHW), ``labels`` (int64 or
    None), ``label_names``, ``files`` (kept paths), ``skipped`` (unreadable paths) and ``source_sizes``.

    ``resolution=None`` keeps the images' own size (they must all be square and of one size).
    """
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    src = Path(src)
    if channels not in (None, 1, 3):
        raise ZooError(f"channels must be 1 or 3, got {channels}")
    entries = list(_entries(src))
    label_map, label_names = None, None
    for rel, read in entries:
        if rel == LABELS_FILE:
            try:
                meta = json.loads(read())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ZooError(f"{src}/{LABELS_FILE} is not valid JSON: {exc}") from None
            if isinstance(meta, dict) and meta.get("labels") is not None:
                try:
                    label_map = {str(p).replace("\\", "/"): int(c) for p, c in meta["labels"]}
                except (TypeError, ValueError):
                    raise ZooError(f"{src}/{LABELS_FILE}: 'labels' must be a list of [path, int]") from None
                label_names = meta.get("label_names")
    if label_map is not None and labels_from_dirs:
        raise ZooError(f"{src} has a {LABELS_FILE} with labels: do not also ask for labels from directories")

    decoded, skipped = [], []
    for rel, read in tqdm([e for e in entries if e[0] != LABELS_FILE], desc=f"read {src.name}", unit="file",
                          disable=not progress, mininterval=1.0):
        try:
            img = Image.open(io.BytesIO(read()))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
            skipped.append(rel)
            continue
        decoded.append((rel, img))
    if skipped:
        warnings.warn(f"{src}: skipped {len(skipped)} file(s) that are not readable images: "
                      f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", stacklevel=2)
    if not decoded:
        raise ZooError(f"{src}: no readable images found ({len(skipped)} file(s) skipped): empty dataset")

    if channels is None:
        channels = 1 if all(img.mode in GREY_MODES for _, img in decoded) else 3
    sizes = sorted({img.size for _, img in decoded})
    if resolution is None:
        if len(sizes) != 1 or sizes[0][0] != sizes[0][1]:
            raise ZooError(f"{src}: images have sizes {sizes[:4]}; pass a resolution to resize them")
        resolution = sizes[0][0]
    images = np.stack([_to_square(img, resolution, fit, channels) for _, img in decoded])
    files = [rel for rel, _ in decoded]

    labels = None
    if label_map is not None:
        missing = [f for f in files if f not in label_map]
        if missing:
            raise ZooError(f"{src}/{LABELS_FILE} has no label for {len(missing)} image(s), e.g. {missing[0]}")
        labels = np.array([label_map[f] for f in files], dtype=np.int64)
        if labels.min() < 0:
            raise ZooError(f"{src}/{LABELS_FILE}: labels must be >= 0")
    elif labels_from_dirs:
        if any("/" not in f for f in files):
            raise ZooError(f"{src}: labels from directories need every image inside a class sub-directory")
        label_names = sorted({f.split("/", 1)[0] for f in files})
        labels = np.array([label_names.index(f.split("/", 1)[0]) for f in files], dtype=np.int64)
    if labels is not None and label_names is None:
        label_names = [str(i) for i in range(int(labels.max()) + 1)]
    if labels is not None and int(labels.max()) >= len(label_names):
        raise ZooError(f"{src}: label {int(labels.max())} has no entry in label_names ({len(label_names)})")
    return {"images": images, "labels": labels, "label_names": label_names, "files": files,
            "skipped": skipped, "source_sizes": [list(s) for s in sizes[:20]], "channels": channels,
            "resolution": resolution}


def import_images(src: str | os.PathLike, resolution: int, *, channels: Optional[int] = None, fit: str = "crop",
                  labels_from_dirs: bool = False, name: Optional[str] = None, progress: bool = True):
    """A user's folder/zip as an ImageDataset. Returns ``(ImageDataset, source, build)``."""
    from train.data.dataset import ImageDataset

    if not 8 <= resolution <= 4096:
        raise ZooError(f"--res must be in [8, 4096], got {resolution}")
    src = Path(src)
    r = read_images(src, resolution, channels=channels, fit=fit, labels_from_dirs=labels_from_dirs,
                    progress=progress)
    name = name or f"{src.stem}-{resolution}"
    ds = ImageDataset(r["images"], r["labels"], r["label_names"], name,
                      items=[{"file": f} for f in r["files"]])
    source = {"kind": "folder" if src.is_dir() else "zip", "path": str(src.resolve()),
              "files_read": len(r["files"]), "files_skipped": len(r["skipped"]),
              "skipped": r["skipped"][:100], "source_sizes": r["source_sizes"]}
    build = {"builder": "import", "resolution": resolution, "channels": r["channels"], "fit": fit,
             "labels": "dataset.json" if r["labels"] is not None and not labels_from_dirs
             else ("directories" if labels_from_dirs else None), "resample": "LANCZOS"}
    return ds, source, build
