"""The StyleGAN2 family (networks: ``zoo.models.stylegan2``): catalogue, training presets, export hints."""
from __future__ import annotations

from typing import Any

import torch

from zoo.families import ExportHints, GANFamily, ModelSpec, register_family
from zoo.families.losses import NONSATURATING
from zoo.models import stylegan2 as _net
from zoo.models.stylegan2_fast import prepare as _prepare_for_inference

# ----------------------------------------------------------------------------------------- catalogue

_PAPER_CHMULS = ("1", "1/2", "1/4", "1/8")

CATALOGUE = (
    ModelSpec(
        name="stylegan2-ffhq",
        family="stylegan2",
        arch=dict(resolution=1024, channel_base=32768, channel_max=512, mapping_layers=8),
        ch_muls=_PAPER_CHMULS,
        dataset="FFHQ 1024x1024 (not embedded: import the official teacher)",
        description="StyleGAN2 config F at 1024 px, the paper's FFHQ target (Table 2).",
        paper=dict(params_G_M=[30.37, 11.08, 5.39, 3.55], macs_G_paper_G=[142.02, 35.61, 8.97, 2.28],
                   speedup_v100_b48=[1.0, 2.22, 3.47, 4.38]),
    ),
    ModelSpec(
        name="stylegan2-church",
        family="stylegan2",
        arch=dict(resolution=256, channel_base=32768, channel_max=512, mapping_layers=8),
        ch_muls=_PAPER_CHMULS,
        dataset="LSUN church 256x256 (not embedded: import the official teacher)",
        description="StyleGAN2 config F at 256 px, the paper's LSUN-church target (Table 3).",
        paper=dict(params_G_M=[30.03, 10.93, 5.33, 3.52], macs_G_paper_G=[83.79, 20.99, 5.28, 1.34]),
    ),
    ModelSpec(
        name="stylegan2-emoji",
        family="stylegan2",
        arch=dict(resolution=64, channel_base=8192, channel_max=128, mapping_layers=2),
        ch_muls=_PAPER_CHMULS,
        dataset="emoji-portrait-64 (built offline by `zoo data build emoji`)",
        default_data=("data/emoji-portrait-64", "zoo data build emoji"),
        description=(
            "Embedded StyleGAN2 at 64 px (channel_base 8192, channel_max 128, 2 mapping layers, ~2.8 M "
            "params): the FFHQ stand-in, small enough for a 2-core CPU to train a teacher in about an hour."
        ),
    ),
    ModelSpec(
        name="stylegan2-fashion-mnist",
        family="stylegan2",
        arch=dict(resolution=32, img_channels=1, channel_base=4096, channel_max=128, mapping_layers=2),
        ch_muls=_PAPER_CHMULS,
        dataset="fashion-mnist-32 (Debian dataset-fashion-mnist, 70k images, built by `zoo data build fashion-mnist`)",
        default_data=("data/fashion-mnist-32", "zoo data build fashion-mnist"),
        description="Embedded unconditional StyleGAN2 at 32 px, 1 channel: a large real dataset for metric noise floors.",
    ),
)

# ----------------------------------------------------------------------------------------- presets
# (zoo.train.config documents the preset kinds and every setting)

# StyleGAN2 config-f as DGL-GAN's TF code runs it (run_distillation.py): lr 0.002, betas (0, 0.99),
# gamma 10, G_smoothing_kimg 10, lazy R1 every 16 / path length every 4, mixing 0.9; batch 32.
_PAPER = dict(batch=32, g_lr=0.002, d_lr=0.002, betas=(0.0, 0.99), eps=1e-8, r1_gamma=10.0, ema_kimg=10.0,
              teacher_kimg=25_000.0, lam=0.1, tick_kimg=4.0, snapshot_ticks=50, image_ticks=10,
              metric_ticks=10, metrics=("fid",))


def _small(batch: int, resolution: int) -> dict[str, Any]:
    """StyleGAN2-ADA's 'auto' recipe for small data (what its 2-mapping-layer configs use):
    lr 0.0025, gamma = 0.0002 res^2 / batch, EMA half-life batch * 10 / 32 kimg with 5 % ramp-up."""
    return dict(batch=batch, g_lr=0.0025, d_lr=0.0025, r1_gamma=0.0002 * resolution ** 2 / batch,
                ema_kimg=batch * 10 / 32, ema_rampup=0.05)


