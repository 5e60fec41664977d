"""The one checkpoint format: a directory that training, import, export, registry and server share.

    DIR/config.json                 {"format": "ganzoo-checkpoint/1", "name", "family", "ch_mul", "arch": {...}}
    DIR/generator.safetensors       EMA generator weights (parameters and buffers) - the one users sample from
    DIR/generator_raw.safetensors   optional: the non-EMA generator (what training optimises)
    DIR/discriminator.safetensors   optional: the discriminator (a teacher's D is what DGL-GAN needs)
    DIR/metadata.json               free-form facts: training summary, params/MACs, metrics, latency, source
    DIR/manifest.json               optional: {"files": {name: {"sha256", "size"}}}; verified before loading

Nothing here unpickles: weights are safetensors, everything else JSON.  Writes go to a temporary
directory that is renamed into place, so a reader never sees half a checkpoint; JSON files are fsynced
before their rename and their directory after it (:func:`zoo.integrity.write_json`).

A checkpoint directory may come from someone else (a registry entry, a download), so reading one trusts
nothing but the hashes it was checked against (:mod:`zoo.integrity`: manifests, safe names and opens),
and when a manifest (or a registry index) lists the files, a file it does not list is never read.

:func:`load_checkpoint` loads a checkpoint *directory*; a registry entry by name is
:func:`zoo.registry.load_entry`.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.integrity import (MANIFEST_FILE, current_umask, file_kind, manifest_for, read_json, staging_dir,
                           verify_manifest, write_json)

FORMAT = "ganzoo-checkpoint/1"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHT_FILES = {"G_ema": "generator.safetensors", "G": "generator_raw.safetensors", "D": "discriminator.safetensors"}


@dataclass
class Checkpoint:
    """Networks of one checkpoint. ``G`` is the raw generator when stored, else the EMA one."""

    config: Any  # the family's architecture config
    G_ema: Any
    G: Any = None
    D: Any = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        if self.G is None:
            self.G = self.G_ema

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def ch_mul(self) -> str:
        return self.config.ch_mul


def state_dict_for_save(module) -> dict:
    """Contiguous, non-shared CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    config: Any,
    G_ema: Any,
    G: Any = None,
    D: Any = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
    manifest: bool = True,
) -> Path:
    """Write a checkpoint directory atomically and return its path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    with staging_dir(directory, overwrite=overwrite) as tmp:
        header = {"format": FORMAT, "family": config.family, "ch_mul": str(config.ch_mul)}
        for key, module in (("G_ema", G_ema), ("G", G), ("D", D)):
            if module is not None:
                save_file(state_dict_for_save(module), str(tmp / WEIGHT_FILES[key]), metadata=header)
                # safetensors >= 0.7 creates its files 0600: give them the mode open() would (0666 - umask)
                os.chmod(tmp / WEIGHT_FILES[key], 0o666 & ~current_umask())
        write_json(tmp / CONFIG_FILE, {"format": FORMAT, "name": name, "family": config.family,
                                       "ch_mul": str(config.ch_mul), "arch": config.to_dict()})
        write_json(tmp / METADATA_FILE, metadata or {})
        if manifest:
            write_json(tmp / MANIFEST_FILE, manifest_for(tmp))
    return directory


def read_config(directory: str | os.PathLike):
    """(name, architecture config) of a checkpoint directory, without loading weights."""
    from zoo.models import config_from_dict

    path = Path(directory) / CONFIG_FILE
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise ZooError(f"{directory}: unsupported checkpoint format {found!r} (expected {FORMAT})")
    if not isinstance(data.get("arch"), dict):
        raise ZooError(f"{path}: no architecture ('arch' mapping)")
    try:
        config = config_from_dict(data["arch"])
    except ZooError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        raise ZooError(f"{path}: not a valid architecture ({type(exc).__name__}: {exc})") from None
    return data.get("name"), config


def _load_weights(module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape: config.json describes another architecture
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:300])
        raise ZooError(f"{path}: weights do not match the architecture in config.json ({first})") from None
    if missing or unexpected:
        raise ZooError(
            f"{path}: weights do not match the architecture in config.json "
            f"(missing: {list(missing)[:5]}, unexpected: {list(unexpected)[:5]})"
        )


# how much larger than its (verified) weights file a network may be: fp16/bf16 weights load into fp32
MAX_WEIGHTS_EXPANSION = 4


def _check_fits_weights(build, config, path: Path) -> None:
    """Refuse to allocate a network that its weights file could not fill.

    config.json decides what is built, and an entry's config is only as trustworthy as its index: a
    config naming a huge architecture would allocate gigabytes before the weights fail to match.  The
    network is built first on the meta device (no memory) and must fit in MAX_WEIGHTS_EXPANSION x the
    weights file's size, which the manifest or index has already bounded.
    """
    import torch

    try:
        with torch.device("meta"):
            probe = build(config)
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        raise ZooError(f"{path.parent / CONFIG_FILE}: cannot build the architecture it describes ({exc})") from None
    need = sum(t.numel() * t.element_size() for t in probe.state_dict().values())
    have = path.stat().st_size
    if need > MAX_WEIGHTS_EXPANSION * have:
        raise ZooError(f"{path.parent / CONFIG_FILE} describes a network of {need / 2**20:.1f} MiB, but "
                       f"{path.name} holds {have / 2**20:.1f} MiB: config.json and the weights do not belong "
                       "together; refusing to build it")


def load_checkpoint(directory: str | os.PathLike, *, device: str = "cpu", load_D: bool = True,
                    verify: bool = True, listed=None) -> Checkpoint:
    """Load a checkpoint directory (modules in eval mode). Verifies manifest.json when present.

    ``listed``: names already verified by the caller (a registry index, with ``verify=False``).  When a
    manifest or ``listed`` says which files belong to the checkpoint, a file it does not list is never
    read: one copied in later (say a discriminator.safetensors) is an error, not a silent substitute.
    Without either (an old checkpoint with no manifest), every present file is used.
    """
    from zoo.models import build_discriminator, build_generator

    directory = Path(directory)
    if not directory.is_dir():
        raise ZooError(f"{directory}: no such checkpoint directory (a registry entry is loaded by name with "
                       "zoo.registry.load_entry)")
    if listed is not None:
        listed = set(listed)
    if verify:
        in_manifest = verify_manifest(directory)
        if in_manifest is not None:
            listed = in_manifest if listed is None else listed & in_manifest

    def present(fname: str) -> bool:
        path = directory / fname
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return False
        if listed is not None and fname not in listed:
            raise ZooError(f"{path}: not listed in the checkpoint's {MANIFEST_FILE} / registry index (added after "
                           "it was written); refusing to use an unverified file. Remove it, or re-create the "
                           "checkpoint")
        if not stat.S_ISREG(mode):
            raise ZooError(f"{path}: {file_kind(mode)}, not a regular file; refusing to read it")
        return True

    if not present(CONFIG_FILE):
        raise ZooError(f"{directory / CONFIG_FILE} not found")
    name, config = read_config(directory)
    metadata = read_json(directory / METADATA_FILE) if present(METADATA_FILE) else {}
    if not isinstance(metadata, dict):
        raise ZooError(f"{directory / METADATA_FILE}: expected a JSON object, got a {type(metadata).__name__}")

    def load(key: str, build):
        path = directory / WEIGHT_FILES[key]
        if not present(WEIGHT_FILES[key]):
            return None
        _check_fits_weights(build, config, path)
        module = build(config)
        _load_weights(module, path)
        return module.to(device).eval()

    G_ema = load("G_ema", build_generator)
    if G_ema is None:
        raise ZooError(f"{directory}: no {WEIGHT_FILES['G_ema']}")
    G = load("G", build_generator)
    D = load("D", build_discriminator) if load_D else None
    return Checkpoint(config=config, G_ema=G_ema, G=G, D=D, name=name, metadata=metadata, path=directory)
