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

Untrusted archives are bounded (see :class:`ArchiveLimits`): a zip's member count, each member's
uncompressed size, the total and the compression ratio are checked from the central directory
before anything is read, and enforced again while each member is streamed, since the headers can
lie.  Only stored and deflated members are read (zipfile inflates bzip2/LZMA chunks without an
output bound).  Pillow's decompression-bomb limit stays on -- ``DecompressionBombWarning`` is an
error here, and the pixel limit is applied even if ``Image.MAX_IMAGE_PIXELS`` was disabled -- and
each image is reduced to the target resolution as soon as it is decoded, so at most one full-size
image is in memory at a time.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from zoo.errors import ZooError

LABELS_FILE = "dataset.json"
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
PILLOW_DEFAULT_MAX_PIXELS = int(1024 * 1024 * 1024 // 4 // 3)  # Pillow's own default (about 89.5 Mpx)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what an image folder or zip may make the importer read.  Defaults: generous for
    photos (a 256 MiB file is ~90 Mpx of 16-bit RGB TIFF) and datasets (FFHQ is 70k files), small
    enough that a crafted zip cannot exhaust memory or run for hours."""

    max_members: int = 250_000                 # zip entries
    max_member_bytes: int = 256 << 20          # one file, uncompressed
    max_total_bytes: int = 32 << 30            # all members of a zip, uncompressed
    max_ratio: int = 200                       # uncompressed / compressed, per member and in total
    ratio_floor: int = 1 << 20                 # members below this size are exempt from the per-member ratio
    max_central_directory: int = 64 << 20      # bytes of zip index parsed before the checks above
    max_image_pixels: Optional[int] = None     # None: Pillow's MAX_IMAGE_PIXELS (its default if disabled)


DEFAULT_LIMITS = ArchiveLimits()


def _mib(n: int) -> str:
    return f"{n / 2 ** 20:,.1f} MiB"


def _check_zip_directory(src: Path, zf: zipfile.ZipFile, limits: ArchiveLimits) -> list:
    """Member infos to read, after every check the central directory allows."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ZooError(f"{src}: {len(infos):,} zip entries; at most {limits.max_members:,} are read")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ZooError(f"{src}: duplicate file names in the zip (which one is meant is ambiguous)")
    files = [i for i in infos if not i.is_dir()]
    total = total_compressed = 0
    for info in files:
        if info.flag_bits & 0x1:
            raise ZooError(f"{src}: {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ZooError(f"{src}: {info.filename} uses zip compression method {info.compress_type}; only stored and "
                           "deflated members are read (re-create the zip with the default compression)")
        if info.file_size > limits.max_member_bytes:
            raise ZooError(f"{src}: {info.filename} is {_mib(info.file_size)} uncompressed; at most "
                           f"{_mib(limits.max_member_bytes)} per file")
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ZooError(f"{src}: {info.filename} expands {info.file_size / max(info.compress_size, 1):,.0f}x "
                           f"({_mib(info.file_size)} from {info.compress_size:,} bytes); more than "
                           f"{limits.max_ratio}x looks like a zip bomb")
        total += info.file_size
        total_compressed += info.compress_size
    if total > limits.max_total_bytes:
        raise ZooError(f"{src}: {_mib(total)} uncompressed in total; at most {_mib(limits.max_total_bytes)}")
    if total > limits.max_ratio * total_compressed + limits.ratio_floor:
        raise ZooError(f"{src}: {_mib(total)} uncompressed from {_mib(total_compressed)}; more than "
                       f"{limits.max_ratio}x in total looks like a zip bomb")
    return sorted(files, key=lambda i: i.filename)


def _central_directory_ok(src: Path, fh, limits: ArchiveLimits) -> None:
    # bound the index *before* ZipFile parses it into one ZipInfo per entry (hundreds of bytes each
    # in memory for 46 on disk); zipfile's own end-record reader gives the numbers ZipFile will use
    try:
        end = zipfile._EndRecData(fh)
    except (OSError, AttributeError):
        end = None
    if end is None:
        raise ZooError(f"{src}: not a readable zip file (no end-of-archive record)")
    entries, cd_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > limits.max_members or cd_size > limits.max_central_directory:
        raise ZooError(f"{src}: the zip declares {entries:,} entries in a {_mib(cd_size)} index; at most "
                       f"{limits.max_members:,} entries / {_mib(limits.max_central_directory)} are read")
    fh.seek(0)


class _Counter:
    def __init__(self):
        self.total = 0


def _stream(src: Path, name: str, fh, declared: int, limits: ArchiveLimits, counter: _Counter,
            compressed: Optional[int] = None) -> bytes:
    """Read ``fh`` in chunks, enforcing the size bounds on what actually comes out (the declared
    size in a zip header can lie)."""
    parts, got = [], 0
    bound = min(declared, limits.max_member_bytes)
    while True:
        chunk = fh.read(min(_CHUNK, bound - got + 1))
        if not chunk:
            break
        got += len(chunk)
        counter.total += len(chunk)
        if got > bound:
            raise ZooError(f"{src}: {name} holds more than {'its declared ' if bound == declared else ''}"
                           f"{bound:,} bytes; refusing it")
        if counter.total > limits.max_total_bytes:
            raise ZooError(f"{src}: more than {_mib(limits.max_total_bytes)} uncompressed in total")
        if compressed is not None and got > limits.ratio_floor and got > limits.max_ratio * max(compressed, 1):
            raise ZooError(f"{src}: {name} expands more than {limits.max_ratio}x; looks like a zip bomb")
        parts.append(chunk)
    return b"".join(parts)


def _entries(src: Path, stack: contextlib.ExitStack, limits: ArchiveLimits) -> list[tuple[str, Callable[[], bytes]]]:
    """(relative path with '/', bounded reader) for every file of a folder or zip, sorted by path."""
    counter = _Counter()
    if src.is_dir():
        files = sorted((p for p in src.rglob("*") if p.is_file()), key=lambda p: p.relative_to(src).as_posix())

        def reader(p: Path) -> Callable[[], bytes]:
            def read() -> bytes:
                with open(p, "rb") as fh:  # a local file's size is real, but it may grow while read
                    return _stream(src, p.relative_to(src).as_posix(), fh, os.fstat(fh.fileno()).st_size, limits,
                                   _Counter())
            return read

        for p in files:
            if p.stat().st_size > limits.max_member_bytes:
                raise ZooError(f"{src}: {p.relative_to(src).as_posix()} is {_mib(p.stat().st_size)}; at most "
                               f"{_mib(limits.max_member_bytes)} per file")
        return [(p.relative_to(src).as_posix(), reader(p)) for p in files]
    if src.is_file() and zipfile.is_zipfile(src):
        fh = stack.enter_context(open(src, "rb"))
        _central_directory_ok(src, fh, limits)
        try:
            zf = stack.enter_context(zipfile.ZipFile(fh))
        except Exception as exc:  # untrusted structure: whatever zipfile trips over (BadZipFile,
            # NotImplementedError for odd versions, struct.error, ...) means a corrupt archive
            raise ZooError(f"{src}: corrupt zip file ({type(exc).__name__}: {str(exc)[:200]})") from None
        infos = _check_zip_directory(src, zf, limits)

        def member(info: zipfile.ZipInfo) -> Callable[[], bytes]:
            def read() -> bytes:
                try:
                    with zf.open(info) as member_fh:
                        return _stream(src, info.filename, member_fh, info.file_size, limits, counter,
                                       compressed=info.compress_size)
                except ZooError:
                    raise
                except Exception as exc:  # BadZipFile, zlib.error, ...: the member is corrupt.  A CRC
                    # mismatch is also how zipfile reports a member that inflates past its header
                    raise ZooError(f"{src}: corrupt zip member {info.filename} ({type(exc).__name__}: "
                                   f"{str(exc)[:200]})") from None
            return read

        return [(info.filename, member(info)) for info in infos]
    if src.exists():
        raise ZooError(f"{src}: neither a directory nor a zip file")
    raise ZooError(f"{src}: no such file or directory")


def _pixel_limit(limits: ArchiveLimits) -> int:
    from PIL import Image

    if limits.max_image_pixels is not None:
        return limits.max_image_pixels
    # if something in the process disabled Pillow's limit (None), ours still holds at its default
    return Image.MAX_IMAGE_PIXELS or PILLOW_DEFAULT_MAX_PIXELS


def _decode(src: Path, rel: str, data: bytes, limits: ArchiveLimits):
    """A loaded PIL image, or None when the bytes are not a decodable image.  A decompression bomb
    is a ZooError (refusing the import), not a silently skipped file."""
    from PIL import Image, UnidentifiedImageError

    max_pixels = _pixel_limit(limits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise Image.DecompressionBombError(f"{w}x{h} pixels")
            img.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ZooError(f"{src}: {rel} is a decompression bomb or an oversized image ({exc}); at most "
                           f"{max_pixels:,} pixels per image") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
            return None
    return img


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
                fit: str = "crop", labels_from_dirs: bool = False, progress: bool = True,
                limits: ArchiveLimits = DEFAULT_LIMITS) -> dict:
    """Decode a folder or zip of images. Returns a dict with ``images`` (uint8 NCHW), ``labels`` (int64 or
    None), ``label_names``, ``files`` (kept paths), ``skipped`` (unreadable paths) and ``source_sizes``.

    ``resolution=None`` keeps the images' own size (they must all be square and of one size).
    ``limits`` bounds what an untrusted folder/zip can make this read (see :class:`ArchiveLimits`).
    """
    from tqdm.auto import tqdm

    src = Path(src)
    if channels not in (None, 1, 3):
        raise ZooError(f"channels must be 1 or 3, got {channels}")
    if fit not in ("crop", "pad"):
        raise ZooError(f"unknown fit {fit!r}; choose crop or pad")
    with contextlib.ExitStack() as stack:
        entries = _entries(src, stack, limits)
        label_map, label_names = None, None
        for rel, read in entries:
            if rel == LABELS_FILE:
                try:
                    meta = json.loads(read())
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                    raise ZooError(f"{src}/{LABELS_FILE} is not valid JSON: {type(exc).__name__}: "
                                   f"{str(exc)[:200]}") from None
                if isinstance(meta, dict) and meta.get("labels") is not None:
                    try:
                        label_map = {str(p).replace("\\", "/"): int(c) for p, c in meta["labels"]}
                    except (TypeError, ValueError, RecursionError):
                        raise ZooError(f"{src}/{LABELS_FILE}: 'labels' must be a list of [path, int]") from None
                    label_names = meta.get("label_names")
                    if label_names is not None and not (isinstance(label_names, list)
                                                        and all(isinstance(n, str) for n in label_names)):
                        raise ZooError(f"{src}/{LABELS_FILE}: 'label_names' must be a list of strings")
        if label_map is not None and labels_from_dirs:
            raise ZooError(f"{src} has a {LABELS_FILE} with labels: do not also ask for labels from directories")

        # Each image is reduced to the target resolution as soon as it is decoded (both 1- and
        # 3-channel versions of grey images while the channel count is still open), so memory holds
        # one full-size image at a time, not the whole folder.
        files, skipped, sizes, grey = [], [], set(), []
        arrays: dict[int, list] = {1: [], 3: []}
        target = resolution
        for rel, read in tqdm([e for e in entries if e[0] != LABELS_FILE], desc=f"read {src.name}", unit="file",
                              disable=not progress, mininterval=1.0):
            img = _decode(src, rel, read(), limits)
            if img is None:
                skipped.append(rel)
                continue
            if target is None and not files:
                target = img.size[0] if img.size[0] == img.size[1] else None
            sizes.add(img.size)
            is_grey = img.mode in GREY_MODES
            wanted = (channels,) if channels else ((1, 3) if is_grey else (3,))
            try:
                # with resolution=None an image of another size is only counted: the error follows
                convertible = target is not None and (resolution is not None or img.size == (target, target))
                made = {c: _to_square(img, target, fit, c) for c in wanted} if convertible else {}
            except (OSError, ValueError):  # decodes, but Pillow cannot convert it: unreadable too
                skipped.append(rel)
                continue
            finally:
                img.close()
            for c, arr in made.items():
                arrays[c].append(arr)
            files.append(rel)
            grey.append(is_grey)
    if skipped:
        warnings.warn(f"{src}: skipped {len(skipped)} file(s) that are not readable images: "
                      f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}", stacklevel=2)
    if not files:
        raise ZooError(f"{src}: no readable images found ({len(skipped)} file(s) skipped): empty dataset")

    if channels is None:
        channels = 1 if all(grey) else 3
    sizes = sorted(sizes)
    if resolution is None:
        if len(sizes) != 1 or sizes[0][0] != sizes[0][1]:
            raise ZooError(f"{src}: images have sizes {sizes[:4]}; pass a resolution to resize them")
        resolution = sizes[0][0]
    images = np.stack(arrays[channels])

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
    from zoo.train.data.dataset import ImageDataset

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
