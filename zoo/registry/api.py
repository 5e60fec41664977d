"""The read API: ``zoo.load``, ``zoo.list``, ``zoo.info``, ``load_entry``, ``locate``, aliases, verify, compare.

``registry=None`` means the default chain: ``$GANZOO_REGISTRY`` (or ``$GANZOO_HOME/registry``, default
``~/.cache/ganzoo/registry``), then the entries bundled with the package (``zoo/weights/registry``)
if any.  Any other value is one store: a directory, ``http(s)://...`` or ``hf://org/repo[@rev]``.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.integrity import check_relpath
from zoo.registry.model import EntryRef, Store, headline, iter_entries, split_ref
from zoo.registry.schemes import open_store
from zoo.widths import ChMul

from zoo.backends import LOAD_BACKENDS as BACKENDS  # what zoo.load opens


def bundled_registry() -> Path:
    """Where the package's shipped entries live (an index.json + entries, read only)."""
    return Path(__file__).resolve().parent.parent / "weights" / "registry"


def stores(registry: str | os.PathLike | Store | None = None) -> list[Store]:
    """The stores searched for ``registry`` (see module docstring)."""
    if registry is not None:
        return [open_store(registry)]
    chain = [open_store(None)]
    bundled = bundled_registry()
    if (bundled / "index.json").is_file():
        from zoo.registry.local import LocalStore

        chain.append(LocalStore(bundled, read_only=True))
    return chain


def resolve(name: str, ch_mul: ChMul = 1, version: Any = None, registry=None) -> tuple[Store, EntryRef]:
    """(store, entry) for a name, width and version/alias; the first store of the chain that has it.
    ``name`` may carry the version as ``NAME@VERSION`` (then not ``version`` as well)."""
    name, at_version = split_ref(name)
    if at_version is not None and version is not None:
        raise ZooError(f"{name}@{at_version} names its version after '@'; do not give version={version!r} as well")
    version = at_version if version is None else version
    first_error = None
    for store in stores(registry):
        try:
            return store, store.resolve(name, ch_mul, version)
        except ZooError as exc:
            first_error = first_error or exc
    raise first_error


def _as_dtype(dtype):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
             "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if str(dtype) not in names:
        raise ZooError(f"unknown dtype {dtype!r}; use one of {', '.join(names)} or a torch.dtype")
    return names[str(dtype)]


def _is_path(ref: str) -> bool:
    return "/" in ref or os.sep in ref or ref.startswith((".", "~"))


def locate(ref: str | os.PathLike, ch_mul: ChMul = 1, version: Any = None,
           registry=None) -> tuple[Path, EntryRef | None]:
    """Where a checkpoint reference points, as every API and command that takes "a checkpoint directory or a
    registry entry" reads it: ``(directory, None)`` for a checkpoint directory, else ``(the fetched entry's
    directory, its EntryRef)`` for ``NAME[@VERSION]`` (fetch verified every file the index lists).

    A path is a ``PathLike`` or text with a separator or a leading '.' or '~' (``./runs``, not ``runs``), and
    anything else names an entry, so that a directory in the working directory never shadows an entry.
    ``version`` may be given here or after '@', not both.
    """
    if isinstance(ref, os.PathLike) or _is_path(str(ref)):
        path = Path(ref).expanduser()
        if not path.is_dir():
            raise ZooError(f"{os.fspath(ref)!r}: no such checkpoint directory")
        if not (path / "config.json").is_file():
            raise ZooError(f"{os.fspath(ref)!r} is not a checkpoint directory (no config.json)")
        return path, None
    try:
        store, entry = resolve(ref, ch_mul, version, registry)
    except ZooError as exc:
        hint = f"; a directory {ref!r} exists here: write ./{ref} to use it" if Path(ref).is_dir() else ""
        raise ZooError(f"{ref!r} is neither a checkpoint directory nor a registry entry ({exc}{hint})") from None
    return Path(store.fetch(entry)), entry


def load_entry(name: str | os.PathLike, ch_mul: ChMul = 1, version: Any = None, device: str = "cpu",
               load_D: bool = True, registry=None):
    """G_ema, G, D, config and metadata of an entry (``zoo.checkpoint.Checkpoint``), files verified first.

    ``name`` is what :func:`locate` takes: ``NAME[@VERSION]``, or a checkpoint directory path (then
    ``ch_mul``/``version``/``registry`` are unused and it is :func:`zoo.checkpoint.load_checkpoint`).
    """
    from zoo.checkpoint import load_checkpoint

    directory, entry = locate(name, ch_mul, version, registry)
    if entry is None:
        return load_checkpoint(directory, device=device, load_D=load_D)
    # only what the index lists (and fetch just verified) is read: a file copied into the entry later is not
    ckpt = load_checkpoint(directory, device=device, load_D=load_D, verify=False, listed=entry.files)
    ckpt.name = entry.name
    return ckpt


