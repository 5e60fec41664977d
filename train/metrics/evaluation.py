"""``evaluate``: sample-quality metrics of a generator or an image set against a real dataset.

One pass over the fake images feeds every requested metric; the real side's features are cached
by content hash.  See docs/metrics.md for what each metric measures.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.metrics import MetricValue, metric_values
from zoo.train.metrics.classifier import ClassifierSettings

# name -> what it is (the names a caller asks for; result keys are listed in docs/metrics.md)
METRICS = {
    "kid": "KID-EffLite0: unbiased kernel distance in EfficientNet-Lite0 features (lower is better, ~0 = same)",
    "fd": "FD-EffLite0: Fréchet distance in EfficientNet-Lite0 features (lower is better; biased by n)",
    "pr": "precision / recall, k=3 nearest neighbours in EfficientNet-Lite0 features (higher is better)",
    "swd": "sliced Wasserstein distance of Laplacian-pyramid patches x1e3, ProGAN (lower is better)",
    "cc": "class consistency: real-data classifier accuracy on generated images vs their labels",
    "fid": "FID with the standard TF Inception-v3 (only with a supplied weights file)",
    "is": "Inception Score with the standard TF Inception-v3 (only with a supplied weights file)",
}
DEFAULT_METRICS = ("kid", "fd", "pr", "swd")


@dataclass(frozen=True)
class MetricSettings:
    """Knobs of the metrics (the defaults are the published recipes, except ``feature_res``)."""

    feature_res: int = 128          # EfficientNet-Lite0 input size (images are resized to it)
    kid_subsets: int = 100          # torch-fidelity defaults
    kid_subset_size: int = 1000
    pr_k: int = 3                   # Kynkäänniemi et al.
    swd_patches: int = 128          # ProGAN: 128 7x7 neighbourhoods per image and level
    swd_directions: int = 128       # ProGAN: 4 repeats x 128 directions
    swd_repeats: int = 4
    is_splits: int = 10
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)


# ------------------------------------------------------------------------------------------ fake sources

def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output float [-1, 1] NCHW -> uint8 NCHW (x * 127.5 + 128, clamped; zoo.images convention)."""
    return (x.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class _ArraySource:
    """uint8 NCHW images in memory (optionally labelled), subsampled to n with the seed."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels, n: int, seed: int, info: dict[str, Any]):
        images = torch.as_tensor(np.asarray(images)) if not torch.is_tensor(images) else images
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ZooError(f"fake images must be uint8 [N, C, H, W] with C = 1 or 3, got {images.dtype} "
                           f"{list(images.shape)}")
        labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if len(images) > n:
            idx = np.sort(np.random.RandomState(seed).choice(len(images), n, replace=False))
            images, labels = images[idx], None if labels is None else labels[idx]
        self.images, self.labels = images, labels
        self.n, self.info = len(images), {**info, "n": len(images)}

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, Optional[torch.Tensor]]]:
        for i in range(0, self.n, batch_size):
            yield self.images[i:i + batch_size], None if self.labels is None else self.labels[i:i + batch_size]


class _GeneratorSource:
    """n images from ``G(z, c)``: z ~ N(0, I) seeded once for all n (independent of the batch size);
    conditional generators get one-hot labels drawn from the real data's labels (same seed)."""

    def __init__(self, G, n: int, seed: int, real_labels: Optional[np.ndarray], truncation_psi: float,
                 device: torch.device, info: dict[str, Any]):
        if not hasattr(G, "z_dim"):
            raise ZooError("a generator must have a z_dim attribute (and c_dim for conditional ones)")
        self.G, self.n, self.psi, self.device = G, n, truncation_psi, device
        self.c_dim = int(getattr(G, "c_dim", 0) or 0)
        g = torch.Generator().manual_seed(seed)
        self.z = torch.randn(n, int(G.z_dim), generator=g)
        self.labels = None
        if self.c_dim:
            rng = np.random.RandomState(seed)
            if real_labels is not None and real_labels.max() < self.c_dim:
                self.labels = torch.from_numpy(real_labels[rng.randint(len(real_labels), size=n)])
            else:
                self.labels = torch.from_numpy(rng.randint(self.c_dim, size=n).astype(np.int64))
        self.info = {**info, "n": n, "truncation_psi": truncation_psi, "c_dim": self.c_dim,
                     "labels": None if not self.c_dim else ("drawn from the real labels"
                                                            if real_labels is not None else "uniform")}

    @torch.no_grad()
    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, Optional[torch.Tensor]]]:
        module = self.G if isinstance(self.G, torch.nn.Module) else None
        was_training = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            for i in range(0, self.n, batch_size):
                z = self.z[i:i + batch_size].to(self.device)
                labels = None if self.labels is None else self.labels[i:i + batch_size]
                c = None if labels is None else F.one_hot(labels, self.c_dim).float().to(self.device)
                if c is None and self.psi == 1.0:
                    out = self.G(z)
                else:
                    out = self.G(z, c, truncation_psi=self.psi) if self.psi != 1.0 else self.G(z, c)
                yield _to_uint8(out).cpu(), labels
        finally:
            if module is not None:
                module.train(was_training)


