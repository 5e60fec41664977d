"""Image helpers: generator output -> uint8, grids, PNG files."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from zoo.families import family_of


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW float in [-1, 1] -> NHWC uint8 (the StyleGAN2 convention: x * 127.5 + 128, clamped)."""
    x = (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images: torch.Tensor, cols: int | None = None, scale: int = 1) -> np.ndarray:
    """Tile N images into one HWC uint8 array (greyscale is repeated to RGB), each pixel repeated ``scale``
    times per axis (nearest neighbour: small images stay sharp on a page)."""
    arr = to_uint8(images)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    n, h, w, c = arr.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * h, cols * w, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = arr[i]
    return grid.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else grid


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an HWC uint8 array as PNG atomically."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def seeded_latents(G, seeds: list[int], device: str | torch.device = "cpu") -> torch.Tensor:
    """One z per seed, reproducible across runs and batch sizes (z[i] depends only on seeds[i])."""
    return torch.stack([torch.from_numpy(np.random.RandomState(s).randn(G.z_dim)).float() for s in seeds]).to(device)


def class_inputs(G, labels: list[int], device: str | torch.device = "cpu") -> torch.Tensor | None:
    """Conditioning in the form the generator's family expects (``GANFamily.condition``: indices for
    BigGAN, one-hot for StyleGAN2); None for an unconditional generator."""
    if not getattr(G, "c_dim", 0):
        return None
    idx = torch.as_tensor(labels, dtype=torch.long, device=device)
    if bool((idx < 0).any()) or bool((idx >= G.c_dim).any()):
        raise ValueError(f"class labels must be in [0, {G.c_dim}), got {labels}")
    return family_of(G).condition(idx, G.c_dim)