def load(name: str, ch_mul: ChMul | None = None, version: Any = None, device: str | None = None, dtype=None,
         backend: str | None = None, registry=None, *, max_latency_ms: float | None = None, batch: int = 1,
         allow_estimates: bool = False):
    """The eval-mode EMA generator of a registry entry, ready to sample: ``G(z, c) -> images in [-1, 1]``.

    ``ch_mul`` accepts 0.5, Fraction(1, 2) or "1/2" (default 1); ``version`` None/"latest", an alias
    ("stable") or a version (3, "1.2.0").  ``device`` defaults to "cpu" ("cuda" for
    ``backend="tensorrt"``); ``backend`` to "eager".

    ``max_latency_ms`` (instead of ``ch_mul``) picks the width: the lowest-KID width (KIDs compared on the
    same data and n) whose latency *measured on this machine* (``zoo.environment.hardware(device)``'s
    fingerprint) for this back-end, dtype and ``batch`` fits the budget, from the entry's latency rows or
    the local calibration cache ``zoo bench NAME --calibrate`` fills.  The returned generator carries the
    decision as ``G.zoo_selection`` (a :class:`zoo.latency.Selection`: ``.reason`` says what was picked and
    why), also logged at INFO.  None fits, or nothing measured here: a ZooError listing the measured
    options.  MAC-based estimates fill unmeasured widths only with ``allow_estimates=True``.

    The eager generator is returned as its family's ``prepare(G)`` makes it (:class:`zoo.families.GANFamily`:
    inference-only preparation, e.g. a CPU fast path), after ``device`` and ``dtype`` are applied.

    ``backend="onnx"`` / ``"tensorrt"`` open the export artifact the entry holds under
    ``exports/<backend>/`` (model file + export.json, as ``zoo export`` writes it) with the same wrapper
    ``export.load_export`` returns (:mod:`zoo.runtime`: ``OnnxGenerator``, ``TrtGenerator``), callable like
    the eager generator: ``G(z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const")``
    -> float32 NCHW torch tensor.  ``dtype`` applies to the eager backend only (an artifact has its own).
    Every file is checked against the sha256 recorded in the registry index before it is used.
    """
    backend = "eager" if backend is None else backend
    if backend not in BACKENDS:
        raise ZooError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if device is None:
        device = "cuda" if backend == "tensorrt" else "cpu"
    if max_latency_ms is not None:
        if ch_mul is not None:
            raise ZooError("give either ch_mul or max_latency_ms, not both")
        import logging

        from zoo.latency import dtype_name, select_entry

        selection = select_entry(name, max_latency_ms, device=device, batch=batch, backend=backend,
                                 dtype=dtype_name(dtype), version=version,
                                 registry=registry, allow_estimates=allow_estimates)
        logging.getLogger("zoo.latency").info("%s", selection.reason)
        G = load(name, selection.candidate.ch_mul, selection.candidate.version, device, dtype, backend, registry)
        G.zoo_selection = selection
        return G
    ch_mul = 1.0 if ch_mul is None else ch_mul
    if backend == "eager":
        from zoo.families import family_of

        G = load_entry(name, ch_mul, version, device=device, load_D=False, registry=registry).G_ema
        dtype = _as_dtype(dtype)
        if dtype is not None:
            G = G.to(dtype)
        # the family's inference preparation (e.g. a CPU fast path) on the generator it returns, after the
        # dtype so that what it prepares is what runs
        return family_of(G).prepare(G.eval())
    from zoo.backends import get_backend

    store, ref = resolve(name, ch_mul, version, registry)
    chosen = get_backend(backend)
    artifact = chosen.registry_file
    if artifact not in ref.files:
        exported = sorted({p.split("/")[1] for p in ref.files if p.startswith("exports/") and p.count("/") >= 2})
        raise ZooError(
            f"backend {backend!r} is not available for {ref} (it holds no {artifact}; exported backends: "
            f"{', '.join(exported) or 'none'}). Export it with `zoo export` and publish the result, or use "
            "backend='eager'."
        )
    from zoo.errors import require
    from zoo.runtime import EXPORT_FILE, load_artifact, read_export_json

    export_dir = artifact.rsplit("/", 1)[0]
    if f"{export_dir}/{EXPORT_FILE}" not in ref.files:
        raise ZooError(
            f"{ref} holds {artifact} but no {export_dir}/{EXPORT_FILE} (an older registry layout, which "
            f"backend={backend!r} can no longer load). Export it again with `zoo export {ref.name} --ch-mul "
            f"{ref.ch_mul} --backend {backend} --out <checkpoint>/{export_dir}` and publish a new version."
        )
    if chosen.load_requires:
        require(chosen.load_requires, chosen.extra, f"backend={backend!r}")
    directory = store.fetch(ref) / export_dir
    meta = read_export_json(directory)[1]
    recorded = meta.get("backend")
    if recorded != backend:
        raise ZooError(f"{ref}: {export_dir}/{EXPORT_FILE} describes a {recorded!r} artifact, not {backend!r}")
    # export.json names the model file to open; fetch verified only what the index lists, so that name
    # must be a plain relative path to a listed file (the runtime checks its export.json hash again)
    model = check_relpath(meta.get("file"), f"{ref}: {export_dir}/{EXPORT_FILE} 'file'")
    if f"{export_dir}/{model}" not in ref.files:
        raise ZooError(f"{ref}: {export_dir}/{EXPORT_FILE} names {model!r}, which the registry index does not "
                       "list (it was never verified); refusing to load it")
    return load_artifact(directory, device=device)


