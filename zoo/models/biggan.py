"""BigGAN (Brock et al. 2019) in pure PyTorch, with DGL-GAN's width knob.

A clean re-implementation of ajbrock/BigGAN-PyTorch ``BigGAN.py`` / ``layers.py`` as configured by
``scripts/launch_BigGAN_bs256x8.sh`` (shared class embedding, hierarchical z, spectral norm in G and D,
orthogonal init).  Module, parameter and buffer names are the reference's, so its ``G.pth`` / ``G_ema.pth``
/ ``D.pth`` state dicts load with a plain ``load_state_dict``:

* ``Generator``: ``shared`` (class embedding) -> ``linear`` (z chunk 0 -> 16ch x 4 x 4) -> ``blocks.i.0``
  (``GBlock``: conditional BN, ReLU, nearest x2, 3x3 convs, 1x1 shortcut) [+ ``blocks.i.1`` self-attention]
  -> ``output_layer`` (BN -> ReLU -> 3x3 conv) -> tanh.
* ``Discriminator``: ``blocks.i.0`` (``DBlock``: wide, pre-activation from block 1 on, 2x2 average pool)
  [+ attention] -> ReLU -> global sum pool -> ``linear`` + projection onto ``embed(c)``.

Spectral norm follows the reference exactly: each SN layer holds its raw ``weight`` plus buffers ``u0``
(left singular vector estimate) and ``sv0`` (the last singular value, for logging); every call runs
``num_SV_itrs`` power iterations and divides the weight by the estimate.  ``u0`` / ``sv0`` and the BN
statistics (``stored_mean`` / ``stored_var``) change only in training mode; ``frozen_spectral_norm(net)``
computes the normalised weights once for inference and export.

Both networks run channels-last (conv weights, and activations following them; oneDNN's CPU convs are
faster so: G 1.05x / 1.14x / 1.19x at ch_mul 1 / 1/2 / 1/4 at 128 px, batch 2), equal to the reference
within float rounding.  ``net.to(memory_format=torch.contiguous_format)`` switches a network back to
NCHW, bit-identical to BigGAN-PyTorch.  G returns a contiguous NCHW image either way; saved weights are
plain contiguous tensors.

Width: ``G_ch`` / ``D_ch`` are full-width values; the built width is ``G_ch * ch_mul`` (an exact integer,
else a ValueError).  The class embedding (``shared_dim``) and ``dim_z`` do not scale, as in DGL-GAN.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models.base import ArchConfig
from zoo.widths import scale_width

NOISE_MODES = ("random", "const", "none")  # accepted for the common generator interface; BigGAN has no noise

# BigGAN-PyTorch's architecture tables, as channel multiples of G_ch / D_ch.
# G: (in, out) multiples of the up-sampling blocks; block i outputs resolution 8 * 2**i.
G_ARCH: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    512: ((16, 16, 8, 8, 4, 2, 1), (16, 8, 8, 4, 2, 1, 1)),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1)),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2)),
    32: ((4, 4, 4), (4, 4, 4)),
}
# D: (in, out, downsample) per block; in multiple 0 stands for the image channels.
D_ARCH: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[bool, ...]]] = {
    256: ((0, 1, 2, 4, 8, 8, 16), (1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
    128: ((0, 1, 2, 4, 8, 16), (1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    64: ((0, 1, 2, 4, 8), (1, 2, 4, 8, 16), (True,) * 4 + (False,)),
    32: ((0, 4, 4, 4), (4, 4, 4, 4), (True, True, False, False)),
}
BOTTOM_WIDTH = 4  # G starts from a 4x4 feature map


def parse_attn(text: str) -> frozenset[int]:
    """Attention resolutions from BigGAN-PyTorch's format: '64', '32_64', or '0' for none."""
    try:
        values = {int(item) for item in str(text).split("_")}
    except ValueError:
        raise ValueError(f"attention spec must look like '64', '32_64' or '0', got {text!r}") from None
    return frozenset(values - {0})


@dataclass(frozen=True)
class BlockLayout:
    """One residual block: channels in/out, output resolution, and whether self-attention follows it."""

    in_channels: int
    out_channels: int
    resolution: int
    resample: bool  # up-sample (G) / down-sample (D)
    attention: bool


