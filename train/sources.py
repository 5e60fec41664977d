"""Where training images come from, as the loop sees them.

The loop needs a dataset with ``images`` (uint8 [N, C, H, W], tensor or array), ``labels`` (int [N] or
None), ``resolution``, ``channels``, ``num_classes`` and an identity (``sha256``).  A built dataset
(``train.data.load_dataset``) is one; :class:`RandomImages` is another, for tests and throughput
benchmarks that must not depend on built data.  :class:`RealSampler` turns either into
deterministic micro-batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch


@dataclass
class RandomImages:
    """``n`` random uint8 images (smooth blobs, so a GAN has something to learn), seeded."""

    resolution: int
    channels: int = 3
    num_classes: int = 0
    n: int = 64
    seed: int = 0

    def __post_init__(self):
        g = torch.Generator().manual_seed(self.seed)
        low = torch.rand(self.n, self.channels, 4, 4, generator=g)
        img = torch.nn.functional.interpolate(low, size=self.resolution, mode="bilinear", align_corners=False)
        self.images = (img * 255).round().clamp(0, 255).to(torch.uint8)
        self.labels = (torch.randint(self.num_classes, (self.n,), generator=g) if self.num_classes else None)
        self.sha256 = f"random:{self.resolution}:{self.channels}:{self.num_classes}:{self.n}:{self.seed}"
        self.name = "random"

    def __len__(self) -> int:
        return self.n


def dataset_info(ds) -> dict[str, Any]:
    """What a run records about its data (``ImageDataset.describe()`` when the dataset has it)."""
    if hasattr(ds, "describe"):
        return ds.describe()
    return {"name": getattr(ds, "name", None), "path": str(getattr(ds, "path", "") or "") or None,
            "sha256": getattr(ds, "sha256", None), "count": int(len(ds.images)), "resolution": ds.resolution,
            "channels": ds.channels, "num_classes": ds.num_classes}


class RealSampler:
    """Real images by global sample position, without replacement per epoch, reproducibly.

    Position ``p`` (= step * batch + offset) maps to epoch ``p // N`` and to entry ``p % N`` of that
    epoch's seeded permutation; the horizontal flip of ``p`` is seeded the same way.  So the images a
    micro-batch sees depend only on (seed, position): not on the number of processes, not on whether
    the run was resumed.
    """

    def __init__(self, dataset, seed: int, xflip: bool, device: torch.device):
        self.images = torch.as_tensor(np.asarray(dataset.images)) if not torch.is_tensor(dataset.images) \
            else dataset.images
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"dataset images must be uint8 [N, C, H, W], got {self.images.dtype} "
                             f"{list(self.images.shape)}")
        labels = dataset.labels
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.n = self.images.shape[0]
        self.seed, self.xflip, self.device = seed, xflip, device
        self._epoch: Optional[int] = None
        self._perm = self._flip = None

    def _load_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g)
            self._flip = torch.rand(self.n, generator=g) < 0.5
            self._epoch = epoch

    def indices(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx, flip = [], []
        for p in range(start, start + count):
            epoch, k = divmod(p, self.n)
            self._load_epoch(epoch)
            idx.append(int(self._perm[k]))
            flip.append(bool(self._flip[k]) and self.xflip)
        return torch.tensor(idx), torch.tensor(flip)

    def batch(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images float [-1, 1] NCHW on the device, labels or None) for positions start..start+count."""
        idx, flip = self.indices(start, count)
        img = self.images[idx].to(torch.float32)
        if flip.any():
            img[flip] = img[flip].flip(-1)
        img = (img / 127.5 - 1).to(self.device)
        labels = None if self.labels is None else self.labels[idx].to(self.device)
        return img, labels

    def label_pool(self) -> torch.Tensor | None:
        """All labels on the device (fake images draw their classes from the data's label distribution)."""
        return None if self.labels is None else self.labels.to(self.device)
