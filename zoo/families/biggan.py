"""The BigGAN family (networks: ``zoo.models.biggan``): catalogue and training presets."""
from __future__ import annotations

from zoo.families import ExportHints, GANFamily, ModelSpec, register_family
from zoo.families.losses import HINGE
from zoo.models import biggan as _net

# ----------------------------------------------------------------------------------------- catalogue

_PAPER_CHMULS = ("1", "1/2", "1/3", "1/4")

CATALOGUE = (
    ModelSpec(
        name="biggan-imagenet",
        family="biggan",
        arch=dict(resolution=128, n_classes=1000, G_ch=96, D_ch=96, dim_z=120, shared_dim=128,
                  G_attn="64", D_attn="64"),
        ch_muls=_PAPER_CHMULS,
        dataset="ImageNet 128x128 (not embedded: import the BigGAN-PyTorch teacher)",
        description="BigGAN at 128 px (BigGAN-PyTorch launch_BigGAN_bs256x8), the paper's ImageNet target (Table 4).",
        paper=dict(params_G_M=[70.33, 18.38, 8.54, 5.03], macs_G_paper_G=[432.98, 211.35, 139.76, 104.39]),
    ),
    ModelSpec(
        name="biggan-emoji",
        family="biggan",
        arch=dict(resolution=32, n_classes=9, G_ch=48, D_ch=48, dim_z=120, shared_dim=128,
                  G_attn="16", D_attn="16"),
        ch_muls=_PAPER_CHMULS,
        dataset="emoji-groups-32 (9 Unicode emoji groups, built offline by `zoo data build emoji`)",
        default_data=("data/emoji-groups-32", "zoo data build emoji --subset groups --res 32"),
        description=(
            "Embedded class-conditional BigGAN at 32 px with 9 classes and G_ch = D_ch = 48 (so 1/2, 1/3 and "
            "1/4 give whole widths 24/16/12): the ImageNet stand-in."
        ),
    ),
    ModelSpec(
        name="biggan-fashion-mnist",
        family="biggan",
        arch=dict(resolution=32, img_channels=1, n_classes=10, G_ch=48, D_ch=48, dim_z=120, shared_dim=128,
                  G_attn="16", D_attn="16"),
        ch_muls=_PAPER_CHMULS,
        dataset="fashion-mnist-32 (10 classes)",
        default_data=("data/fashion-mnist-32", "zoo data build fashion-mnist"),
        description="Embedded class-conditional BigGAN at 32 px, 1 channel, 10 classes.",
    ),
)

# ----------------------------------------------------------------------------------------- presets
# (zoo.train.config documents the preset kinds and every setting)

# BigGAN-PyTorch launch_BigGAN_bs256x8.sh: batch 256 x 8 accumulations, G 1e-4 / D 4e-4, betas (0, 0.999),
# eps 1e-6, hinge, no R1, EMA 0.9999 from iteration 20000 (= 20000 x 2048 images).
_ITERATION_KIMG = 2048 / 1000
# T = 100000 *iterations* of that batch (204,800 kimg), not 100000 kimg: the appendix gives T = 100000
# with no unit, the authors' BigGAN code (a BigGAN-PyTorch fork) counts iterations (state_dict['itr'],
# test_every, ema_start all in iterations), and section 4.2's "more than 200000 iterations" for a whole
# DGL run is T plus a stage II that runs until divergence.  docs/training.md has the argument.
_T_ITERATIONS = 100_000
_OBJECTIVE = dict(betas=(0.0, 0.999), eps=1e-6, r1_gamma=0.0, pl_weight=0.0, style_mixing=0.0, ema_kimg=None)
_PAPER = dict(_OBJECTIVE, batch=2048, batch_gpu=256, g_lr=1e-4, d_lr=4e-4, ema_decay=0.9999,
              ema_start_kimg=20_000 * _ITERATION_KIMG, teacher_kimg=138_000 * _ITERATION_KIMG, lam=0.1,
              tick_kimg=204.8, snapshot_ticks=10, image_ticks=5, metric_ticks=5, metrics=("fid",))
_SMALL = dict(_OBJECTIVE, g_lr=1e-4, d_lr=4e-4, ema_decay=0.999)

PRESETS = {
    # ---- paper target (section 4.2, appendix A): stage II until divergence
    "biggan-imagenet": {
        "paper": dict(_PAPER, stage1_kimg=_T_ITERATIONS * _ITERATION_KIMG, stage2_kimg=None),
    },
    # ---- embedded: minutes (demo) and an hour or two (study) on 2 CPU cores
    "biggan-emoji": {
        # demo: decay 0.9 per G step (a 0.2-kimg half-life) so that G_ema follows G in a few-kimg run
        "demo": dict(_SMALL, batch=32, ema_decay=0.9, stage1_kimg=4.0, stage2_kimg=2.0, teacher_kimg=3.0,
                     ema_start_kimg=1.0, tick_kimg=0.5, snapshot_ticks=2, image_ticks=1, metric_ticks=0,
                     metrics=("kid",)),
        "study": dict(_SMALL, batch=32, stage1_kimg=30.0, stage2_kimg=15.0, teacher_kimg=25.0, ema_start_kimg=5.0,
                      tick_kimg=1.0, snapshot_ticks=4, image_ticks=2, metric_ticks=10, metrics=("kid",)),
    },
    "biggan-fashion-mnist": {
        "demo": dict(_SMALL, batch=32, ema_decay=0.9, stage1_kimg=3.0, stage2_kimg=1.5, teacher_kimg=3.0,
                     ema_start_kimg=0.5, tick_kimg=0.5, snapshot_ticks=2, image_ticks=1, metric_ticks=0,
                     metrics=("kid",)),
        # v2 (docs/results.md, "BigGAN teacher v2"): with one D step per G step (v1) the full-width D stopped
        # discriminating by 8 kimg (hinge loss 2.0, separation of its own G_ema 0.55) and G collapsed to one
        # image per class; four D steps (BigGAN-PyTorch's 32-px launchers, num_D_steps 4) keep it
        # discriminating.  G_ema's decay is per G step (the reference rule), so at d_steps 4 it is set for the
        # run's few G steps: 0.99 is a half-life of 69 G steps = 8.9 kimg here (StyleGAN2's study: 10 kimg).
        "study": dict(_SMALL, batch=32, d_steps=4, ema_decay=0.99, stage1_kimg=30.0, stage2_kimg=30.0,
                      teacher_kimg=180.0, ema_start_kimg=5.0, tick_kimg=2.0, snapshot_ticks=5, image_ticks=2,
                      metric_ticks=10, metrics=("kid",)),
    },
}

# The generator's own call is the graph (G.truncate scales z by psi, a tensor [N] works), all of it in the
# export dtype; spectral norm is frozen by the exporter.
EXPORT = ExportHints(psi_input=True)

BIGGAN = register_family(GANFamily(
    name="biggan", Config=_net.Config, Generator=_net.Generator, Discriminator=_net.Discriminator,
    label_format="index", class_conditional=True, reference="BigGAN-PyTorch",
    paper_macs=_net.paper_macs,
    paper_macs_note=("DGL-GAN BigGAN.py counter, whose attention term grows as C*R^6/32 (a bug in the paper's counter, "
                     "reproduced for comparability; macs_G_fvcore is the real cost)"),
    # BigGAN-PyTorch steps D before G and averages every state entry into G_ema (utils.ema)
    d_first=True, ema_averages_buffers=True,
    catalogue=CATALOGUE, presets=PRESETS, export=EXPORT,
    loss=HINGE,
))