@dataclass(frozen=True)
class Config(ArchConfig):
    """Architecture of a BigGAN generator/discriminator pair (BigGAN-PyTorch argument names).

    resolution:    output resolution: 32, 64, 128, 256 or 512 (BigGAN-PyTorch's arch tables).
    img_channels:  3 (RGB) or 1 (greyscale).
    n_classes:     number of classes (BigGAN is class-conditional).
    G_ch, D_ch:    full-width channel multipliers (96 for BigGAN-128); built width = G_ch * ch_mul.
    ch_mul:        width multiplier as a fraction string ('1', '1/2', '1/3', ...).
    dim_z:         latent size; with ``hier`` it is split into (number of G blocks + 1) equal chunks.
    shared_dim:    size of G's shared class embedding.
    hier:          hierarchical z: chunk 0 feeds the first linear layer, chunk i+1 the BNs of block i.
    G_attn, D_attn: resolutions followed by self-attention, '_'-separated ('64', '32_64'; '0' = none).
    D_wide:        D blocks use out_channels as hidden width (BigGAN/SA-GAN) rather than in_channels.
    SN_eps, BN_eps: epsilons of spectral norm and batch norm (1e-6 and 1e-5 in the reference run).
    num_SV_itrs:   power iterations per spectral-norm call.
    """

    family: ClassVar[str] = "biggan"

    resolution: int = 128
    img_channels: int = 3
    n_classes: int = 1000
    G_ch: int = 96
    D_ch: int = 96
    ch_mul: str = "1"
    dim_z: int = 120
    shared_dim: int = 128
    hier: bool = True
    G_attn: str = "64"
    D_attn: str = "64"
    D_wide: bool = True
    SN_eps: float = 1e-6
    BN_eps: float = 1e-5
    num_SV_itrs: int = 1

    def __post_init__(self):
        self._normalise_ch_mul()
        object.__setattr__(self, "G_attn", str(self.G_attn))
        object.__setattr__(self, "D_attn", str(self.D_attn))
        if self.resolution not in G_ARCH or self.resolution not in D_ARCH:
            raise ValueError(f"BigGAN resolution must be one of {sorted(D_ARCH)}, got {self.resolution}")
        if self.img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, got {self.img_channels}")
        if self.n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {self.n_classes}")
        if self.num_SV_itrs < 1:
            raise ValueError(f"num_SV_itrs must be >= 1, got {self.num_SV_itrs}")
        if self.hier and self.dim_z % self.num_z_chunks:
            raise ValueError(f"dim_z={self.dim_z} must split into {self.num_z_chunks} equal chunks "
                             f"(hierarchical z at {self.resolution} px)")
        for net, attn, blocks in (("G", self.G_attn, self.g_blocks()), ("D", self.D_attn, self.d_blocks())):
            known = {b.resolution for b in blocks}
            unknown = sorted(parse_attn(attn) - known)
            if unknown:
                raise ValueError(f"{net}_attn={attn!r} names resolution(s) {unknown}, but {net}'s blocks output "
                                 f"{sorted(known)}")
            for b in blocks:
                if b.attention and b.out_channels < 8:
                    raise ValueError(f"{net} attention at {b.resolution} px needs >= 8 channels, "
                                     f"got {b.out_channels}")

    # ---- widths
    @property
    def g_ch(self) -> int:
        """G's built channel multiplier (``G_ch * ch_mul``)."""
        return scale_width(self.G_ch, self.ch_mul_frac, "G_ch")

    @property
    def d_ch(self) -> int:
        """D's built channel multiplier (``D_ch * ch_mul``)."""
        return scale_width(self.D_ch, self.ch_mul_frac, "D_ch")

    @property
    def num_z_chunks(self) -> int:
        return len(G_ARCH[self.resolution][0]) + 1 if self.hier else 1

    @property
    def z_chunk_size(self) -> int:
        """Size of each z chunk (the whole z without ``hier``)."""
        return self.dim_z // self.num_z_chunks

    @property
    def cond_dim(self) -> int:
        """Input size of the conditional-BN linears: shared embedding [+ one z chunk]."""
        return self.shared_dim + (self.z_chunk_size if self.hier else 0)

    def g_blocks(self) -> list[BlockLayout]:
        ins, outs = G_ARCH[self.resolution]
        attn = parse_attn(self.G_attn)
        return [BlockLayout(i * self.g_ch, o * self.g_ch, BOTTOM_WIDTH * 2 ** (k + 1), True,
                          BOTTOM_WIDTH * 2 ** (k + 1) in attn) for k, (i, o) in enumerate(zip(ins, outs))]

    def d_blocks(self) -> list[BlockLayout]:
        """D's blocks with their true output resolutions.

        (BigGAN-PyTorch's 32-px table labels every D block '16' for attention purposes; here the label is
        the block's real output resolution, so D_attn='16' at 32 px means "after the first block" only.)
        """
        ins, outs, downs = D_ARCH[self.resolution]
        attn = parse_attn(self.D_attn)
        blocks, res = [], self.resolution
        for i, o, down in zip(ins, outs, downs):
            res = res // 2 if down else res
            blocks.append(BlockLayout(i * self.d_ch if i else self.img_channels, o * self.d_ch, res, down,
                                    res in attn))
        return blocks


