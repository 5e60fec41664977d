"""Offline sample-quality metrics: KID / FD in EfficientNet-Lite0 features, precision/recall, SWD, class
consistency, and real FID / IS when the user supplies the Inception weights file.

    >>> from zoo.train.metrics import evaluate, values
    >>> r = evaluate(G, "data/emoji-portrait-64", metrics=("kid", "pr", "swd"), n=1024, seed=0)
    >>> r["metrics"]["kid"], r["real"]["sha256"], r["feature_net"]["weights_sha256"]
    >>> values(r)["kid"]          # zoo.metrics.MetricValue: the number and what it was computed on

``zoo eval`` is the command-line front end; docs/metrics.md explains every number.  Importing this
package is light: torch and the feature networks load when ``evaluate`` runs.
"""
from __future__ import annotations

from typing import Any

METRICS_MODULE = "zoo.train.metrics.evaluation"
_LAZY = ("evaluate", "values", "make_evaluator", "format_result", "MetricSettings", "METRICS", "DEFAULT_METRICS")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(METRICS_MODULE), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo.train.metrics' has no attribute {name!r}")


__all__ = list(_LAZY)
