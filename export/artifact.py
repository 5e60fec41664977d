"""Export artifacts: the directory layout, export.json, provenance, and loading one back as a generator.

An artifact is a directory (the registry keeps it under ``<entry>/exports/<backend>/``)::

    DIR/model.onnx | model.pt2 | model.ts | model.ep   the exported graph (one file)
    DIR/export.json                                   backend, dtype, batch range, inputs/outputs,
                                                      truncation, verification numbers, versions,
                                                      source checkpoint sha256, file sha256

It is built in a hidden temporary sibling and renamed into place only after verification passed,
so a directory that exists is a verified export.  :func:`load_export` opens any artifact as a
callable with the generator signature ``G(z, c=None, truncation_psi=1, noise_mode='const')``.
"""
from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from zoo.checkpoint import read_json, sha256_file, write_json
from zoo.errors import ZooError

FORMAT = "ganzoo-export/1"
EXPORT_FILE = "export.json"


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
        from zoo.checkpoint import MANIFEST_FILE, WEIGHT_FILES, load_checkpoint

        ckpt = load_checkpoint(path, load_D=False, device=device)
        weights = path / WEIGHT_FILES["G_ema"]
        manifest = path / MANIFEST_FILE
        sha = None
        if manifest.exists():
            sha = read_json(manifest).get("files", {}).get(weights.name, {}).get("sha256")
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
    model_file = directory / record["file"]
    record = {"format": FORMAT, **record, "file_size": model_file.stat().st_size,
              "file_sha256": sha256_file(model_file)}
    write_json(directory / EXPORT_FILE, record)


def read_export_json(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(artifact directory, export.json) for an artifact directory or its model file."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    meta_path = directory / EXPORT_FILE
    if not meta_path.exists():
        raise ZooError(f"{directory}: not an export artifact (no {EXPORT_FILE})")
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise ZooError(f"{meta_path}: unsupported export format {meta.get('format')!r} (expected {FORMAT})")
    return directory, meta


def is_artifact(path: str | os.PathLike) -> bool:
    return (Path(path) / EXPORT_FILE).is_file()


def load_export(path: str | os.PathLike, device: str = "cpu", **kwargs):
    """Open an artifact directory as a generator-like callable (see :class:`ExportedGenerator`)."""
    from export.spec import BACKENDS, check_backend

    _, meta = read_export_json(path)
    backend = check_backend(meta.get("backend", "?"))
    module = importlib.import_module(BACKENDS[backend][0])
    return module.load(path, device=device, **kwargs)


# ------------------------------------------------------------------------------------------ runtime

class ExportedGenerator:
    """Base of the loaded artifacts: the generator call signature on top of a runtime.

    ``G(z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode='const')`` returns a float32
    NCHW torch tensor like the eager generator.  ``c`` may be class indices or one-hot; it is converted
    to what the graph takes.  Only constant noise and the baked truncation cutoff are available.
    Subclasses implement ``_run(feeds: dict[str, torch.Tensor]) -> torch.Tensor``.
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu"):
        from export.graph import TensorSpec
        from export.spec import BatchRange

        self.path, self.meta = read_export_json(path)
        self.device = device
        model = self.meta["model"]
        self.z_dim, self.c_dim = model["z_dim"], model["c_dim"]
        self.img_resolution, self.img_channels = model["img_resolution"], model["img_channels"]
        self.inputs = [TensorSpec.from_dict(d) for d in self.meta["inputs"]]
        self.batch = BatchRange.from_dict(self.meta["batch"])
        self.backend, self.dtype = self.meta["backend"], self.meta["dtype"]
        self.config = None
        if model.get("arch"):
            from zoo.models import config_from_dict

            self.config = config_from_dict(model["arch"])

    # torch.nn.Module look-alikes, so code written for G keeps working
    def eval(self):
        return self

    def to(self, device):
        if str(device) != str(self.device):
            raise ZooError(f"this {self.backend} artifact was loaded for {self.device}; load it again for {device}")
        return self

    def _feeds(self, z, c, truncation_psi) -> dict:
        import torch

        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        n = z.shape[0]
        if self.batch.dynamic and not self.batch.contains(n) and self.backend in ("tensorrt", "compile"):
            raise ValueError(f"batch {n} is outside this artifact's range {self.batch.min}..{self.batch.max}")
        if not self.batch.dynamic and n != self.batch.min:
            raise ValueError(f"this artifact has a static batch of {self.batch.min}, got {n}")
        feeds = {"z": z}
        names = {s.name: s for s in self.inputs}
        if "c" in names:
            if c is None:
                raise ValueError(f"this model is class-conditional (c_dim={self.c_dim}): pass c")
            c = torch.as_tensor(c)
            if names["c"].dtype == "int64":
                c = c.argmax(dim=1) if c.ndim == 2 else c
                feeds["c"] = c.to(torch.int64).reshape(n)
            else:
                c = torch.nn.functional.one_hot(c.long(), self.c_dim) if c.ndim == 1 else c
                feeds["c"] = c.float().reshape(n, self.c_dim)
        if "psi" in names:
            psi = torch.as_tensor(truncation_psi, dtype=torch.float32)
            feeds["psi"] = psi.expand(n).contiguous() if psi.ndim == 0 else psi.reshape(n)
        elif float(truncation_psi) != 1.0:
            raise ValueError("this artifact has no truncation input; truncate z before calling it")
        return feeds

    def __call__(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                 noise_mode: str = "const", **unused):
        if noise_mode != "const":
            raise ValueError(f"exported generators use constant noise only (noise_mode='const'), got {noise_mode!r}")
        baked = self.meta.get("truncation", {}).get("cutoff")
        if truncation_cutoff is not None and truncation_cutoff != baked:
            raise ValueError(f"truncation cutoff is baked into this artifact as {baked}, got {truncation_cutoff}")
        return self._run(self._feeds(z, c, truncation_psi))

    def _run(self, feeds: dict):  # pragma: no cover - implemented by each back-end
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, backend={self.backend}, dtype={self.dtype}, "
                f"device={self.device})")