# --------------------------------------------------------------------------------------------- layers

class SpectralNorm:
    """Mixin for a layer with ``self.weight``: divides it by its top singular value (BigGAN-PyTorch SN).

    Buffers: ``u0`` [1, out] (power-iteration vector) and ``sv0`` [1] (last estimate, for logging).
    In training mode each call updates both; in eval mode they are read only.
    """

    def _init_spectral_norm(self, num_outputs: int, num_itrs: int, eps: float) -> None:
        self.num_itrs, self.sn_eps = num_itrs, eps
        self.frozen_weight: torch.Tensor | None = None  # set only inside frozen_spectral_norm()
        self.register_buffer("u0", torch.randn(1, num_outputs))
        self.register_buffer("sv0", torch.ones(1))

    def sn_weight(self) -> torch.Tensor:
        if self.frozen_weight is not None:
            return self.frozen_weight
        w = self.weight.reshape(self.weight.size(0), -1)
        with torch.no_grad():
            u = self.u0
            for _ in range(self.num_itrs):
                v = F.normalize(u @ w, eps=self.sn_eps)
                wv = v @ w.t()
                u_next = F.normalize(wv, eps=self.sn_eps)
                if self.training:
                    self.u0.copy_(u_next)  # u is self.u0, so the next iteration starts from here
        if torch.is_grad_enabled():
            wv = v @ w.t()  # the same product again, now differentiable in w (u, v are constants)
        sigma = (wv @ u_next.t()).squeeze()
        if self.training:
            with torch.no_grad():
                self.sv0.copy_(sigma.detach())
        return self.weight / sigma