PRESETS = {
    # ---- paper targets (section 4.1, appendix A)
    # FFHQ: section 4.1 (T 15000, S 65000 at 1/2 and 1/4, 45000 at 1/8); width 1 with a teacher is the
    # "uncompressed DGL-GAN" of section 4.3: stage I 0 -> 20000, stage II 20000 -> 30000 kimg.
    "stylegan2-ffhq": {
        "paper": dict(_PAPER, xflip=True,
                      stage1_kimg={"1": 20_000.0, "1/2": 15_000.0, "1/4": 15_000.0, "1/8": 15_000.0},
                      stage2_kimg={"1": 10_000.0, "1/2": 65_000.0, "1/4": 65_000.0, "1/8": 45_000.0}),
    },
    # church: gamma 10 and no x-flip both from one source, the DGL-GAN authors' StyleGAN2 launcher
    # (run_distillation.py: D_loss.gamma = 10 hard-coded, --mirror-augment default false, set true only in
    # their FFHQ commands).  NVlabs' own church run differs (gamma 100); we follow the code behind the paper.
    "stylegan2-church": {
        "paper": dict(_PAPER, stage1_kimg=15_000.0, stage2_kimg=30_000.0, xflip=False),
    },
    # ---- embedded: minutes (demo) and an hour or two (study) on 2 CPU cores
    "stylegan2-emoji": {
        "demo": dict(_small(16, 64), stage1_kimg=4.0, stage2_kimg=2.0, teacher_kimg=1.5, xflip=True, tick_kimg=0.5,
                     snapshot_ticks=2, image_ticks=1, metric_ticks=0, metrics=("kid",)),
        "study": dict(_small(16, 64), stage1_kimg=40.0, stage2_kimg=20.0, teacher_kimg=30.0, xflip=True,
                      tick_kimg=1.0, snapshot_ticks=4, image_ticks=2, metric_ticks=10, metrics=("kid",)),
    },
    "stylegan2-fashion-mnist": {
        "demo": dict(_small(32, 32), stage1_kimg=4.0, stage2_kimg=2.0, teacher_kimg=4.0, tick_kimg=0.5,
                     snapshot_ticks=2, image_ticks=1, metric_ticks=0, metrics=("kid",)),
        "study": dict(_small(32, 32), stage1_kimg=100.0, stage2_kimg=50.0, teacher_kimg=80.0, tick_kimg=2.0,
                      snapshot_ticks=5, image_ticks=2, metric_ticks=10, metrics=("kid",)),
    },
}

# ----------------------------------------------------------------------------------------- export


def _cast_synthesis(G, dtype) -> None:
    G.synthesis.to(dtype)  # mapping + truncation stay fp32, as NVlabs runs fp16


def _export_generate(G, z, c, psi, *, dtype, truncation_cutoff):
    """Mapping, then truncation toward w_avg with ``psi`` a tensor [N] (not the float G's own call takes),
    then synthesis with constant noise and the non-fused modulated conv (a dynamic batch)."""
    ws = G.mapping(z, c)  # psi = 1 here: truncation below
    cutoff = ws.shape[1] if truncation_cutoff is None else truncation_cutoff
    w_avg = G.mapping.w_avg
    head = w_avg + psi.reshape(-1, 1, 1) * (ws[:, :cutoff] - w_avg)
    ws = torch.cat([head, ws[:, cutoff:]], dim=1) if cutoff < ws.shape[1] else head
    return G.synthesis(ws.to(dtype), noise_mode="const", fused_modconv=False)


EXPORT = ExportHints(psi_input=True, cast=_cast_synthesis, fp16_parts="fp16 synthesis; mapping + truncation fp32",
                     generate=_export_generate)


def _signature(cfg) -> tuple:
    """Widths as built (a width table and channel_base/max giving the same widths are one network)."""
    cond = cfg.c_dim > 0
    return (cfg.resolution, cfg.img_channels, cfg.z_dim, cfg.w_dim, cfg.c_dim, cfg.mapping_layers,
            cfg.mapping_lr_mul, cfg.g_widths(), cfg.d_widths(), cfg.const_width(), cfg.mbstd_group_size,
            cfg.mbstd_num_channels, cfg.d_mapping_layers if cond else None,
            (cfg.d_cmap_dim or cfg.d_widths()[4]) if cond else None, cfg.conv_clamp)


STYLEGAN2 = register_family(GANFamily(
    name="stylegan2", Config=_net.Config, Generator=_net.Generator, Discriminator=_net.Discriminator,
    label_format="onehot", reference="NVlabs StyleGAN2",
    paper_macs=_net.paper_macs,
    paper_macs_note="DGL-GAN Network.cal_flops convention (up-conv counted at output resolution, const counted as a conv)",
    d_first=False, ema_averages_buffers=False,
    loss=NONSATURATING,
    catalogue=CATALOGUE, presets=PRESETS, export=EXPORT, signature=_signature,
    prepare=_prepare_for_inference,
))
