"""Small tensor ops shared by the StyleGAN2 networks (pure PyTorch, no custom CUDA).

The FIR [1, 3, 3, 1] resampling of StyleGAN2 (NVlabs ``upfirdn2d``) is done here as depthwise
convolutions (``groups=C``) with a per-layer pre-expanded filter, which is far cheaper on CPU than the
single-channel ``[N*C, 1, H, W]`` reshape some ports use.  The filter is symmetric, so convolution and
correlation agree and no flip is needed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def fir_kernel(taps=(1, 3, 3, 1)) -> torch.Tensor:
    """The normalised 2-D FIR kernel (outer product of ``taps``, summing to 1)."""
    t = torch.as_tensor(taps, dtype=torch.float32)
    k = torch.outer(t, t)
    return k / k.sum()


def depthwise_kernel(channels: int, gain: float = 1.0, taps=(1, 3, 3, 1)) -> torch.Tensor:
    """``fir_kernel`` repeated for a depthwise conv over ``channels`` channels: [C, 1, k, k]."""
    k = fir_kernel(taps) * gain
    return k.expand(channels, 1, *k.shape).contiguous()


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: int, stride: int = 1) -> torch.Tensor:
    """Zero-pad by ``pad`` on every side, then FIR-filter each channel (``upfirdn2d`` with up=1);
    ``stride=2`` also downsamples.  The padding is the conv's own (no padded copy)."""
    return F.conv2d(x, kernel, padding=pad, stride=stride, groups=x.shape[1])


def upsample2d(x: torch.Tensor, kernel_x4: torch.Tensor) -> torch.Tensor:
    """2x FIR upsampling (``upfirdn2d.upsample2d``): zero-insertion + [2, 1] padding + FIR with gain 4,
    done as one depthwise transposed conv.  ``kernel_x4`` is ``depthwise_kernel(C, gain=4)``."""
    return F.conv_transpose2d(x, kernel_x4, stride=2, padding=1, groups=x.shape[1])


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """Bias + activation + gain (+ optional clamp), like NVlabs ``bias_act`` (reference path).

    ``act`` is 'linear' or 'lrelu' (slope 0.2); ``gain`` multiplies after the activation (callers pass
    the activation's default gain, sqrt(2) for lrelu, times any extra gain).
    """
    if bias is not None:
        x = x + (bias.view(1, -1, 1, 1) if x.ndim == 4 else bias)
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif act != "linear":
        raise ValueError(f"unsupported activation {act!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm: scale each row to unit mean square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()
