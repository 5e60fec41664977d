"""Distances between two sets of feature vectors: KID, Fréchet distance, precision/recall; and how well a
critic's scores separate two sets (``separation``).

All functions take float arrays [N, D] (numpy or torch) and are deterministic given ``seed``.
"""
from __future__ import annotations

import numpy as np
import torch


def _np64(x) -> np.ndarray:
    return (x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)).astype(np.float64)


def kid(real, fake, num_subsets: int = 100, max_subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float | None]:
    """Kernel Inception Distance (Bińkowski et al. 2018) in any feature space: (mean, std) over subsets.

    Unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over
    ``num_subsets`` random subsets of ``m = min(max_subset_size, N_real, N_fake)`` drawn without
    replacement: the estimator of torch-fidelity / StyleGAN2-ADA (``t / m`` with the cross term
    ``2 Σ k(x, y) / m``).  The kernel matrices are computed once and indexed per subset, which gives
    exactly the per-subset result at a fraction of the cost.  When ``m`` is the size of both sets every
    subset is the whole of both, so there is no spread to report: std is None (use more images than
    ``max_subset_size``, or a smaller subset size, for a std).
    """
    x, y = _np64(real), _np64(fake)
    d = x.shape[1]
    m = min(max_subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        ix = rng.choice(len(x), m, replace=False)
        iy = rng.choice(len(y), m, replace=False)
        a = kxx[np.ix_(ix, ix)].sum() - np.trace(kxx[np.ix_(ix, ix)])
        a += kyy[np.ix_(iy, iy)].sum() - np.trace(kyy[np.ix_(iy, iy)])
        b = kxy[np.ix_(ix, iy)].sum()
        mmds[i] = (a / (m - 1) - 2 * b / m) / m
    degenerate = m == len(x) == len(y)
    return float(mmds.mean()), (None if degenerate else float(mmds.std()))


def mean_cov(features) -> tuple[np.ndarray, np.ndarray]:
    x = _np64(features)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½), the FID formula in any feature space.

    tr((Σ1 Σ2)^½) is the sum of the square roots of the eigenvalues of Σ1^½ Σ2 Σ1^½ (symmetric PSD),
    which is stable for the rank-deficient covariances of small sample sets.
    """
    w, v = np.linalg.eigh(sigma1)
    s1_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = s1_half @ sigma2 @ s1_half
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fd(real, fake) -> float:
    """Fréchet distance between two feature sets."""
    return frechet_distance(*mean_cov(real), *mean_cov(fake))


def _kth_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = []
    for i in range(0, len(x), chunk):
        dist = torch.cdist(x[i:i + chunk], x)
        radii.append(dist.kthvalue(k + 1, dim=1).values)  # k+1: the point itself is at distance 0
    return torch.cat(radii)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Share of ``points`` inside at least one hypersphere (centre, radius)."""
    inside = []
    for i in range(0, len(points), chunk):
        dist = torch.cdist(points[i:i + chunk], centres)
        inside.append((dist <= radii[None]).any(dim=1))
    return float(torch.cat(inside).float().mean())


def precision_recall(real, fake, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN hyperspheres.

    precision = share of fakes inside some real sample's k-NN sphere; recall = share of reals inside
    some fake sample's sphere.  Use equal set sizes: the spheres' size depends on N.
    """
    x = torch.as_tensor(_np64(real))
    y = torch.as_tensor(_np64(fake))
    if min(len(x), len(y)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    r_real, r_fake = _kth_radii(x, k, chunk), _kth_radii(y, k, chunk)
    return _coverage(y, x, r_real, chunk), _coverage(x, y, r_fake, chunk)


def separation(real_scores, fake_scores) -> float:
    """P(score(real) > score(fake)) over every (real, fake) pair, ties counted half: the ROC AUC of a
    discriminator used as a real-vs-fake classifier.  1 = every real image outscores every fake, 0.5 = the
    scores carry no information about which is which (whatever their scale or offset), which is what a
    logged mean h(x) - h(G(z)) cannot tell."""
    real, fake = _np64(real_scores).ravel(), _np64(fake_scores).ravel()
    if not len(real) or not len(fake):
        raise ValueError("separation needs at least one real and one fake score")
    diff = real[:, None] - fake[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())