def _row(store: Store, ref: EntryRef) -> dict[str, Any]:
    return {"name": ref.name, "ch_mul": ref.ch_mul, "version": ref.version, "aliases": list(ref.aliases),
            "published": ref.record.get("published"), "registry": store.location,
            "size_bytes": sum(f["size"] for f in ref.files.values()), **headline(ref.metadata)}


def list_entries(name: str | None = None, registry=None) -> list[dict[str, Any]]:
    """Every entry (optionally of one name) with its headline metadata, across the store chain."""
    rows = []
    for store in stores(registry):
        rows += [_row(store, ref) for ref in iter_entries(store.read_index(), name)]
    return rows


def info(name: str, ch_mul: ChMul = 1, version: Any = None, registry=None) -> dict[str, Any]:
    """Full metadata of one entry plus where it lives, its aliases and the sha256 of every file."""
    store, ref = resolve(name, ch_mul, version, registry)
    return {"name": ref.name, "ch_mul": ref.ch_mul, "version": ref.version, "aliases": list(ref.aliases),
            "registry": store.location, "path": ref.path, "published": ref.record.get("published"),
            "files": ref.files, "mlflow": ref.record.get("mlflow"), "metadata": ref.metadata}


def set_alias(name: str, ch_mul: ChMul, alias: str, version: Any, registry=None,
              mlflow_uri: str | None = None) -> tuple[str | None, str | None]:
    """Point ``alias`` at ``version`` (None removes it) in a writable store; mirrored to MLflow when the
    entry was registered there and a tracking URI is configured.  Returns (previous, new) target."""
    store = open_store(registry)
    previous, new = store.set_alias(name, ch_mul, alias, version)
    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        from zoo.registry.mlflow_registry import mirror_alias

        target = store.resolve(name, ch_mul, new) if new is not None else None
        mirror_alias(uri, name, ch_mul, alias, target)
    return previous, new


def verify(name: str | None = None, registry=None) -> list[dict[str, Any]]:
    """Re-hash every file of every entry (optionally of one name): [{entry, ok, problems}]."""
    store = open_store(registry)
    return [{"name": ref.name, "ch_mul": ref.ch_mul, "version": ref.version, "problems": problems,
             "ok": not problems}
            for ref in iter_entries(store.read_index(), name) for problems in [store.verify(ref)]]


def compare(name: str, version: Any = None, registry=None) -> list[dict[str, Any]]:
    """One row per published width of ``name`` (widest first) at ``version`` (default latest)."""
    rows = []
    for store in stores(registry):
        widths = store.read_index()["models"].get(name, {})
        for ch in sorted(widths, key=lambda k: -Fraction(k)):
            if any(r["ch_mul"] == ch for r in rows):
                continue
            try:
                ref = store.resolve(name, ch, version)
            except ZooError:
                continue  # that width has no such alias/version
            row = _row(store, ref)
            row["latency"] = ref.metadata.get("latency")
            rows.append(row)
    if not rows:
        resolve(name, 1, version, registry)  # raises the error that lists what exists
        raise ZooError(f"no width of {name} has version {version!r}")
    return rows
