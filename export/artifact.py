"""Export artifacts: the directory layout, export.json, provenance, and loading one back as a generator.

An artifact is a directory (the registry keeps it under ``<entry>/exports/<backend>/``)::

    DIR/model.onnx | model.pt2 | model.ts | model.ep   the exported graph (one file)
    DIR/export.json                                   backend, dtype, batch range, inputs/outputs,
                                                      truncation, verification numbers, versions,
                                                      source checkpoint sha256, file sha256

It is built in a hidden temporary sibling and renamed into place only after verification passed,
so a directory that exists is a verified export.  :func:`load_export` opens any artifact as a
callable with the generator signature ``G(z, c=None, truncation_psi=1, noise_mode='const')``; the
wrappers (:class:`ExportedGenerator` and one subclass per runtime) live in :mod:`zoo.runtime`, so
``zoo.load(..., backend="onnx")`` returns the very same objects.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from zoo.integrity import check_relpath, sha256_file, write_json
from zoo.errors import ZooError
# the loading side (export.json, the wrappers) lives in zoo.runtime, shared with zoo.load; re-exported here
from zoo.runtime import (EXPORT_FILE, FORMAT, ExportedGenerator, is_artifact, load_artifact,  # noqa: F401
                         read_export_json)


# ------------------------------------------------------------------------------------------ provenance

def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions (from package metadata, nothing imported) of the given distributions."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def software_versions(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Python, ganzoo, torch (+ its CUDA build) and the runtime packages that matter for an artifact."""
    import torch

    from zoo import __version__

    versions: dict[str, Any] = {"python": platform.python_version(), "ganzoo": __version__,
                                "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    versions.update(package_versions("onnx", "onnxscript", "onnxruntime", "onnxruntime-gpu", *extra))
    return {k: v for k, v in versions.items() if v is not None}


def device_info(device: str = "cpu") -> dict[str, Any]:
    """Human-readable description of the device: CPU model and cores, or GPU name and capability."""
    import torch

    if str(device).startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        return {"type": "cuda", "name": props.name, "capability": f"{props.major}.{props.minor}",
                "memory_gb": round(props.total_memory / 2**30, 1), "driver_cuda": torch.version.cuda}
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"type": "cpu", "name": name, "logical_cores": os.cpu_count(), "machine": platform.machine()}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def resolve_source(source: str, ch_mul: str = "1", version: str | None = None, device: str = "cpu",
                   seed: int = 0, random_weights: bool = False):
    """(generator, provenance) for a checkpoint directory, a registry entry or a catalogue name.

    A registry entry wins over a catalogue name of the same spelling (as in ``zoo sample``); a
    catalogue name with no entry, or ``random_weights=True``, gives the architecture with seeded random
    weights, for measuring speed without weights."""
    import torch

    from zoo.models import CATALOG, build_generator

    path = Path(source)
    if path.is_dir():
        from zoo.checkpoint import WEIGHT_FILES, load_checkpoint
        from zoo.integrity import read_manifest

        ckpt = load_checkpoint(path, load_D=False, device=device)  # verifies (and shape-checks) manifest.json
        weights = path / WEIGHT_FILES["G_ema"]
        sha = ((read_manifest(path) or {}).get(weights.name) or {}).get("sha256")
        provenance = {"kind": "checkpoint", "path": str(path.resolve()), "name": ckpt.name,
                      "ch_mul": ckpt.ch_mul, "generator_file": weights.name,
                      "generator_sha256": sha or sha256_file(weights)}
        return ckpt.G_ema.eval(), provenance
    if not random_weights:
        try:
            registry = importlib.import_module("zoo.registry")
        except ImportError:
            registry = None
        if registry is not None and hasattr(registry, "load"):
            try:
                G = registry.load(source, ch_mul=ch_mul, version=version)
            except ZooError as exc:
                if source not in CATALOG:
                    raise ZooError(f"{source!r} is neither a checkpoint directory, a zoo entry nor a configuration "
                                   f"name ({exc})") from None
            else:
                provenance = {"kind": "registry", "name": source, "ch_mul": G.config.ch_mul, "version": version}
                try:  # the entry's resolved version and generator hash, when the registry tells them
                    entry = registry.info(source, ch_mul=ch_mul, version=version)
                    provenance["version"] = entry.get("version", version)
                    provenance["generator_sha256"] = (entry.get("files", {}).get("generator.safetensors", {})
                                                      .get("sha256"))
                except Exception:  # noqa: BLE001 - provenance is best effort; loading already succeeded
                    pass
                return G.to(device).eval(), provenance
    if source not in CATALOG:
        raise ZooError(f"{source!r} is neither a checkpoint directory, a zoo entry nor a configuration name")
    torch.manual_seed(seed)
    G = build_generator(source, ch_mul=ch_mul).to(device).eval()
    provenance = {"kind": "config", "name": source, "ch_mul": G.config.ch_mul,
                  "weights": f"random initialisation (torch.manual_seed({seed}))", "generator_sha256": None}
    return G, provenance


def model_info(G) -> dict[str, Any]:
    cfg = getattr(G, "config", None)
    return {"family": getattr(cfg, "family", None), "ch_mul": getattr(cfg, "ch_mul", None),
            "arch": cfg.to_dict() if cfg is not None else None, "z_dim": int(G.z_dim),
            "c_dim": int(getattr(G, "c_dim", 0)), "img_resolution": int(G.img_resolution),
            "img_channels": int(G.img_channels)}


def write_export_json(directory: Path, record: dict[str, Any]) -> None:
    """Complete ``record`` with the model file's size and sha256 and write export.json."""
    # loaders accept only a plain relative name inside the artifact (zoo.runtime.model_file): never write another
    model_file = directory / check_relpath(record["file"], "export file")
    record = {"format": FORMAT, **record, "file_size": model_file.stat().st_size,
              "file_sha256": sha256_file(model_file)}
    write_json(directory / EXPORT_FILE, record)


def load_export(path: str | os.PathLike, device: str = "cpu", **kwargs) -> ExportedGenerator:
    """Open an artifact directory as a generator-like callable (see :class:`ExportedGenerator`).

    The same wrappers ``zoo.load(..., backend="onnx"|"tensorrt")`` returns: :func:`zoo.runtime.load_artifact`."""
    return load_artifact(path, device=device, **kwargs)
