"""Import the official StyleGAN2 / BigGAN checkpoints people actually have, without running their code.

    >>> from zoo.convert import import_checkpoint, import_to_dir
    >>> ckpt = import_checkpoint("stylegan2-ffhq-config-f.pkl")         # .G, .G_ema, .D, .config
    >>> import_to_dir("network-snapshot-025000.pkl", "teachers/mine")     # a zoo checkpoint directory

Formats (auto-detected; see docs/import.md):

* ``stylegan2-ada``  -- NVlabs stylegan2-ada-pytorch / stylegan3 ``network-snapshot-*.pkl`` (StyleGAN2
  architecture), read by :class:`zoo.convert.unpickle.SafeUnpickler`: the Python source those pickles
  embed is never imported or executed.
* ``stylegan2-tf``   -- NVlabs TensorFlow StyleGAN2 pickles ``(G, D, Gs)`` (the paper's teachers); no
  TensorFlow needed, same restricted unpickler.
* ``rosinality``     -- rosinality/stylegan2-pytorch ``torch.save`` checkpoints.
* ``biggan-pytorch`` -- ajbrock/BigGAN-PyTorch ``G.pth`` / ``D.pth`` / ``G_ema.pth`` state dicts.

torch checkpoints are read by :mod:`zoo.convert.torchfile` with the same restricted unpickler, never
by ``torch.load`` (whose ``weights_only`` guard has had published bypasses).  Every reader bounds what
a file can make it allocate, and every failure, in reading or in converting, is a ZooError.

The architecture is inferred from the tensors and written as an explicit config (per-resolution
widths and all), so the imported networks reproduce the originals' outputs (tests/test_convert*.py
check 1e-4 against outputs of the original code).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

FORMATS = ("stylegan2-ada", "stylegan2-tf", "rosinality", "biggan-pytorch")
FORMAT_HELP = {
    "stylegan2-ada": "NVlabs stylegan2-ada-pytorch / stylegan3 network pickle (network-snapshot-*.pkl)",
    "stylegan2-tf": "NVlabs TensorFlow StyleGAN2 pickle (G, D, Gs)",
    "rosinality": "rosinality/stylegan2-pytorch checkpoint (torch.save dict with g_ema)",
    "biggan-pytorch": "ajbrock/BigGAN-PyTorch state dicts (G.pth / G_ema.pth, D.pth)",
}
LICENCE_NOTES = {
    "stylegan2-ada": (
        "Converted from an NVlabs StyleGAN2-ADA/StyleGAN3 network pickle. The weights keep the terms of the source "
        "file: NVIDIA's official models are under the NVIDIA Source Code License (non-commercial, research and "
        "evaluation only); for networks trained with NVlabs' code, check that licence's terms."),
    "stylegan2-tf": (
        "Converted from an NVlabs TensorFlow StyleGAN2 pickle. The official StyleGAN2 models are under the NVIDIA "
        "Source Code License-NC (non-commercial use only); FFHQ/LSUN images have their own terms."),
    "rosinality": (
        "Converted from a rosinality/stylegan2-pytorch checkpoint (code: MIT). Weights converted from NVIDIA's "
        "official models keep NVIDIA's non-commercial licence; check the terms of the data the model was trained on."),
    "biggan-pytorch": (
        "Converted from ajbrock/BigGAN-PyTorch weights (code: MIT). The released ImageNet weights are subject to the "
        "repository's terms and the ImageNet terms of access (non-commercial research)."),
}


def _torch_load(path: Path) -> Any:
    """A torch.save checkpoint read by zoo's own restricted reader (never ``torch.load``: its
    ``weights_only`` guard has had published bypasses, see zoo/convert/torchfile.py)."""
    from zoo.convert.torchfile import load_torch_file

    try:
        return load_torch_file(path)
    except ZooError as exc:
        text = str(exc)
        if "refusing to unpickle" in text or "refusing to call" in text or "refusing to instantiate" in text:
            detail = text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text
            raise ZooError(f"{path}: refusing to load: the checkpoint holds more than tensors and plain data "
                           f"({detail[:300]}); expected {FORMAT_HELP['rosinality']} or "
                           f"{FORMAT_HELP['biggan-pytorch']}") from None
        raise


def _is_biggan_state(obj: Any) -> bool:
    return isinstance(obj, dict) and any(str(k).startswith("blocks.0.0.") for k in obj) and \
        ("linear.weight" in obj or "linear.weight_orig" in obj)


def read_source(path: str | os.PathLike) -> tuple[str, Any]:
    """Read ``path`` safely and say which format it is: (format, data)."""
    from zoo.convert.torchfile import LEGACY_MAGIC
    from zoo.convert.unpickle import PersistentObject, TFNetwork, safe_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise ZooError(f"{path}: empty file")
    if head[:4] == b"PK\x03\x04" or head.startswith(LEGACY_MAGIC):
        data = _torch_load(path)
        if isinstance(data, dict) and isinstance(data.get("g_ema"), dict):
            return "rosinality", data
        if _is_biggan_state(data):
            return "biggan-pytorch", data
        keys = [str(k)[:40] for k in list(data)[:8]] if isinstance(data, dict) else type(data).__name__
        raise ZooError(f"{path}: a torch checkpoint, but neither {FORMAT_HELP['rosinality']} nor "
                       f"{FORMAT_HELP['biggan-pytorch']} (found {keys})")
    if head[:1] == b"\x80":
        data = safe_load(path)
        if isinstance(data, dict) and isinstance(data.get("G_ema"), PersistentObject):
            return "stylegan2-ada", data
        if isinstance(data, tuple) and data and all(isinstance(n, TFNetwork) for n in data):
            return "stylegan2-tf", data
        raise ZooError(f"{path}: a pickle, but neither {FORMAT_HELP['stylegan2-ada']} nor "
                       f"{FORMAT_HELP['stylegan2-tf']}")
    raise ZooError(f"{path}: unrecognised file (not a pickle or torch checkpoint); expected one of: "
                   + "; ".join(FORMAT_HELP.values()))


def _convert(fmt: str, data: Any, extra: dict[str, Any]):
    if fmt == "stylegan2-ada":
        from zoo.convert.stylegan2 import from_ada_pickle

        return from_ada_pickle(data)
    if fmt == "stylegan2-tf":
        from zoo.convert.stylegan2 import from_tf_pickle

        return from_tf_pickle(data)
    if fmt == "rosinality":
        from zoo.convert.stylegan2 import from_rosinality

        return from_rosinality(data)
    from zoo.convert.biggan import from_biggan_pytorch

    return from_biggan_pytorch(G=data, D=extra.get("d"), G_ema=extra.get("g_ema"))


def _convert_sources(src, format: str | None, d, g_ema):
    if format is not None and format not in FORMATS:
        raise ZooError(f"unknown format {format!r}; known: {', '.join(FORMATS)}")
    fmt, data = read_source(src)
    if format is not None and fmt != format:
        raise ZooError(f"{src}: expected {FORMAT_HELP[format]}, but the file is {FORMAT_HELP[fmt]}")
    extra: dict[str, Any] = {}
    for key, path in (("d", d), ("g_ema", g_ema)):
        if path is None:
            continue
        if fmt != "biggan-pytorch":
            raise ZooError(f"--{key.replace('_', '-')} is only used with biggan-pytorch weights "
                           f"({fmt} files hold all networks)")
        other_fmt, other = read_source(path)
        if other_fmt != "biggan-pytorch":
            raise ZooError(f"{path}: expected {FORMAT_HELP['biggan-pytorch']}, found {FORMAT_HELP[other_fmt]}")
        extra[key] = other
    try:
        return fmt, _convert(fmt, data, extra)
    except ZooError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise ZooError(f"{src}: refusing: converting it raised {type(exc).__name__}; expected "
                       f"{FORMAT_HELP[fmt]}") from None
    except Exception as exc:  # untrusted input: a value of the wrong type or shape is a malformed file
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ZooError(f"{src}: malformed {FORMAT_HELP[fmt]} ({type(exc).__name__}: {first})") from None


def matching_config(config) -> str | None:
    """The catalogue configuration (e.g. ``stylegan2-ffhq``) of ``config``'s family whose full-width
    architecture builds exactly ``config``'s network (``GANFamily.signature``), or None.  An import that
    matches is the ch_mul = 1 teacher of that configuration."""
    from zoo.families import get_family
    from zoo.models import get_config

    family = get_family(config.family)
    for spec in family.catalogue:
        if family.signature(get_config(spec.name, 1)) == family.signature(config):
            return spec.name
    return None


def _metadata(fmt: str, converted, sources: dict[str, Path]) -> dict:
    from zoo import __version__
    from zoo.integrity import sha256_file

    files = {role: {"file": p.name, "sha256": sha256_file(p), "size": p.stat().st_size} for role, p in sources.items()}
    return {
        "source": {"format": fmt, "description": FORMAT_HELP[fmt], "files": files},
        "licence": LICENCE_NOTES[fmt],
        "imported_by": f"ganzoo {__version__} zoo import",
        "found": converted.found,
        "notes": converted.notes,
        "matches_config": matching_config(converted.config),
    }


def import_checkpoint(src: str | os.PathLike, format: str | None = None, d: str | os.PathLike | None = None,
                      g_ema: str | os.PathLike | None = None):
    """Convert ``src`` (plus, for BigGAN-PyTorch, optional ``d`` = D.pth and ``g_ema`` = G_ema.pth)
    into a :class:`zoo.checkpoint.Checkpoint` with eval-mode modules, without writing anything."""
    from zoo.checkpoint import Checkpoint

    fmt, conv = _convert_sources(src, format, d, g_ema)
    sources = {"src": Path(src)} | ({"d": Path(d)} if d else {}) | ({"g_ema": Path(g_ema)} if g_ema else {})
    meta = _metadata(fmt, conv, sources)
    return Checkpoint(config=conv.config, G_ema=conv.G_ema, G=conv.G, D=conv.D,
                      name=meta["matches_config"] or Path(src).stem, metadata=meta)


def import_to_dir(src: str | os.PathLike, out: str | os.PathLike, format: str | None = None,
                  d: str | os.PathLike | None = None, g_ema: str | os.PathLike | None = None):
    """:func:`import_checkpoint`, then write a zoo checkpoint directory at ``out`` (which must not
    exist; written atomically).  Returns the Checkpoint (with ``path`` set)."""
    from zoo.checkpoint import save_checkpoint

    out = Path(out)
    if out.exists():
        raise ZooError(f"{out} already exists; refusing to overwrite it (choose another --out or delete it)")
    ckpt = import_checkpoint(src, format=format, d=d, g_ema=g_ema)
    ckpt.name = ckpt.metadata["matches_config"] or out.name
    G_raw = ckpt.G if ckpt.G is not ckpt.G_ema else None
    ckpt.path = save_checkpoint(out, config=ckpt.config, G_ema=ckpt.G_ema, G=G_raw, D=ckpt.D, name=ckpt.name,
                                metadata=ckpt.metadata)
    return ckpt


__all__ = ["FORMATS", "import_checkpoint", "import_to_dir", "matching_config", "read_source"]
