"""``publish``: turn a checkpoint (or a training run directory) into a new immutable registry version.

What goes into the entry:

* the checkpoint's ``config.json`` and weights (``generator.safetensors``, and when present
  ``generator_raw.safetensors`` and ``discriminator.safetensors``), plus ``exports/**`` if the export
  step left artifacts there (``zoo export ... --out <checkpoint>/exports/onnx``: model.onnx + export.json
  is what ``zoo.load(..., backend="onnx")`` opens, through ``zoo.runtime``);
* ``metadata.json``: the checkpoint's own metadata.json, the run's ``summary.json`` (merged under
  ``training``), ``params_G`` / ``params_D`` counted from the loaded modules (trainable parameters),
  ``macs_G_paper`` from the family's analytic counter, ``macs_G_fvcore`` only if the checkpoint already
  recorded it (``zoo stats`` / the export step compute it; the registry does not trace models), and a
  ``registry`` block (name, ch_mul, version, publish time, source, sha256 of the generator, versions);
* ``manifest.json``: sha256 and size of every other file.  The index records the same for every file.
* optionally (``card=``) a model card, ``MODEL_CARD.md``, written from the final metadata, so it is
  listed, hashed and immutable like every other file (``zoo sweep bundle`` writes one per entry).

Nothing is unpickled: the checkpoint is loaded through ``zoo.checkpoint.load_checkpoint``.
"""
from __future__ import annotations

import copy
import datetime as _dt
import os
import platform
import shutil
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from zoo.checkpoint import CONFIG_FILE, METADATA_FILE, WEIGHT_FILES
from zoo.errors import ZooError
from zoo.integrity import file_kind, read_json, sha256_file, verify_manifest, walk_tree, write_json
from zoo.registry.model import EntryRef, Store, ch_key, check_alias, check_name, check_version
from zoo.registry.schemes import open_store

EXPORTS_DIR = "exports"
ENTRY_CARD_FILE = "MODEL_CARD.md"  # an entry's model card (a Hub repo's README.md card: zoo.registry.card.model_card)
SUMMARY_FILE = "summary.json"
RUN_CHECKPOINT_SUBDIRS = ("final", "checkpoint")