def _module_device(G) -> torch.device:
    if isinstance(G, torch.nn.Module):
        for p in G.parameters():
            return p.device
    return torch.device("cpu")


def _resolve_fake(fake, real, n: int, seed: int, truncation_psi: float, device: Optional[str]):
    """(source, device) for whatever ``fake`` is: generator, checkpoint dir, dataset dir, image dir/zip, array."""
    from zoo.train.data.dataset import ImageDataset, load_dataset

    if isinstance(fake, (str, os.PathLike)):
        path = Path(fake)
        if (path / "config.json").is_file() and path.is_dir():
            from zoo.checkpoint import load_checkpoint

            ckpt = load_checkpoint(path, device=device or "cpu", load_D=False)
            info = {"kind": "checkpoint", "path": str(path), "name": ckpt.name, "family": ckpt.family,
                    "ch_mul": str(ckpt.ch_mul), "generator": "G_ema"}
            dev = torch.device(device or "cpu")
            from zoo.families import family_of

            G = family_of(ckpt.G_ema).prepare(ckpt.G_ema.eval())  # as zoo.load runs it
            return _GeneratorSource(G, n, seed, real.labels, truncation_psi, dev, info), dev
        if (path / "dataset.json").is_file():
            fake = load_dataset(path)
        else:
            from zoo.train.data.folder import read_images

            r = read_images(path, real.resolution, channels=real.channels, progress=False)
            info = {"kind": "images", "path": str(path), "files": len(r["files"]), "skipped": len(r["skipped"])}
            return _ArraySource(r["images"], r["labels"], n, seed, info), torch.device(device or "cpu")
    if isinstance(fake, ImageDataset):
        info = {"kind": "dataset", **fake.describe()}
        return _ArraySource(fake.images, fake.labels, n, seed, info), torch.device(device or "cpu")
    if isinstance(fake, (np.ndarray, torch.Tensor)):
        arr = fake
        if torch.is_tensor(arr) and arr.is_floating_point():
            arr = _to_uint8(arr)
        return _ArraySource(arr, None, n, seed, {"kind": "array"}), torch.device(device or "cpu")
    if callable(fake):
        dev = torch.device(device) if device else _module_device(fake)
        info = {"kind": "generator", "class": type(fake).__name__}
        cfg = getattr(fake, "config", None)
        if cfg is not None and hasattr(cfg, "family"):
            info.update(family=cfg.family, ch_mul=str(getattr(cfg, "ch_mul", "")))
        return _GeneratorSource(fake, n, seed, real.labels, truncation_psi, dev, info), dev
    raise ZooError(f"cannot evaluate a {type(fake).__name__}: pass a generator, a checkpoint directory, "
                   f"a dataset directory, an image folder/zip or a uint8 image array")


