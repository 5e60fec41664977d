"""Real FID and Inception Score, only when the user supplies the standard Inception weights file.

The file is NVIDIA's TorchScript port of the TF Inception-v3 graph (``inception-2015-12-05.pt``, the
detector of StyleGAN2-ADA/StyleGAN3 whose FIDs match the TF StyleGAN2 numbers the paper reports).
Point to it with ``inception=PATH`` / ``zoo eval --inception PATH`` or the ``GANZOO_INCEPTION``
environment variable.  It is never downloaded: without it FID and IS are skipped, with the reason.

The detector takes uint8 NCHW RGB images of any size (it resizes to 299 internally); greyscale is
repeated to 3 channels.  ``detector(x, return_features=True)`` gives the 2048-d pool features
(FID), ``detector(x, no_output_bias=True)`` the 1008-way softmax used for IS (as StyleGAN2-ADA does).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from zoo.errors import ZooError

ENV = "GANZOO_INCEPTION"
STANDARD_NAME = "inception-2015-12-05.pt"
STANDARD_SHA256_PREFIX = "f58cb9b6"  # NVIDIA's file (research note); other files are reported as non-standard
MISSING_REASON = (f"no Inception weights file: pass --inception PATH or set {ENV} to NVIDIA's TorchScript "
                  f"{STANDARD_NAME} (the StyleGAN2-ADA FID detector); ganzoo never downloads it")


def inception_path(path: str | os.PathLike | None = None) -> Optional[Path]:
    """The weights file to use (argument, else $GANZOO_INCEPTION), or None when neither is set.

    A path that is given but does not exist is an error, never a silent skip.
    """
    value = path if path is not None else os.environ.get(ENV) or None
    if value is None:
        return None
    p = Path(value).expanduser()
    if not p.is_file():
        source = "--inception" if path is not None else f"${ENV}"
        raise ZooError(f"{source} points to {p}, which does not exist")
    return p


class InceptionDetector:
    """The TorchScript Inception-v3: ``(features [N, 2048], probs [N, 1008] or None)`` per uint8 batch."""

    def __init__(self, path: Path, device: str | torch.device = "cpu"):
        self.path, self.device = Path(path), torch.device(device)
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x, but it is the file's format
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as exc:  # torch raises RuntimeError / ValueError / zip errors for non-TorchScript files
            raise ZooError(f"{self.path}: not a TorchScript Inception detector ({type(exc).__name__}: {exc})") from None

    @property
    def identity(self) -> dict[str, Any]:
        return {"net": "Inception-v3 (TF 2015-12-05, NVIDIA TorchScript)", "path": str(self.path),
                "sha256": self.sha256, "standard": self.sha256.startswith(STANDARD_SHA256_PREFIX)}

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor, probs: bool = False) -> tuple[np.ndarray, Optional[np.ndarray]]:
        x = batch.to(self.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        feats = self.net(x, return_features=True).float().cpu().numpy()
        p = self.net(x, no_output_bias=True).float().cpu().numpy() if probs else None
        return feats, p


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))), mean and std over ``splits`` consecutive splits."""
    probs = probs.astype(np.float64)
    scores = []
    for i in range(splits):
        part = probs[i * len(probs) // splits:(i + 1) * len(probs) // splits]
        kl = part * (np.log(part + 1e-12) - np.log(part.mean(axis=0, keepdims=True) + 1e-12))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
