"""Golden-output check: an exported artifact against eager PyTorch on fixed inputs.

Images are compared in two ways, with thresholds per export dtype:

* ``max_abs``: largest absolute difference of the raw outputs (images nominally in [-1, 1]);
* ``psnr_db``: PSNR of the clamped [-1, 1] images (peak-to-peak 2), i.e. what a user sees.

The reference is always the fp32 eager graph (:func:`export.graph.build_graph`), so fp16 numbers
measure the full precision loss.  A NaN anywhere fails.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from zoo.errors import ZooError

# dtype -> thresholds; an export passes when max_abs <= max_abs and psnr_db >= psnr_db
THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-3, "psnr_db": 60.0},
    "fp16": {"max_abs": 0.25, "psnr_db": 30.0},
}
# fp32 on CUDA: PyTorch (cuDNN) and ONNX Runtime run fp32 convolutions in TF32 by default on Ampere and
# newer GPUs (10-bit mantissa), so eager and the artifact differ by more than float32 rounding
CUDA_FP32_THRESHOLDS = {"max_abs": 2e-2, "psnr_db": 50.0}


def default_thresholds(dtype: str, device: str = "cpu") -> dict[str, float]:
    if dtype == "fp32" and str(device).startswith("cuda"):
        return dict(CUDA_FP32_THRESHOLDS)
    return dict(THRESHOLDS[dtype])


class VerificationError(ZooError):
    """An exported artifact does not reproduce eager PyTorch within the thresholds."""


def compare(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, float | None]:
    """max_abs (raw) and psnr_db (clamped to [-1, 1], peak-to-peak 2; None = identical images)."""
    ref = reference.detach().float().cpu()
    out = candidate.detach().float().cpu()
    if ref.shape != out.shape:
        raise VerificationError(f"output shape {list(out.shape)} differs from eager {list(ref.shape)}")
    max_abs = float((ref - out).abs().max()) if ref.numel() else 0.0
    mse = float((ref.clamp(-1, 1) - out.clamp(-1, 1)).square().mean())
    if math.isnan(mse) or math.isnan(max_abs):
        return {"max_abs": float("nan"), "psnr_db": float("nan")}
    psnr = None if mse == 0 else 10 * math.log10(4.0 / mse)
    return {"max_abs": max_abs, "psnr_db": psnr}


def passes(metrics: dict, thresholds: dict[str, float]) -> bool:
    # written so that NaN fails; psnr None means identical images
    psnr = math.inf if metrics["psnr_db"] is None else metrics["psnr_db"]
    return metrics["max_abs"] <= thresholds["max_abs"] and psnr >= thresholds["psnr_db"]


def _worst(values, bad):
    """The worst value (NaN is worst of all; None - identical - is best)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if any(math.isnan(v) for v in values):
        return float("nan")
    return bad(values)


def verify(reference_fn: Callable[[dict], torch.Tensor], candidate_fn: Callable[[dict], torch.Tensor],
           make_inputs: Callable[[int], dict], batch_sizes: list[int], dtype: str,
           thresholds: dict[str, float] | None = None, what: str = "export") -> dict:
    """Run both functions on the fixed inputs of each batch size; raise VerificationError on failure.

    Returns the record stored in export.json: per-batch numbers, worst case, thresholds, passed."""
    thresholds = dict(thresholds or THRESHOLDS[dtype])
    per_batch = []
    for n in batch_sizes:
        inputs = make_inputs(n)
        with torch.inference_mode():
            ref = reference_fn(inputs)
        out = candidate_fn(inputs)
        per_batch.append({"batch": n, **compare(ref, out)})
    worst = {"max_abs": _worst([r["max_abs"] for r in per_batch], max),
             "psnr_db": _worst([r["psnr_db"] for r in per_batch], min)}
    record = {
        "reference": "eager PyTorch, fp32, same graph (constant noise, non-fused modconv)",
        "inputs": "z from seeds 0..N-1, classes i % c_dim, psi cycling 1.0/0.7",
        "batch_sizes": list(batch_sizes),
        "per_batch": per_batch,
        **worst,
        "thresholds": thresholds,
        "passed": passes(worst, thresholds),
    }
    if not record["passed"]:
        raise VerificationError(
            f"{what} does not match eager PyTorch: max_abs {worst['max_abs']:.3g} (limit {thresholds['max_abs']:g}), "
            f"PSNR {worst['psnr_db']} dB (limit {thresholds['psnr_db']:g} dB); nothing was written"
        )
    return record
