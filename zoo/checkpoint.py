"""The one checkpoint format: a directory that training, import, export, registry and server share.

    DIR/config.json                 {"format": "ganzoo-checkpoint/1", "name", "family", "ch_mul", "arch": {...}}
    DIR/generator.safetensors       EMA generator weights (parameters and buffers) - the one users sample from
    DIR/generator_raw.safetensors   optional: the non-EMA generator (what training optimises)
    DIR/discriminator.safetensors   optional: the discriminator (a teacher's D is what DGL-GAN needs)
    DIR/metadata.json               free-form facts: training summary, params/MACs, metrics, latency, source
    DIR/manifest.json               optional: {"files": {name: {"sha256", "size"}}}; verified before loading

Nothing here unpickles: weights are safetensors, everything else JSON.  Writes go to a temporary
directory that is renamed into place, so a reader never sees half a checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

FORMAT = "ganzoo-checkpoint/1"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file in the same directory + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ZooError(f"{path} not found") from None
    except json.JSONDecodeError as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}") from None


def state_dict_for_save(module) -> dict:
    """Contiguous, non-shared CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def manifest_for(directory: Path) -> dict[str, Any]:
    files = {}
    for p in sorted(Path(directory).iterdir()):
        if p.is_file() and p.name != MANIFEST_FILE and not p.name.startswith("."):
            files[p.name] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return {"files": files}


def verify_manifest(directory: Path) -> None:
    """Raise ZooError naming the first missing or tampered file listed in manifest.json (if present)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.exists():
        return
    manifest = read_json(manifest_path)
    for name, info in manifest.get("files", {}).items():
        p = directory / name
        if not p.exists():
            raise ZooError(f"{p}: listed in manifest.json but missing")
        if p.stat().st_size != info.get("size", p.stat().st_size) or sha256_file(p) != info["sha256"]:
            raise ZooError(f"{p}: sha256 does not match manifest.json (file corrupted or tampered with)")


@contextmanager
def staging_dir(out: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary sibling of ``out``; on success rename it to ``out``, on any error delete it."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ZooError(f"{out} already exists (pass --overwrite / overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        write_json(tmp / CONFIG_FILE, {"format": FORMAT, "name": name, "family": config.family,
                                       "ch_mul": str(config.ch_mul), "arch": config.to_dict()})
        write_json(tmp / METADATA_FILE, metadata or {})
        if manifest:
            write_json(tmp / MANIFEST_FILE, manifest_for(tmp))
    return directory


def read_config(directory: str | os.PathLike):
    """(name, architecture config) of a checkpoint directory, without loading weights."""
    from zoo.models import config_from_dict

    data = read_json(Path(directory) / CONFIG_FILE)
    if data.get("format") != FORMAT:
        raise ZooError(f"{directory}: unsupported checkpoint format {data.get('format')!r} (expected {FORMAT})")
    return data.get("name"), config_from_dict(data["arch"])


def _load_weights(module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({exc})") from None
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ZooError(
            f"{path}: weights do not match the architecture in config.json "
            f"(missing: {list(missing)[:5]}, unexpected: {list(unexpected)[:5]})"
        )


def load_checkpoint(directory: str | os.PathLike, *, device: str = "cpu", load_D: bool = True,
                    verify: bool = True) -> Checkpoint:
    """Load a checkpoint directory (modules in eval mode). Verifies manifest.json when present."""
    from zoo.models import build_discriminator, build_generator

    directory = Path(directory)
    if not directory.is_dir():
        raise ZooError(f"{directory}: no such checkpoint directory")
    if verify:
        verify_manifest(directory)
    name, config = read_config(directory)
    metadata = read_json(directory / METADATA_FILE) if (directory / METADATA_FILE).exists() else {}

    def load(key: str, build):
        path = directory / WEIGHT_FILES[key]
        if not path.exists():
            return None
        module = build(config)
        _load_weights(module, path)
        return module.to(device).eval()

    G_ema = load("G_ema", build_generator)
    if G_ema is None:
        raise ZooError(f"{directory}: no {WEIGHT_FILES['G_ema']}")
    G = load("G", build_generator)
    D = load("D", build_discriminator) if load_D else None
    return Checkpoint(config=config, G_ema=G_ema, G=G, D=D, name=name, metadata=metadata, path=directory)
