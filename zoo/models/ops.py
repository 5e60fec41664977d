"""Small tensor ops shared by the StyleGAN2 networks (pure PyTorch, no custom CUDA).

The FIR [1, 3, 3, 1] resampling of StyleGAN2 (NVlabs ``upfirdn2d``) is done here as depthwise
convolutions (``groups=C``) with a per-layer pre-expanded filter, which is far cheaper on CPU than the
single-channel ``[N*C, 1, H, W]`` reshape some ports use.  The filter is symmetric, so convolution and
correlation agree and no flip is needed.  :func:`conv_weight` stores conv weights in the memory layout
those convolutions read, so that no call copies them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
# Activations run channels-last: oneDNN convolutions (depthwise FIR included) are much faster on CPU.
CHANNELS_LAST = torch.channels_last


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


def upsample2d_edge_weights(height: int, width: int) -> torch.Tensor:
    """[1, 1, 2H, 2W] weights that turn bilinear 2x upsampling into ``upfirdn2d.upsample2d``: 3/4 on the
    border rows and columns (9/16 in the corners), 1 elsewhere.  See :func:`upsample2d_add`."""
    rows = torch.ones(2 * height)
    cols = torch.ones(2 * width)
    rows[[0, -1]] = cols[[0, -1]] = 0.75
    return torch.outer(rows, cols)[None, None]


def upsample2d_add(x: torch.Tensor, y: torch.Tensor, edge_weights: torch.Tensor) -> torch.Tensor:
    """``y`` + 2x FIR upsampling of ``x`` (``upfirdn2d.upsample2d``: zero insertion, [2, 1] padding, the [1, 3, 3, 1] FIR with
    gain 4).  Per dimension that filter gives the two output phases 3/4 x[i] + 1/4 x[i -/+ 1], i.e. bilinear
    interpolation at half-pixel centres, except at the border, where the zero padding leaves 3/4 x[0] and
    bilinear replicates x[0]; ``edge_weights`` (:func:`upsample2d_edge_weights`) corrects that.  One
    vectorised resize instead of a 3-channel depthwise transposed conv (2-3x faster on CPU), and the
    correction and the sum in one ``addcmul`` pass."""
    return torch.addcmul(y, F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), edge_weights)


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


def conv_weight(out_channels: int, in_channels: int, kernel_size: int, transposed: bool = False) -> nn.Parameter:
    """A randn [out, in, k, k] conv weight stored in the layout oneDNN reads for channels-last activations,
    so that no layout copy is made on every call, in training and inference alike: channels-last
    (in-channels innermost), or for a transposed conv (``transposed``: used as ``weight.transpose(0, 1)``)
    out-channels innermost, which makes that transposed view channels-last.  Values, shapes and saved
    checkpoints are those of a plain contiguous weight; ``load_state_dict`` and ``.to()`` keep the layout."""
    weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
    if transposed:
        return nn.Parameter(weight.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2))
    return nn.Parameter(weight.contiguous(memory_format=CHANNELS_LAST))


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm: scale each row to unit mean square."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()
