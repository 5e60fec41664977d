"""Read ``torch.save`` checkpoints (zip format and the pre-1.6 legacy format) without ``torch.load``.

rosinality and BigGAN-PyTorch checkpoints are pickles.  ``torch.load(weights_only=True)`` restricts
what they may name, but it has had published bypasses (fixed in torch 2.6 and again in 2.10), and it
allocates a storage of whatever size the file declares before reading it.  So the importer does not
call it: the object pickle goes through :class:`zoo.convert.unpickle.SafeUnpickler` with the torch
allow-list (tensors, ``OrderedDict``, plain containers, ``argparse.Namespace``), and the storages are
read here, each only after checking that its bytes are really in the file.

Zip checks, all before the pickle is read: at most :data:`MAX_MEMBERS` entries (from the end of the
central directory, before ``zipfile`` parses it), no duplicate names, exactly one ``*/data.pkl``,
every member stored uncompressed (``torch.save`` never compresses, so a compressed member can only
be a zip bomb) and lying inside the file, ``byteorder`` little-endian.  Each storage's record must
hold exactly ``numel * itemsize`` bytes; it is read in chunks and the count enforced while reading,
whatever the headers say.
"""
from __future__ import annotations

import os
import posixpath
import zipfile
from pathlib import Path
from typing import Any

from zoo.convert.unpickle import (DEFAULT_LIMITS, Budget, Limits, SafeUnpickler, Storage, _itemsize, _short,
                                  guarded, read_legacy, storage_once, torch_names)
from zoo.errors import ZooError

TORCH_FORMATS = "a torch.save checkpoint of tensors and plain data (rosinality or BigGAN-PyTorch)"
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
MAX_MEMBERS = 100_000
MAX_CENTRAL_DIRECTORY = 32 << 20
_CHUNK = 1 << 20


def _central_directory_ok(fh, size: int) -> None:
    """Bound the entry count and central-directory size from the end record, before zipfile builds
    a ZipInfo for every entry (which costs far more memory than the 46 bytes each takes on disk)."""
    try:
        # zipfile's own end-record parser (private but unchanged for decades): the numbers it returns
        # are exactly the ones ZipFile will trust next
        end = zipfile._EndRecData(fh)
    except (OSError, AttributeError):
        end = None
    if end is None:
        raise ZooError("truncated or corrupt torch checkpoint (no zip end record)")
    entries, cd_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > MAX_MEMBERS or cd_size > MAX_CENTRAL_DIRECTORY or cd_size > size:
        raise ZooError(f"refusing a zip with {entries:,} entries / a {cd_size:,}-byte central directory "
                       f"(at most {MAX_MEMBERS:,} entries, {MAX_CENTRAL_DIRECTORY:,} bytes)")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int, into=None) -> bytes | None:
    """Read exactly ``nbytes`` of ``info`` in chunks, refusing more or fewer whatever the headers say."""
    got = 0
    parts = []
    view = memoryview(into).cast("B") if into is not None else None
    with zf.open(info) as src:
        while True:
            chunk = src.read(min(_CHUNK, nbytes - got + 1))
            if not chunk:
                break
            if got + len(chunk) > nbytes:
                raise ZooError(f"refusing {info.filename}: it holds more than the {nbytes:,} bytes expected")
            if view is not None:
                view[got:got + len(chunk)] = chunk
            else:
                parts.append(chunk)
            got += len(chunk)
    if got != nbytes:
        raise ZooError(f"truncated or corrupt torch checkpoint: {info.filename} has {got:,} bytes, {nbytes:,} expected")
    return None if view is not None else b"".join(parts)


def _read_zip(fh, size: int, budget: Budget) -> Any:
    import io

    import torch

    _central_directory_ok(fh, size)
    fh.seek(0)
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ZooError(f"refusing a zip with {len(infos):,} entries (at most {MAX_MEMBERS:,})")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ZooError("refusing a zip with duplicate member names (readers could disagree on which is used)")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise ZooError(f"refusing {info.filename}: compressed zip member (torch.save stores every member "
                               "uncompressed)")
            if info.header_offset + info.compress_size > size:
                raise ZooError(f"truncated or corrupt torch checkpoint: {info.filename} extends past the end")
        pkls = [n for n in names if posixpath.basename(n) == "data.pkl" and posixpath.dirname(n)
                and "/" not in posixpath.dirname(n)]
        if len(pkls) != 1:
            raise ZooError(f"not a torch checkpoint: {len(pkls)} '<name>/data.pkl' records")
        prefix = posixpath.dirname(pkls[0])
        by_name = {i.filename: i for i in infos}
        order = by_name.get(f"{prefix}/byteorder")
        if order is not None and (order.file_size > 16 or _read_member(zf, order, order.file_size) != b"little"):
            raise ZooError("refusing a big-endian torch checkpoint (not supported)")
        pkl = by_name[pkls[0]]
        budget.store(pkl.file_size, "the object pickle")
        data = _read_member(zf, pkl, pkl.file_size)
        storages: dict[str, Storage] = {}

        def new_storage(dtype, key, numel):
            info = by_name.get(f"{prefix}/data/{key}")
            if info is None:
                raise ZooError(f"truncated or corrupt torch checkpoint: no record for storage {_short(key)}")
            nbytes = numel * _itemsize(dtype)
            if info.file_size != nbytes:
                raise ZooError(f"malformed torch checkpoint: storage {_short(key)} declares {nbytes:,} bytes, its "
                               f"record holds {info.file_size:,}")
            budget.store(nbytes, f"a storage of {nbytes:,} bytes")
            st = Storage(dtype, numel, torch.empty((nbytes,), dtype=torch.uint8))
            _read_member(zf, info, nbytes, into=st.data.numpy())
            st.filled = True
            return st

        def persistent(pid):
            return storage_once(storages, pid, new_storage)

        return SafeUnpickler(io.BytesIO(data), what=TORCH_FORMATS, allowed=torch_names(budget),
                             persistent_load=persistent, budget=budget, size=len(data), encoding="utf-8").load()


def load_torch_file(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The object a ``torch.save`` file holds (tensors and plain data only), read without torch.load.

    Refusals (a name beyond tensors and plain data, a size over a limit) raise ZooError starting
    ``refusing``; damaged files raise ZooError saying ``truncated or corrupt``."""
    path = Path(path)

    def run():
        budget = Budget(limits)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(len(LEGACY_MAGIC))
            fh.seek(0)
            if head[:4] == b"PK\x03\x04":
                return _read_zip(fh, size, budget)
            if head == LEGACY_MAGIC:
                return read_legacy(fh, size, budget, torch_names(budget), TORCH_FORMATS)
            raise ZooError("not a torch checkpoint")

    return guarded(path, TORCH_FORMATS, run)