def _conform(batch: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """Fake images at the real data's size (antialiased bilinear resize); channel counts must match."""
    if batch.shape[1] != channels:
        raise ZooError(f"fake images have {batch.shape[1]} channel(s) but the real dataset has {channels}")
    if batch.shape[-1] != resolution or batch.shape[-2] != resolution:
        x = F.interpolate(batch.float(), size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=True)
        batch = x.round().clamp(0, 255).to(torch.uint8)
    return batch


# ------------------------------------------------------------------------------------------ evaluate

def _real_features(kind: str, extractor: Callable, identity: dict, real, n: int, seed: int, batch_size: int,
                   use_cache: bool, progress: bool) -> np.ndarray:
    """Features of the real images ``real_index(len(real), n, seed)``, cached by (content, n, seed, network)."""
    from tqdm.auto import tqdm

    from zoo.train.metrics.features import cache_key, cache_load, cache_save, real_index

    index = real_index(len(real), n, seed)
    key = cache_key(kind=kind, dataset=real.sha256, n=len(index), seed=seed, extractor=identity)
    if use_cache and (cached := cache_load(kind, key)) is not None and len(cached) == len(index):
        return cached
    images = torch.from_numpy(real.images)
    out = [extractor(images[index[i:i + batch_size]])
           for i in tqdm(range(0, len(index), batch_size), desc=f"{kind} features of real images", unit="batch",
                         disable=not progress, mininterval=1.0)]
    feats = np.concatenate(out).astype(np.float32)
    if use_cache:
        cache_save(kind, key, feats)
    return feats


def evaluate(fake, real, metrics: Iterable[str] = DEFAULT_METRICS, *, n: int = 2048, n_real: Optional[int] = None,
             seed: int = 0, batch_size: int = 64, device: Optional[str] = None, truncation_psi: float = 1.0,
             inception: str | os.PathLike | None = None, settings: MetricSettings = MetricSettings(),
             use_cache: bool = True, progress: bool = True) -> dict[str, Any]:
    """Metrics of ``fake`` against the dataset ``real``.

    fake: a generator (``G(z[, c])`` -> float [-1, 1] NCHW, with ``z_dim`` and optionally ``c_dim``), a
          checkpoint directory (its G_ema), a dataset directory / ImageDataset, an image folder or zip, or a
          uint8 NCHW array.  real: a dataset directory or ImageDataset.
    n: fake images (generated, or sampled from an image set); n_real: real images (default min(n, N)),
          chosen by a seeded permutation.  ``seed`` fixes z, labels, subsets, patches and projections.

    Returns ``{"metrics": {name: float}, "skipped": {name: reason}, "real": ..., "fake": ..., "n": ...,
    "seed": ..., "feature_net": ..., "settings": ..., "seconds": ...}``.  Metric keys: kid, kid_std, fd,
    precision, recall, swd, swd_<res>, cc, cc_real, fid, is, is_std.
    """
    from tqdm.auto import tqdm

    from zoo.train.data.dataset import ImageDataset, load_dataset

    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str):
        start = time.perf_counter()
        yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(METRICS)}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    real = real if isinstance(real, ImageDataset) else load_dataset(real)
    source, dev = _resolve_fake(fake, real, n, seed, truncation_psi, device)
    n_real = min(n_real or n, len(real))

    skipped: dict[str, str] = {}
    result: dict[str, Any] = {"metrics": {}, "skipped": skipped, "real": {**real.describe(), "n": n_real},
                              "fake": source.info, "n": source.n, "seed": seed, "device": str(dev)}
    want = set(names)

    # --- what each metric needs
    eff = None
    if want & {"kid", "fd", "pr", "cc"}:
        from zoo.train.metrics.features import EffLite0Features

        eff = EffLite0Features(settings.feature_res, dev)
        result["feature_net"] = eff.identity
    detector = None
    if want & {"fid", "is"}:
        from zoo.train.metrics.inception import MISSING_REASON, InceptionDetector, inception_path

        path = inception_path(inception)
        if path is None:
            for m in want & {"fid", "is"}:
                skipped[m] = MISSING_REASON
        else:
            detector = InceptionDetector(path, dev)
            result["inception"] = detector.identity
    probe = None
    if "cc" in want:
        if not real.num_classes:
            skipped["cc"] = "the real dataset has no class labels"
        elif getattr(source, "c_dim", real.num_classes) != real.num_classes:
            skipped["cc"] = (f"the generator has {source.c_dim} classes but the real dataset "
                             f"{real.num_classes}")
        elif source.labels is None:
            skipped["cc"] = ("the fake images have no conditioning labels (unconditional generator, or an image "
                             "set without labels)")
        else:
            from zoo.train.metrics.classifier import get_classifier

            def probe_features(count: int, probe_seed: int) -> np.ndarray:
                return _real_features("efflite0", eff, eff.identity, real, count, probe_seed, batch_size,
                                      use_cache, progress)

            with stage("classifier"):
                probe, result["classifier"] = get_classifier(real, eff.identity, probe_features,
                                                             settings.classifier)

    # --- one pass over the fakes
    fake_eff, fake_inc, fake_probs, fake_imgs, fake_labels = [], [], [], [], []
    need_probs = detector is not None and "is" in want
    total = (source.n + batch_size - 1) // batch_size
    loop_start = time.perf_counter()
    for batch, labels in tqdm(source.batches(batch_size), total=total, desc="fake images", unit="batch",
                              disable=not progress, mininterval=1.0):
        batch = _conform(batch, real.resolution, real.channels)
        if eff is not None:
            with stage("fake_features"):
                fake_eff.append(eff(batch))
        if detector is not None:
            with stage("fake_inception"):
                feats, probs = detector(batch, probs=need_probs)
            fake_inc.append(feats)
            if probs is not None:
                fake_probs.append(probs)
        if "swd" in want:
            fake_imgs.append(batch)
        if probe is not None:
            fake_labels.append(labels.numpy())
    timings["fake_images"] = (time.perf_counter() - loop_start - timings.get("fake_features", 0.0)
                              - timings.get("fake_inception", 0.0))

    from zoo.train.metrics.stats import fd, kid, precision_recall

    out = result["metrics"]
    fake_eff = np.concatenate(fake_eff) if eff is not None else None
    if want & {"kid", "fd", "pr"}:
        with stage("real_features"):
            real_eff = _real_features("efflite0", eff, eff.identity, real, n_real, seed, batch_size,
                                      use_cache, progress)
        if "kid" in want:
            with stage("kid"):
                out["kid"], std = kid(real_eff, fake_eff, settings.kid_subsets, settings.kid_subset_size, seed)
                if std is not None:  # None: every subset was the whole of both sets (no spread to report)
                    out["kid_std"] = std
        if "fd" in want:
            with stage("fd"):
                out["fd"] = fd(real_eff, fake_eff)
        if "pr" in want:
            m = min(len(real_eff), len(fake_eff))
            with stage("pr"):
                out["precision"], out["recall"] = precision_recall(real_eff[:m], fake_eff[:m], settings.pr_k)
    if "swd" in want:
        from zoo.train.metrics.swd import swd

        from zoo.train.metrics.features import real_index

        real_imgs = torch.from_numpy(real.images[real_index(len(real), n_real, seed)])
        with stage("swd"):
            out.update(swd(real_imgs, torch.cat(fake_imgs), patches=settings.swd_patches,
                           directions=settings.swd_directions, repeats=settings.swd_repeats, seed=seed,
                           progress=progress))
    if detector is not None:
        from zoo.train.metrics.inception import inception_score

        if "fid" in want:
            with stage("real_inception"):
                real_inc = _real_features("inception", lambda b: detector(b)[0], detector.identity, real,
                                          n_real, seed, batch_size, use_cache, progress)
            out["fid"] = fd(real_inc, np.concatenate(fake_inc))
        if "is" in want:
            out["is"], out["is_std"] = inception_score(np.concatenate(fake_probs), settings.is_splits)
    if probe is not None:
        out["cc"] = float((probe.predict(fake_eff) == np.concatenate(fake_labels)).mean())
        out["cc_real"] = float(result["classifier"]["real_holdout_accuracy"])

    result["settings"] = {**asdict(settings), "batch_size": batch_size,
                          "n_pr": min(n_real, source.n) if "pr" in want else None,
                          "n_swd": min(n_real, source.n) if "swd" in want else None}
    result["metrics_requested"] = names
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return result


