"""StyleGAN2 (config F) in pure PyTorch, with DGL-GAN's width knob.

Follows NVlabs stylegan2-ada-pytorch ``training/networks.py`` (module and tensor names match, so its
state dicts map one to one), with no custom CUDA ops:

* ``MappingNetwork``: pixel-norm(z) [+ embedded c] -> ``mapping_layers`` equalised-lr FCs (lr x0.01)
  -> w, broadcast to ``num_ws``; ``w_avg`` tracks the mean w for truncation.
* ``SynthesisNetwork``: blocks ``b4 ... b{resolution}`` of modulated/demodulated 3x3 convs with
  per-layer noise, FIR [1,3,3,1] upsampling, 'skip' toRGB outputs.
* ``Discriminator``: 'resnet' blocks with FIR downsampling, minibatch-stddev epilogue and, when
  conditional, a projection onto a mapped class embedding.

Widths (``Config.g_widths``): ``channels(res) = min(channel_base // res, channel_max) * ch_mul``, the
multiplication applied after the cap, while the learned constant keeps the full-width channel count
(512 for config F), so the 4x4 conv reads 512 channels.  This is what DGL-GAN's code does and what
reproduces the paper's parameter counts.  An explicit per-resolution table (``g_channels`` /
``d_channels``) replaces the rule, for imported networks.

Each module has one forward, in training and inference alike.  The CPU inference fast path (every
layer's modulation from one precomputed table) is a separate, explicit step:
``zoo.models.stylegan2_fast.prepare(G)``, which ``zoo.load`` and the server apply.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.base import ArchConfig
from zoo.models.ops import (CHANNELS_LAST, LRELU_GAIN, LRELU_SLOPE, bias_act, blur, conv_weight, depthwise_kernel,
                            normalize_2nd_moment, upsample2d_add, upsample2d_edge_weights)
from zoo.widths import scale_width

NOISE_MODES = ("random", "const", "none")


@dataclass(frozen=True)
class Config(ArchConfig):
    """Architecture of a StyleGAN2 generator/discriminator pair.

    resolution:        output resolution, a power of two >= 4.
    img_channels:      3 (RGB) or 1 (greyscale).
    z_dim, w_dim:      latent and intermediate-latent sizes (512 in config F).
    c_dim:             number of classes for a conditional model (0 = unconditional); c is one-hot/soft [N, c_dim].
    mapping_layers:    FC layers in G's mapping network (8 in config F, 2 in ADA's 'auto').
    mapping_lr_mul:    learning-rate multiplier of the mapping network (0.01).
    channel_base, channel_max: the width rule at full width.
    ch_mul:            width multiplier as a fraction string ('1', '1/2', ...).
    const_channels:    channels of the learned 4x4 constant; None = full-width channels(4) (DGL rule).
    g_channels, d_channels: explicit {resolution: channels} tables that replace the rule (imports).
    mbstd_group_size, mbstd_num_channels: minibatch-stddev layer of D.
    d_mapping_layers:  FC layers of D's class-embedding mapping (conditional D only).
    d_cmap_dim:        projection dim of the conditional D; None = D's channels at 4x4.
    conv_clamp:        clamp of conv outputs (ADA fp16 training uses 256; None for config F).
    fused_modconv:     default modulated-conv implementation: True = grouped conv (fast on GPU for
                       training), False = separate scaling (exports with a dynamic batch). Numerically equal.
    """

    family: ClassVar[str] = "stylegan2"

    resolution: int = 1024
    img_channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    ch_mul: str = "1"
    const_channels: Optional[int] = None
    g_channels: Optional[dict] = None
    d_channels: Optional[dict] = None
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    d_mapping_layers: int = 8
    d_cmap_dim: Optional[int] = None
    conv_clamp: Optional[float] = None
    fused_modconv: bool = False

    def __post_init__(self):
        self._normalise_ch_mul()
        res = self.resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"resolution must be a power of two >= 4, got {res}")
        if self.img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, got {self.img_channels}")
        for table in (self.g_channels, self.d_channels):
            if table is not None and set(table) != set(self.block_resolutions):
                raise ValueError(f"width table must give channels for resolutions {self.block_resolutions}")
        self.g_widths()  # validate that ch_mul divides every width
        self.d_widths()

    @property
    def block_resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, int(math.log2(self.resolution)) + 1)]

    @property
    def num_ws(self) -> int:
        return 2 * len(self.block_resolutions)

    def _rule_widths(self) -> dict[int, int]:
        return {res: scale_width(min(self.channel_base // res, self.channel_max), self.ch_mul_frac,
                                 f"the {res}px width") for res in self.block_resolutions}

    def g_widths(self) -> dict[int, int]:
        """Output channels of each synthesis block, by resolution."""
        return dict(self.g_channels) if self.g_channels else self._rule_widths()

    def d_widths(self) -> dict[int, int]:
        """Channels of each discriminator block, by resolution (every width scaled, as DGL does)."""
        return dict(self.d_channels) if self.d_channels else self._rule_widths()

    def const_width(self) -> int:
        if self.const_channels is not None:
            return self.const_channels
        if self.g_channels:
            return self.g_channels[4]
        return min(self.channel_base // 4, self.channel_max)


# --------------------------------------------------------------------------------------------- layers

class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer (weights stored as randn / lr_mul, scaled at run time)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        # the gain scales the small [N, out] product (addmm's alpha), not a copy of the [out, in] weight
        if b is not None and x.ndim == 2:
            y = torch.addmm(b, x, self.weight.t(), alpha=self.weight_gain)
        else:
            y = F.linear(x, self.weight) * self.weight_gain
            y = y if b is None else y + b
        if self.activation == "linear":
            return y
        return bias_act(y, None, self.activation, gain=LRELU_GAIN)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def demod_matrix(weight: torch.Tensor) -> torch.Tensor:
    """sum_k w[o, i, k]^2 as [I, O]: styles^2 @ this is the squared norm of each modulated filter."""
    return weight.square().sum(dim=[2, 3]).t()


def _demod_coefs(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """rsqrt(sum_{i,k} (w[o,i,k] * s[b,i])^2 + 1e-8) as [B, O], without materialising w * s."""
    return (styles.square() @ demod_matrix(weight) + 1e-8).rsqrt()


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x FIR-upsampling) + noise + bias + lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        # the up-conv's weight is stored so that its transposed view is channels-last (conv_weight); the
        # same-resolution convs keep a plain weight, which costs less peak memory (docs/performance.md)
        self.weight = (conv_weight(out_channels, in_channels, 3, transposed=True) if up == 2
                       else nn.Parameter(torch.randn([out_channels, in_channels, 3, 3])))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        if up == 2:  # FIR after the stride-2 transposed conv: gain 4, padding 1
            self.register_buffer("fir", depthwise_kernel(out_channels, gain=4.0), persistent=False)

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
        if self.up == 1:
            return F.conv2d(x, weight, padding=1, groups=groups)
        # NVlabs conv2d_resample(up=2): transposed conv (weight [in, out/groups, 3, 3]) then FIR.
        if groups == 1:
            w = weight.transpose(0, 1)
        else:
            o, i = weight.shape[0] // groups, weight.shape[1]
            w = weight.reshape(groups, o, i, 3, 3).transpose(1, 2).reshape(groups * i, o, 3, 3)
        x = F.conv_transpose2d(x, w, stride=2, groups=groups)
        return blur(x, self.fir.repeat(groups, 1, 1, 1) if groups > 1 else self.fir, 1)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", fused_modconv: bool = False,
                gain: float = 1.0) -> torch.Tensor:
        styles, scale = self.modulation(w, gain)
        return self.modulated_conv(x, styles, scale, None, noise_mode, fused_modconv, gain)

    def modulation(self, w: torch.Tensor, gain: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """styles [N, in] and output scale [N, out] = demodulation x lrelu gain x ``gain``.

        lrelu is positively homogeneous, so the activation gain folds into the small per-channel
        factors (demodulation, noise strength, bias) instead of costing a pass over the activations."""
        styles = self.affine(w)
        return styles, _demod_coefs(self.weight, styles) * (LRELU_GAIN * gain)

    def offset(self, noise_mode: str, gain: float = 1.0) -> torch.Tensor:
        """What is added after the scale: (bias + const noise) x gains, [1, out, H, W] channels-last
        (built [H, W, C]: broadcasting an [H, W] map over a channels-last tensor is slow on CPU), or the
        bias alone [1, out, 1, 1] for 'none' / 'random' noise."""
        act_gain = LRELU_GAIN * gain
        if noise_mode != "const":
            return (self.bias * act_gain).view(1, -1, 1, 1)
        return (self.noise_const[:, :, None] * (self.noise_strength * act_gain)
                + self.bias * act_gain).unsqueeze(0).permute(0, 3, 1, 2)

    def modulated_conv(self, x: torch.Tensor, styles: torch.Tensor, scale: torch.Tensor,
                       offset: torch.Tensor | None = None, noise_mode: str = "const", fused_modconv: bool = False,
                       gain: float = 1.0) -> torch.Tensor:
        """conv(x modulated by ``styles``) x ``scale`` + ``offset`` (None: ``self.offset(noise_mode, gain)``,
        built here so that only one layer's offset is alive at a time) (+ random noise), lrelu, clamp."""
        batch = x.shape[0]
        if offset is None:
            offset = self.offset(noise_mode, gain)
        if fused_modconv:
            wts = self.weight.unsqueeze(0) * styles[:, None, :, None, None] * scale[:, :, None, None, None]
            x = self._conv(x.reshape(1, -1, *x.shape[2:]), wts.reshape(-1, self.in_channels, 3, 3), groups=batch)
            x = x.reshape(batch, self.out_channels, *x.shape[2:]) + offset
        else:  # x * scale + offset in one pass
            x = torch.addcmul(offset, self._conv(x * styles[:, :, None, None], self.weight), scale[:, :, None, None])
        if noise_mode == "random":
            x = x + torch.randn([batch, 1, self.resolution, self.resolution], device=x.device,
                                dtype=x.dtype) * (self.noise_strength * (LRELU_GAIN * gain))
        x = F.leaky_relu(x, LRELU_SLOPE, inplace=not x.requires_grad)
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp * gain, self.conv_clamp * gain)
        return x

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, linear output."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = False) -> torch.Tensor:
        return self.modulated_conv(x, self.modulation(w))

    def modulation(self, w: torch.Tensor) -> torch.Tensor:
        """styles [N, in], the weight gain included."""
        return self.affine(w) * self.weight_gain

    def modulated_conv(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        # Per-sample modulated 1x1 weights applied as one batched matmul over a channels-last view:
        # reads x once (same maths for the fused and non-fused flags).
        wts = self.weight[:, :, 0, 0].unsqueeze(0) * styles.unsqueeze(1)            # [N, out, in]
        pixels = x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)     # view if channels-last
        # [N, out, in] @ [N, in, HW]: the pixels are a transposed operand (no copy) and the output is
        # the image already contiguous NCHW, in long rows (an [N, HW, out] product is 3x slower).
        y = torch.baddbmm(self.bias.view(1, -1, 1), wts, pixels.transpose(1, 2))    # [N, out, HW]
        y = y.view(batch, -1, height, width)
        if self.conv_clamp is not None:
            y = y.clamp(-self.conv_clamp, self.conv_clamp)
        return y


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network ('skip' architecture)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 const_channels: int = 0, conv_clamp: float | None = None):
        super().__init__()
        self.resolution = resolution
        if in_channels == 0:  # first block: learned constant input
            self.const = nn.Parameter(torch.randn([const_channels, resolution, resolution]))
            self.num_conv = 1
            conv1_in = const_channels
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
            self.num_conv = 2
            conv1_in = out_channels
        self.conv1 = SynthesisLayer(conv1_in, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.is_first = in_channels == 0
        if not self.is_first:
            self.register_buffer("up_edges", upsample2d_edge_weights(resolution // 2, resolution // 2),
                                 persistent=False)

    @property
    def convs(self) -> list[SynthesisLayer]:
        return [self.conv1] if self.is_first else [self.conv0, self.conv1]

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "const",
                fused_modconv: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws``: the block's [N, num_conv + 1, w_dim] slice (one w per conv, then the toRGB's)."""
        if self.is_first:
            x = self.const_input(ws.shape[0])
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], noise_mode, fused_modconv)
        return x, self.skip(img, self.torgb(x, ws[:, -1]))

    def const_input(self, batch: int) -> torch.Tensor:
        """The learned 4x4 constant, repeated over the batch (first block)."""
        return self.const.unsqueeze(0).expand(batch, -1, -1, -1).contiguous(memory_format=CHANNELS_LAST)

    def skip(self, img: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
        """'skip' architecture: the running image, 2x FIR-upsampled, plus this block's toRGB output ``y``."""
        return y if img is None else upsample2d_add(img, y, self.up_edges)


class MappingNetwork(nn.Module):
    """z (+ class) -> w, broadcast to ``num_ws`` copies; tracks ``w_avg`` for truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        features = [z_dim + embed_features] + [w_dim] * num_layers
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.float()))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this model is class-conditional (c_dim={self.c_dim}): pass c [N, {self.c_dim}]")
            parts.append(normalize_2nd_moment(self.embed(c.float())))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas and self.num_ws is not None and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cutoff], truncation_psi), x[:, cutoff:]], dim=1)
        return x


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, R, R]."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = cfg.w_dim, cfg.resolution, cfg.img_channels
        self.fused_modconv = cfg.fused_modconv
        self.block_resolutions = cfg.block_resolutions
        widths = cfg.g_widths()
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = widths[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_ch, widths[res], cfg.w_dim, res, cfg.img_channels,
                                   const_channels=cfg.const_width(), conv_clamp=cfg.conv_clamp)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last block's toRGB

    @property
    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def check_inputs(self, ws: torch.Tensor, noise_mode: str) -> None:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused_modconv: bool | None = None) -> torch.Tensor:
        self.check_inputs(ws, noise_mode)
        fused = self.fused_modconv if fused_modconv is None else fused_modconv
        x = img = None
        w_idx = 0
        for block in self.blocks:  # consecutive blocks share a w: a block's toRGB and the next block's conv0
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + 1], noise_mode, fused)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: ``G(z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode='const')``.

    Returns images NCHW in about [-1, 1] (not clamped, as in the reference).  ``G.mapping`` and
    ``G.synthesis`` can be called separately (style mixing, projection).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.config = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers,
                                      cfg.mapping_lr_mul)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const",
                fused_modconv: bool | None = None, update_emas: bool = False) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)


# -------------------------------------------------------------------------------------- discriminator

class Conv2dLayer(nn.Module):
    """Equalised-lr conv with optional FIR 2x downsampling (NVlabs ``conv2d_resample``, down=2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.down, self.kernel_size = activation, down, kernel_size
        self.conv_clamp = conv_clamp
        self.weight = conv_weight(out_channels, in_channels, kernel_size)
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = LRELU_GAIN if activation == "lrelu" else 1.0
        if down == 2:
            self.register_buffer("fir", depthwise_kernel(in_channels), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down == 1:
            x = F.conv2d(x, w, padding=self.kernel_size // 2)
        elif self.kernel_size == 1:  # FIR with stride 2, then 1x1 conv
            x = F.conv2d(blur(x, self.fir, 1, stride=2), w)
        else:  # FIR (pad 2), then strided 3x3 conv
            x = F.conv2d(blur(x, self.fir, 2), w, stride=2)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.activation, gain=self.act_gain * gain, clamp=clamp)


class DiscriminatorBlock(nn.Module):
    """'resnet' block: [fromrgb] -> conv0 -> conv1(down) plus a 1x1 down skip, both scaled by sqrt(0.5)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.has_fromrgb = in_channels == 0
        if self.has_fromrgb:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x, img):
        if self.has_fromrgb:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    """Appends the per-group standard deviation of features as extra channels."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size else n
        if n % g:
            raise ValueError(f"batch size {n} must be divisible by the minibatch-stddev group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])          # [n/g, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels: int, cmap_dim: int, mbstd_group_size: int, mbstd_num_channels: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * 16, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: ``D(img, c=None)`` -> logits [N, 1]."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.config = cfg
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.resolution, cfg.img_channels
        widths = cfg.d_widths()
        self.block_resolutions = [r for r in reversed(cfg.block_resolutions) if r > 4]
        for res in self.block_resolutions:
            in_ch = widths[res] if res < cfg.resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_ch, widths[res], widths[res // 2], cfg.img_channels,
                                                        conv_clamp=cfg.conv_clamp))
        cmap_dim = 0
        if cfg.c_dim > 0:
            cmap_dim = cfg.d_cmap_dim or widths[4]
            self.mapping = MappingNetwork(0, cfg.c_dim, cmap_dim, None, cfg.d_mapping_layers, w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(widths[4], cmap_dim, cfg.mbstd_group_size, cfg.mbstd_num_channels,
                                        conv_clamp=cfg.conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"D expects images [N, {', '.join(map(str, expected))}], got {list(img.shape)}")
        img = img.contiguous(memory_format=CHANNELS_LAST)  # ~25% faster convs on CPU; a no-op for G's output
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)


def paper_macs(cfg: Config) -> int:
    """Generator MACs per image in the DGL-GAN paper's convention (``Network.cal_flops`` of its TF code).

    Dense (mapping) layers count in*out; every conv scope counts k*k*C_in*C_out*R^2 + C_out*R^2 at its
    *output* resolution R (so the stride-2 up-conv counts as a full 3x3 conv at 2x resolution); the
    affines, demodulation and FIR filters are not counted; the 4x4 constant is counted as if it were a
    conv (const_channels * 4 * 16 * const_channels + 16 * const_channels).  Reproduces Table 2/3.
    """
    widths = cfg.g_widths()
    const = cfg.const_width()
    embed = cfg.w_dim if cfg.c_dim else 0
    total = (cfg.z_dim + embed) * cfg.w_dim + (cfg.mapping_layers - 1) * cfg.w_dim * cfg.w_dim  # mapping Dense layers
    total += const * 4 * 16 * const + 16 * const
    for res in cfg.block_resolutions:
        c_out = widths[res]
        convs = [(const, c_out)] if res == 4 else [(widths[res // 2], c_out), (c_out, c_out)]
        for c_in, co in convs:
            total += 9 * c_in * co * res * res + co * res * res
        total += c_out * cfg.img_channels * res * res + cfg.img_channels * res * res  # toRGB
    return total
