"""A quality metric's value together with what it was computed on: :class:`MetricValue`.

``zoo.train.metrics.evaluate`` computes the numbers; the training loop stores them as they always were:
``metrics`` (``{name: float}``) beside ``metrics_info`` (how they were computed: ``n``, ``n_real``, ``seed``,
``real`` {name, sha256, count, resolution, channels}, ``feature_net`` {net, weights_sha256, input_resolution},
``inception`` {sha256, standard}, ``truncation_psi``, ``settings``) in summary.json, a checkpoint's
metadata.json and MLflow.  A MetricValue is the typed view of one such number: :meth:`MetricValue.from_info`
reads it from those two, and :meth:`MetricValue.basis` lists the facts that must be equal before two values
may be compared (``zoo compare`` refuses a column otherwise; latency-budget selection compares KIDs only
on equal data and n).  A registry entry may also store a metric as ``{"value", "data_sha256", "n"}``
(:meth:`MetricValue.from_stored`).  Nothing here imports torch.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

# metrics computed in EfficientNet-Lite0 features, and in the standard TF Inception-v3 features
EFFLITE_METRICS = frozenset(("kid", "kid_std", "fd", "precision", "recall", "cc", "cc_real"))
INCEPTION_METRICS = frozenset(("fid", "is", "is_std"))
# the evaluation settings each metric depends on (keys of metrics_info["settings"])
_SETTINGS = {"kid": ("kid_subsets", "kid_subset_size"), "precision": ("pr_k",), "recall": ("pr_k",),
             "swd": ("swd_patches", "swd_directions", "swd_repeats"), "is": ("is_splits",)}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def finite_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class FeatureNet:
    """The network a metric's features come from: ``net`` and the sha256 of its weights (and the size
    images are resized to, for EfficientNet-Lite0)."""

    net: str
    weights_sha256: str | None
    input_resolution: int | None = None

    def describe(self) -> str:
        return f"{self.net} weights {str(self.weights_sha256)[:12]} at {self.input_resolution} px"


@dataclass(frozen=True)
class MetricValue:
    """One metric value and what it was computed on.

    name:          the metric key (kid, kid_std, fd, precision, recall, swd, swd_<res>, cc, cc_real, fid, is, is_std).
    value:         the number, as stored (KID unscaled).
    data_sha256:   content hash of the real dataset it was computed against.
    n:             generated (fake) images; ``n_real``: real images.
    feature_net:   the feature network (EfficientNet-Lite0 or Inception-v3); None for pixel-space metrics (SWD)
                   or when not recorded.
    resolution:    the real data's resolution (fake images are resized to it).
    truncation_psi, settings: the remaining evaluation knobs this metric depends on.
    recorded:      whether its ``metrics_info`` was recorded at all (values of runs from before it existed, or
                   of custom evaluators, carry at most the data hash).
    """

    name: str
    value: float
    data_sha256: str | None = None
    n: int | None = None
    feature_net: FeatureNet | None = None
    resolution: int | None = None
    n_real: int | None = None
    truncation_psi: float | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    recorded: bool = True

    @classmethod
    def from_info(cls, name: str, value: float, info: Mapping[str, Any] | None) -> "MetricValue":
        """The value of metric ``name`` with the provenance ``metrics_info`` records (None: not recorded)."""
        recorded = isinstance(info, Mapping) and bool(info)
        info = info if recorded else {}
        real = _dict(info.get("real"))
        net = None
        if name in EFFLITE_METRICS and _dict(info.get("feature_net")):
            fn = info["feature_net"]
            net = FeatureNet(str(fn.get("net")), fn.get("weights_sha256"), fn.get("input_resolution"))
        elif name in INCEPTION_METRICS and _dict(info.get("inception")):
            net = FeatureNet("inception-v3", info["inception"].get("sha256"))
        settings = _dict(info.get("settings"))
        base = "swd" if name.startswith("swd_") else name
        return cls(name, float(value), real.get("sha256"), _int(info.get("n")), net, _int(real.get("resolution")),
                   _int(info.get("n_real")), finite_number(info.get("truncation_psi")),
                   tuple((k, settings.get(k)) for k in _SETTINGS.get(base, ())), recorded)

    @classmethod
    def from_stored(cls, name: str, stored: Any, info: Mapping[str, Any] | None = None) -> "MetricValue | None":
        """A registry entry's ``metrics[name]``: a number (provenance from ``info``, the entry's
        ``metrics_info``) or ``{"value", "data_sha256", "n"}`` (which win over ``info``); None when it holds
        no finite number."""
        raw = stored.get("value") if isinstance(stored, dict) else stored
        value = finite_number(raw)
        if value is None:
            return None
        mv = cls.from_info(name, value, info)
        if isinstance(stored, dict):
            data = stored.get("data_sha256", mv.data_sha256)
            n = stored.get("n", mv.n)
            mv = cls(name, value, data if isinstance(data, str) else None, _int(n), mv.feature_net, mv.resolution,
                     mv.n_real, mv.truncation_psi, mv.settings, mv.recorded or "data_sha256" in stored)
        return mv

    @property
    def data_and_n(self) -> tuple[str, int] | None:
        """(real data sha256, n): the least two values must share to be compared; None if either is unknown."""
        if isinstance(self.data_sha256, str) and self.n is not None:
            return self.data_sha256, self.n
        return None

    def basis(self) -> dict[str, Any]:
        """The facts that must agree for two values of this metric to share a column, by label (a fact that
        was not recorded is None and compares with anything)."""
        out: dict[str, Any] = {"real data sha256": self.data_sha256, "n (generated images)": self.n,
                               "n_real (real images)": self.n_real, "resolution": self.resolution,
                               "truncation psi": self.truncation_psi}
        for key, value in self.settings:
            out[f"setting {key}"] = value
        if self.name in EFFLITE_METRICS:
            out["feature network"] = self.feature_net.describe() if self.feature_net else None
        if self.name in INCEPTION_METRICS:
            out["Inception weights"] = self.feature_net.weights_sha256 if self.feature_net else None
        return out


def metric_values(metrics: Mapping[str, Any], info: Mapping[str, Any] | None) -> dict[str, MetricValue]:
    """``{name: MetricValue}`` for the finite numbers of a stored ``metrics`` block and its ``metrics_info``."""
    out = {}
    for name, stored in metrics.items():
        mv = MetricValue.from_stored(name, stored, info)
        if mv is not None:
            out[name] = mv
    return out


def basis_text(value: Any) -> str:
    """A basis fact as text (how ``zoo compare`` prints and groups it)."""
    return value if isinstance(value, str) else json.dumps(value)