def provenance(result: dict[str, Any]) -> dict[str, Any]:
    """How the numbers of an :func:`evaluate` result were computed: what must be equal before two results
    may share a column (``zoo compare`` checks it).  The training loop stores it as ``metrics_info``."""
    real, fake = result.get("real") or {}, result.get("fake") or {}
    net, inception = result.get("feature_net"), result.get("inception")
    settings = result.get("settings") or {}
    return {
        "n": result.get("n"), "n_real": real.get("n"), "seed": result.get("seed"),
        "real": {k: real.get(k) for k in ("name", "sha256", "count", "resolution", "channels")},
        "feature_net": {k: net.get(k) for k in ("net", "weights_sha256", "input_resolution")} if net else None,
        "inception": {k: inception.get(k) for k in ("sha256", "standard")} if inception else None,
        "truncation_psi": fake.get("truncation_psi"),
        "settings": {k: settings.get(k) for k in ("kid_subsets", "kid_subset_size", "pr_k", "swd_patches",
                                                  "swd_directions", "swd_repeats", "is_splits")},
    }


def values(result: dict[str, Any]) -> dict[str, MetricValue]:
    """The metrics of an :func:`evaluate` result as :class:`zoo.metrics.MetricValue`s, each with what it was
    computed on (its :func:`provenance`, which is how they are stored: ``metrics`` beside ``metrics_info``)."""
    return metric_values(result["metrics"], provenance(result))