@contextmanager
def frozen_spectral_norm(module: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, every SN layer of an eval-mode ``module`` uses a precomputed normalised weight.

    The weights are exactly what eval mode computes on each call, so outputs are bit-identical; the power
    iteration simply is not repeated.  Use it for inference loops and for exports (the normalised weights
    become plain constants of an ONNX / traced graph instead of per-call MatMul/ReduceL2/Div nodes).
    Changes to the weights inside the block are not seen.
    """
    if module.training:
        raise ValueError("frozen_spectral_norm needs an eval-mode module (call .eval() first)")
    layers = [m for m in module.modules() if isinstance(m, SpectralNorm)]
    try:
        with torch.no_grad():
            for m in layers:
                m.frozen_weight = m.sn_weight().detach()
        yield module
    finally:
        for m in layers:
            m.frozen_weight = None


class SNConv2d(nn.Conv2d, SpectralNorm):
    """Spectrally normalised conv, 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True,
                 num_itrs: int = 1, eps: float = 1e-6):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self._init_spectral_norm(out_channels, num_itrs, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.sn_weight(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, SpectralNorm):
    """Spectrally normalised linear layer."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, num_itrs: int = 1,
                 eps: float = 1e-6):
        super().__init__(in_features, out_features, bias=bias)
        self._init_spectral_norm(out_features, num_itrs, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.sn_weight(), self.bias)


class SNEmbedding(nn.Embedding, SpectralNorm):
    """Spectrally normalised embedding (D's class projection); the SN vector runs over the classes."""

    def __init__(self, num_embeddings: int, embedding_dim: int, num_itrs: int = 1, eps: float = 1e-6):
        super().__init__(num_embeddings, embedding_dim)
        self._init_spectral_norm(num_embeddings, num_itrs, eps)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """``c``: class indices [N] or one-hot/soft labels [N, num_embeddings]."""
        return embed_classes(c, self.sn_weight())


def embed_classes(c: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rows of ``weight`` for class indices [N], or their mixture for one-hot/soft labels [N, n_classes].

    A one-hot row selects exactly the indexed row (x*1 + 0s is exact), so both forms agree bit for bit.
    """
    n_classes = weight.shape[0]
    if c.ndim == 1 and not c.is_floating_point():
        return F.embedding(c, weight)
    if c.ndim == 2 and c.shape[1] == n_classes:
        return c.to(weight.dtype) @ weight
    raise ValueError(f"c must be class indices (integer [N]) or one-hot/soft labels [N, {n_classes}], "
                     f"got {c.dtype} {list(c.shape)}")


class ConditionalBatchNorm(nn.Module):
    """Class-conditional BN (BigGAN-PyTorch ``ccbn``): affine-free BN, then ``x * (1 + gain(y)) + bias(y)``.

    ``gain`` / ``bias`` are bias-free SN linears from the conditioning vector y; running statistics are the
    buffers ``stored_mean`` / ``stored_var`` (momentum 0.1), used in eval mode.
    """

    def __init__(self, num_channels: int, cond_dim: int, eps: float, num_itrs: int, sn_eps: float):
        super().__init__()
        self.eps = eps
        self.gain = SNLinear(cond_dim, num_channels, bias=False, num_itrs=num_itrs, eps=sn_eps)
        self.bias = SNLinear(cond_dim, num_channels, bias=False, num_itrs=num_itrs, eps=sn_eps)
        self.register_buffer("stored_mean", torch.zeros(num_channels))
        self.register_buffer("stored_var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(y))[:, :, None, None]
        bias = self.bias(y)[:, :, None, None]
        out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, self.training, 0.1, self.eps)
        return out * gain + bias


class BatchNorm(nn.Module):
    """Plain BN with learned ``gain`` / ``bias`` and ``stored_mean`` / ``stored_var`` (BigGAN-PyTorch ``bn``)."""

    def __init__(self, num_channels: int, eps: float):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("stored_mean", torch.zeros(num_channels))
        self.register_buffer("stored_var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.stored_mean, self.stored_var, self.gain, self.bias, self.training, 0.1,
                            self.eps)


class Attention(nn.Module):
    """SA-GAN self-attention as released (not as in the paper): 1x1 SN convs theta/phi (C/8), g (C/2),
    phi and g max-pooled 2x2, softmax over the pooled positions, output conv o (C/2 -> C), gain ``gamma``
    initialised to 0 (so the block starts as the identity)."""

    def __init__(self, channels: int, num_itrs: int = 1, eps: float = 1e-6):
        super().__init__()
        self.ch = channels
        conv = lambda cin, cout: SNConv2d(cin, cout, 1, bias=False, num_itrs=num_itrs, eps=eps)  # noqa: E731
        self.theta = conv(channels, channels // 8)
        self.phi = conv(channels, channels // 8)
        self.g = conv(channels, channels // 2)
        self.o = conv(channels // 2, channels)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape

        def positions(t: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, HW, C] (a view if channels-last)
            return t.permute(0, 2, 3, 1).reshape(n, -1, t.shape[1])

        theta = positions(self.theta(x))
        phi = positions(F.max_pool2d(self.phi(x), 2))
        g = positions(F.max_pool2d(self.g(x), 2))
        beta = F.softmax(theta @ phi.transpose(1, 2), dim=-1)  # [N, HW, HW/4]
        # [N, HW, C/2] is the channels-last [N, C/2, H, W]; NCHW again if x is (as in the reference)
        o = (beta @ g).view(n, h, w, self.ch // 2).permute(0, 3, 1, 2)
        o = self.o(o.contiguous() if x.is_contiguous() else o)
        return self.gamma * o + x


class GBlock(nn.Module):
    """G residual block: cBN -> ReLU -> up x2 -> conv1 -> cBN -> ReLU -> conv2, plus (up -> 1x1 conv_sc)."""

    def __init__(self, layout: BlockLayout, cfg: Config):
        super().__init__()
        sn = dict(num_itrs=cfg.num_SV_itrs, eps=cfg.SN_eps)
        cin, cout = layout.in_channels, layout.out_channels
        self.upsample = layout.resample
        self.conv1 = SNConv2d(cin, cout, 3, **sn)
        self.conv2 = SNConv2d(cout, cout, 3, **sn)
        self.learnable_sc = cin != cout or self.upsample
        if self.learnable_sc:
            self.conv_sc = SNConv2d(cin, cout, 1, **sn)
        bn = dict(cond_dim=cfg.cond_dim, eps=cfg.BN_eps, num_itrs=cfg.num_SV_itrs, sn_eps=cfg.SN_eps)
        self.bn1 = ConditionalBatchNorm(cin, **bn)
        self.bn2 = ConditionalBatchNorm(cout, **bn)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x, y))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        if self.learnable_sc:
            x = self.conv_sc(x)
        return h + x


class DBlock(nn.Module):
    """D residual block (wide): [ReLU] -> conv1 -> ReLU -> conv2 -> [avg-pool 2], plus a shortcut.

    With pre-activation (every block but the first) the shortcut is conv_sc then pool, else pool then
    conv_sc, as in BigGAN-PyTorch.
    """

    def __init__(self, layout: BlockLayout, cfg: Config, preactivation: bool):
        super().__init__()
        sn = dict(num_itrs=cfg.num_SV_itrs, eps=cfg.SN_eps)
        cin, cout = layout.in_channels, layout.out_channels
        hidden = cout if cfg.D_wide else cin
        self.preactivation, self.downsample = preactivation, layout.resample
        self.conv1 = SNConv2d(cin, hidden, 3, **sn)
        self.conv2 = SNConv2d(hidden, cout, 3, **sn)
        self.learnable_sc = cin != cout or self.downsample
        if self.learnable_sc:
            self.conv_sc = SNConv2d(cin, cout, 1, **sn)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        pool = (lambda t: F.avg_pool2d(t, 2)) if self.downsample else (lambda t: t)
        conv = self.conv_sc if self.learnable_sc else (lambda t: t)
        return pool(conv(x)) if self.preactivation else conv(pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)


def _ortho_init(module: nn.Module) -> None:
    """BigGAN-PyTorch 'ortho' init: orthogonal weights for every conv, linear and embedding; conv weights
    then stored channels-last (the layout oneDNN reads for channels-last activations: no copy per call)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(m.weight)
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)


def _activation_format(conv: nn.Conv2d) -> torch.memory_format:
    """Activations follow the layout of the (3x3) conv weights: channels-last as built, NCHW after
    ``.to(memory_format=torch.contiguous_format)``."""
    return torch.contiguous_format if conv.weight.is_contiguous() else torch.channels_last


def _check_batch(name: str, t: torch.Tensor, n: int) -> None:
    if t.shape[0] != n:
        raise ValueError(f"{name} has batch size {t.shape[0]}, expected {n}")


# --------------------------------------------------------------------------------------------- networks

class Generator(nn.Module):
    """BigGAN generator: ``G(z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='const')``.

    ``c`` is required: class indices (integer [N]) or one-hot/soft labels [N, n_classes].  Returns NCHW
    images in [-1, 1] (tanh).  ``truncation_psi`` scales z (BigGAN-PyTorch's ``z_var`` truncation; psi is
    the standard deviation of z); ``truncation_cutoff=k`` scales only the first k z chunks (chunk 0 feeds
    the 4x4 input, chunk i+1 block i).  For the TF-Hub convention draw z with :func:`truncated_z` and pass
    the same value as psi.  ``noise_mode`` is validated and ignored (BigGAN has no noise inputs).

    ``G.synthesize(z, y)`` is BigGAN-PyTorch's ``forward(z, y)`` with y a class *embedding*
    (``G.shared(classes)``, or e.g. an interpolation between two of them).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.config = cfg
        self.z_dim, self.c_dim = cfg.dim_z, cfg.n_classes
        self.img_resolution, self.img_channels = cfg.resolution, cfg.img_channels
        self.num_z_chunks, self.z_chunk_size, self.hier = cfg.num_z_chunks, cfg.z_chunk_size, cfg.hier
        layouts = cfg.g_blocks()
        sn = dict(num_itrs=cfg.num_SV_itrs, eps=cfg.SN_eps)

        self.shared = nn.Embedding(cfg.n_classes, cfg.shared_dim)  # not spectrally normalised
        self.linear = SNLinear(cfg.z_chunk_size, layouts[0].in_channels * BOTTOM_WIDTH ** 2, **sn)
        self.blocks = nn.ModuleList()
        for layout in layouts:
            layers = [GBlock(layout, cfg)]
            if layout.attention:
                layers.append(Attention(layout.out_channels, **sn))
            self.blocks.append(nn.ModuleList(layers))
        self.output_layer = nn.Sequential(BatchNorm(layouts[-1].out_channels, cfg.BN_eps), nn.ReLU(),
                                          SNConv2d(layouts[-1].out_channels, cfg.img_channels, 3, **sn))
        _ortho_init(self)

    def embed_classes(self, c: torch.Tensor | None) -> torch.Tensor:
        """The shared class embedding y [N, shared_dim] of class indices or one-hot/soft labels."""
        if c is None:
            raise ValueError(f"BigGAN is class-conditional (c_dim={self.c_dim}): pass c as class indices [N] "
                             f"or one-hot labels [N, {self.c_dim}]")
        return embed_classes(c, self.shared.weight)

    def truncate(self, z: torch.Tensor, psi: float | torch.Tensor, cutoff: Optional[int] = None) -> torch.Tensor:
        """Scale z by psi (a number, or a tensor [N] of per-sample values): all of it, or only its first
        ``cutoff`` chunks."""
        if cutoff is not None and not 0 <= cutoff <= self.num_z_chunks:
            raise ValueError(f"truncation_cutoff must be in [0, {self.num_z_chunks}] (z chunks), got {cutoff}")
        if isinstance(psi, torch.Tensor):
            psi = psi.reshape(-1, 1) if psi.ndim == 1 else psi
        elif psi == 1:
            return z
        if cutoff is None:
            return z * psi
        k = cutoff * self.z_chunk_size
        return torch.cat([z[:, :k] * psi, z[:, k:]], dim=1)

    def synthesize(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images from z [N, z_dim] and class embeddings y [N, shared_dim] (BigGAN-PyTorch's forward)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        _check_batch("c", y, z.shape[0])
        if self.hier:
            zs = torch.split(z, self.z_chunk_size, dim=1)
            z0, conds = zs[0], [torch.cat([y, zi], dim=1) for zi in zs[1:]]
        else:
            z0, conds = z, [y] * len(self.blocks)
        h = self.linear(z0).view(z.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
        h = h.contiguous(memory_format=_activation_format(self.blocks[0][0].conv1))
        for layers, cond in zip(self.blocks, conds):
            for layer in layers:
                h = layer(h, cond)
        return torch.tanh(self.output_layer(h)).contiguous()

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float | torch.Tensor = 1.0,
                truncation_cutoff: Optional[int] = None, noise_mode: str = "const") -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        y = self.embed_classes(c)
        return self.synthesize(self.truncate(z, truncation_psi, truncation_cutoff), y)


class Discriminator(nn.Module):
    """BigGAN projection discriminator: ``D(img, c)`` -> logits [N, 1]; c as for the generator."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.config = cfg
        self.c_dim, self.img_resolution, self.img_channels = cfg.n_classes, cfg.resolution, cfg.img_channels
        layouts = cfg.d_blocks()
        sn = dict(num_itrs=cfg.num_SV_itrs, eps=cfg.SN_eps)
        self.blocks = nn.ModuleList()
        for index, layout in enumerate(layouts):
            layers = [DBlock(layout, cfg, preactivation=index > 0)]
            if layout.attention:
                layers.append(Attention(layout.out_channels, **sn))
            self.blocks.append(nn.ModuleList(layers))
        self.linear = SNLinear(layouts[-1].out_channels, 1, **sn)
        self.embed = SNEmbedding(cfg.n_classes, layouts[-1].out_channels, **sn)
        _ortho_init(self)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"D expects images [N, {', '.join(map(str, expected))}], got {list(img.shape)}")
        if c is None:
            raise ValueError(f"BigGAN's D is class-conditional (c_dim={self.c_dim}): pass c")
        _check_batch("c", c, img.shape[0])
        h = img.contiguous(memory_format=_activation_format(self.blocks[0][0].conv1))
        for layers in self.blocks:
            for layer in layers:
                h = layer(h)
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h) + (self.embed(c) * h).sum(dim=1, keepdim=True)