def find_checkpoint(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """(checkpoint dir, run dir or None) for a checkpoint dir or a run dir holding final/ or checkpoint/."""
    source = Path(source)
    if not source.is_dir():
        raise ZooError(f"{source}: no such directory (expected a checkpoint or training run directory)")
    if (source / CONFIG_FILE).is_file():
        run = source.parent if (source.parent / SUMMARY_FILE).is_file() else None
        return source, run
    for sub in RUN_CHECKPOINT_SUBDIRS:
        if (source / sub / CONFIG_FILE).is_file():
            return source / sub, source
    raise ZooError(
        f"{source}: not a checkpoint directory (no {CONFIG_FILE}) and no run checkpoint in "
        f"{' or '.join(s + '/' for s in RUN_CHECKPOINT_SUBDIRS)}"
    )


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def build_metadata(ckpt, run_dir: Path | None) -> dict[str, Any]:
    """Metadata of a new entry from a loaded checkpoint (``zoo.checkpoint.Checkpoint``) and its run dir."""
    from zoo.families import get_family

    metadata = copy.deepcopy(ckpt.metadata or {})
    if run_dir is not None and (run_dir / SUMMARY_FILE).is_file():
        summary = read_json(run_dir / SUMMARY_FILE)
        if isinstance(summary, dict):
            metadata["training"] = {**summary, **(metadata.get("training") or {})}
    metadata["params_G"] = sum(p.numel() for p in ckpt.G_ema.parameters())
    metadata["params_D"] = sum(p.numel() for p in ckpt.D.parameters()) if ckpt.D is not None else None
    paper_macs = get_family(ckpt.config.family).paper_macs
    if paper_macs is not None:
        metadata["macs_G_paper"] = int(paper_macs(ckpt.config))
    metadata.setdefault("macs_G_fvcore", None)
    metadata["resolution"] = ckpt.config.resolution
    metadata["family"] = ckpt.config.family
    return metadata


def _software() -> dict[str, str]:
    import safetensors
    import torch

    import zoo

    return {"ganzoo": zoo.__version__, "torch": torch.__version__, "safetensors": safetensors.__version__,
            "python": platform.python_version()}


def _regular(path: Path) -> bool:
    """True for a regular file, False when there is nothing; anything else is an error.

    lstat, not is_file(): a symlink would publish its target (a key, a token, ~/.ssh/...), possibly to a
    public Hub repo, and a FIFO or device would hang or fill the copy.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        raise ZooError(f"{path}: {file_kind(mode)}; publish copies regular files only (replace it with the file)")
    return True


def _copy_entry_files(ckpt_dir: Path, staged: Path, include_D: bool, listed: set[str] | None = None,
                      include_G_raw: bool = True) -> list[str]:
    """Copy what an entry holds into ``staged``; returns the names copied.

    ``listed``: the names the checkpoint's manifest.json lists (None: it has none).  A top-level file it
    does not list was added after the checkpoint was written, and is never published.
    """
    copied = []
    left_out = {k for k, keep in (("D", include_D), ("G", include_G_raw)) if not keep}
    names = [CONFIG_FILE] + [f for k, f in WEIGHT_FILES.items() if k not in left_out]
    for fname in names:
        if _regular(ckpt_dir / fname):
            if listed is not None and fname not in listed:
                raise ZooError(f"{ckpt_dir / fname}: not listed in the checkpoint's manifest.json (added after it "
                               "was written); refusing to publish an unverified file")
            shutil.copy2(ckpt_dir / fname, staged / fname, follow_symlinks=False)
            copied.append(fname)
    exports = ckpt_dir / EXPORTS_DIR
    if os.path.lexists(exports):
        if exports.is_symlink() or not exports.is_dir():
            _regular(exports)  # raises: a symlink or file where the exports directory belongs
            raise ZooError(f"{exports}: a regular file, not the exports directory")
        bad = [f"{rel} ({kind})" for rel, kind in walk_tree(exports).items() if kind != "file"]
        if bad:
            raise ZooError(f"{exports}: holds {', '.join(bad)}; publish copies regular files only "
                           "(a symlink would publish its target)")
        # symlinks=True: anything that became a symlink since the check is copied as a link, which
        # hash_tree then refuses, instead of its target being copied
        shutil.copytree(exports, staged / EXPORTS_DIR, symlinks=True,
                        ignore=shutil.ignore_patterns(".*", "*.part", "*.tmp"))
        copied.append(EXPORTS_DIR + "/")
    return copied


def publish(source: str | os.PathLike, name: str | None = None, ch_mul=None, version: Any = None,
            aliases: Iterable[str] = (), registry: str | Store | None = None, include_D: bool = True,
            mlflow_uri: str | None = None, *, include_G_raw: bool = True,
            extra_metadata: Mapping[str, Any] | None = None,
            card: Callable[[dict[str, Any]], str] | None = None) -> EntryRef:
    """Publish a checkpoint or run directory as a new version and return its entry.

    ``name`` defaults to the checkpoint's config name; ``ch_mul`` (if given) must equal the checkpoint's;
    ``version=None`` takes the next integer.  ``mlflow_uri`` (or ``$MLFLOW_TRACKING_URI`` when it is None;
    ``""`` registers nowhere) also registers the version in that MLflow Model Registry.
    ``include_G_raw=False`` leaves the non-EMA generator out (sampling and DGL need only G_ema and D).
    ``extra_metadata``: keys added to (replacing) the metadata built from the checkpoint and run, e.g.
    measured ``latency`` rows; ``registry`` is reserved.  ``card(metadata) -> text`` writes
    ``MODEL_CARD.md`` from the final metadata (the ``registry`` block included).
    """
    from zoo.checkpoint import load_checkpoint

    ckpt_dir, run_dir = find_checkpoint(source)
    listed = verify_manifest(ckpt_dir)  # a corrupted checkpoint is never published
    ckpt = load_checkpoint(ckpt_dir, load_D=include_D, verify=False, listed=listed)
    name = check_name(name or ckpt.name or "")
    actual = ch_key(ckpt.config.ch_mul)
    if ch_mul is not None and ch_key(ch_mul) != actual:
        raise ZooError(f"--ch-mul {ch_key(ch_mul)} disagrees with the checkpoint's config (ch_mul={actual})")
    version = None if version is None else check_version(version)
    aliases = [check_alias(a) for a in aliases]
    metadata = build_metadata(ckpt, run_dir)
    del ckpt
    extra = dict(extra_metadata or {})
    if "registry" in extra:
        raise ZooError("extra_metadata may not set 'registry' (publish writes that block)")
    metadata.update(copy.deepcopy(extra))

    store = open_store(registry)
    if not store.writable:
        raise ZooError(f"{store.location} is a read-only store; publish to a local directory or hf:// repo, "
                       "then serve that directory")
    staged = store.staging_dir()
    try:
        copied = _copy_entry_files(ckpt_dir, staged, include_D, listed, include_G_raw)
        software = _software()

        def finalize(directory: Path, v: str) -> dict[str, Any]:
            metadata["registry"] = {
                "name": name, "ch_mul": actual, "version": v, "published": _utc_now(),
                "source": str(Path(source).resolve()), "files_from_source": copied,
                "generator_sha256": sha256_file(directory / WEIGHT_FILES["G_ema"]), "software": software,
            }
            write_json(directory / METADATA_FILE, metadata)
            if card is not None:  # before seal_entry hashes the tree: the card is listed like every file
                (directory / ENTRY_CARD_FILE).write_text(card(metadata), encoding="utf-8")
            return metadata

        ref = store.publish_dir(staged, name, actual, version, finalize, aliases=aliases)
    finally:
        shutil.rmtree(staged, ignore_errors=True)

    uri = os.environ.get("MLFLOW_TRACKING_URI") if mlflow_uri is None else mlflow_uri
    if uri:
        from zoo.registry.mlflow_registry import register_entry

        info = register_entry(ref, store, uri)
        store.set_record_field(ref, "mlflow", info)
        ref = store.resolve(ref.name, ref.ch_mul, ref.version)
    return ref