def make_evaluator(real, *, n: int = 1024, seed: int = 0, batch_size: int = 64, **kwargs
                   ) -> Callable[[Any, list[str], Any], dict[str, float]]:
    """A ``(G, metric_names, device) -> {key: float}`` callable for a training loop.

    The real dataset is loaded once; each call evaluates ``G`` with the same n and seed (so the values of
    one run are comparable over time) and returns ``result["metrics"]`` (skipped metrics are absent).
    After a call, ``evaluator.info`` is the :func:`provenance` of that evaluation (stored as ``metrics_info``)
    and ``evaluator.values`` the same numbers as :class:`zoo.metrics.MetricValue`s.
    """
    from zoo.train.data.dataset import ImageDataset, load_dataset

    dataset = real if isinstance(real, ImageDataset) else load_dataset(real)

    def evaluator(G, names, device=None) -> dict[str, float]:
        res = evaluate(G, dataset, names, n=n, seed=seed, batch_size=batch_size,
                       device=None if device is None else str(device), progress=False, **kwargs)
        evaluator.info = provenance(res)
        evaluator.values = values(res)
        return dict(res["metrics"])

    evaluator.info = None
    evaluator.values = {}
    return evaluator


def format_result(result: dict[str, Any]) -> str:
    """A short human-readable report of an ``evaluate`` result."""
    m, lines = result["metrics"], []
    real, fake = result["real"], result["fake"]
    lines.append(f"real: {real['name']} ({real['n']} of {real['count']} images, {real['resolution']} px, "
                 f"sha256 {real['sha256'][:16]}...)")
    what = " ".join(str(v) for v in (fake.get("kind"), fake.get("path") or fake.get("class") or fake.get("name")) if v)
    lines.append(f"fake: {what} ({result['n']} images), seed {result['seed']}")
    if "kid" in m:
        std = (f"std {m['kid_std'] * 1e3:.3f}" if "kid_std" in m
               else "no std: n <= the KID subset size, every subset is the whole set")
        lines.append(f"  KID-EffLite0   {m['kid'] * 1e3:9.3f} x1e-3  ({std})")
    if "fd" in m:
        lines.append(f"  FD-EffLite0    {m['fd']:9.3f}")
    if "precision" in m:
        lines.append(f"  precision      {m['precision']:9.3f}\n  recall         {m['recall']:9.3f}")
    if "swd" in m:
        levels = ", ".join(f"{k.split('_')[1]}: {v:.2f}" for k, v in m.items() if k.startswith("swd_"))
        lines.append(f"  SWD x1e3       {m['swd']:9.3f}  ({levels})")
    if "cc" in m:
        lines.append(f"  class consist. {m['cc']:9.3f}  (classifier on held-out real images: {m['cc_real']:.3f})")
    if "fid" in m:
        lines.append(f"  FID            {m['fid']:9.3f}")
    if "is" in m:
        lines.append(f"  IS             {m['is']:9.3f}  (std {m['is_std']:.3f})")
    for name, reason in result["skipped"].items():
        lines.append(f"  {name}: skipped - {reason}")
    lines.append(f"({result['seconds']:.1f} s)")
    return "\n".join(lines)