def truncated_z(n: int, z_dim: int, threshold: float = 2.0, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """z ~ N(0, 1) truncated to [-threshold, threshold] (the TF-Hub BigGAN sampler uses threshold 2 and
    then multiplies by the truncation value: pass that value as ``truncation_psi``)."""
    z = torch.empty(n, z_dim)
    return nn.init.trunc_normal_(z, 0.0, 1.0, -threshold, threshold, generator=generator)


# --------------------------------------------------------------------------------------------- MAC counts

def paper_macs(cfg: Config) -> int:
    """Generator MACs per image in the DGL-GAN paper's convention (the counter in its ``BigGAN.py``).

    Per block at output resolution R: conv_sc in*out*R^2 + conv1/conv2 9*in*out*R^2 + 9*out*out*R^2, and
    the conditional BNs cond_dim*(in+out) (one linear counted per BN, not two).  Attention with C
    channels: 1.25*C^2*R^2 + (C//16)*R^4/4 + (R^4//16)*C*R^2/2 -- the last term is the counter's slip
    (the real second matmul is C*R^4/8) and dominates the published 432.98 G.  Output conv
    9*ch*img_channels*R^2; the first linear and the embedding are not counted.  Reproduces Table 4.
    """
    total = Fraction(0)
    for b in cfg.g_blocks():
        cin, cout, r = b.in_channels, b.out_channels, b.resolution
        if b.resample:
            total += cin * cout * r * r
        total += 9 * cin * cout * r * r + 9 * cout * cout * r * r
        total += cfg.cond_dim * (cin + cout)
        if b.attention:
            total += Fraction(5, 4) * cout * cout * r ** 2
            total += Fraction(cout // 16 * r ** 4, 4)
            total += Fraction(r ** 4 // 16 * cout * r ** 2, 2)
    last = cfg.g_blocks()[-1]
    total += last.out_channels * cfg.img_channels * 9 * last.resolution ** 2
    return int(total)


def _attention_macs(c: int, r: int) -> int:
    hw = r * r
    convs = 2 * c * (c // 8) * hw + c * (c // 2) * hw + (c // 2) * c * hw  # theta, phi, g, o
    matmuls = hw * (hw // 4) * (c // 8) + (c // 2) * (hw // 4) * hw        # theta^T phi, g beta^T
    return convs + matmuls


def executed_macs(cfg: Config, net: str = "G") -> int:
    """Multiply-accumulates per image of the convs, linears and attention matmuls actually run.

    ``net`` is 'G' or 'D'.  Batch norm, activations, resampling, pooling and the spectral-norm power
    iteration (per call, not per image) are not counted; the class embedding lookup is free.
    """
    total = 0
    if net == "G":
        blocks = cfg.g_blocks()
        total += cfg.z_chunk_size * blocks[0].in_channels * BOTTOM_WIDTH ** 2
        for b in blocks:
            cin, cout, hw = b.in_channels, b.out_channels, b.resolution ** 2
            total += 2 * cfg.cond_dim * (cin + cout)  # bn1 (cin) and bn2 (cout), a gain and a bias linear each
            total += 9 * cin * cout * hw + 9 * cout * cout * hw
            if cin != cout or b.resample:
                total += cin * cout * hw
            if b.attention:
                total += _attention_macs(cout, b.resolution)
        total += 9 * blocks[-1].out_channels * cfg.img_channels * blocks[-1].resolution ** 2
    elif net == "D":
        res = cfg.resolution
        blocks = cfg.d_blocks()
        for b in blocks:
            cin, cout = b.in_channels, b.out_channels
            hidden = cout if cfg.D_wide else cin
            total += 9 * cin * hidden * res * res + 9 * hidden * cout * res * res  # convs at input resolution
            if cin != cout or b.resample:
                # shortcut conv runs before the pool with pre-activation, after it on the first block
                sc_res = res if (b is not blocks[0]) else b.resolution
                total += cin * cout * sc_res * sc_res
            res = b.resolution
            if b.attention:
                total += _attention_macs(cout, res)
        total += 2 * blocks[-1].out_channels  # linear + projection
    else:
        raise ValueError(f"net must be 'G' or 'D', got {net!r}")
    return total
