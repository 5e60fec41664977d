"""Typed training configurations: one :class:`TrainConfig` per named architecture and preset.

A *preset* fixes everything about a run except the width (``ch_mul``), the teacher and the output
directory.  Three kinds exist:

* ``paper``  - the DGL-GAN paper's settings for its targets (FFHQ-1024, LSUN-church-256, ImageNet-128),
  exactly as section 4 / appendix A give them (T, S, lambda, batch, learning rates), everything else
  from the StyleGAN2 (TF config-f, as DGL-GAN's code sets it) and BigGAN-PyTorch (launch_BigGAN_bs256x8)
  reference runs.
* ``study``  - the embedded datasets for an hour or two on 2 CPU cores: a real small-scale study.
* ``demo``   - the embedded datasets, a visible result in minutes on 2 CPU cores (``make demo``).

The tables are data of each GAN family (``zoo.families``: ``GANFamily.presets``); this module turns
them into validated :class:`TrainConfig` objects.

Units: kimg = thousands of real images shown to D (StyleGAN2's convention).  Stage I lasts
``stage1_kimg`` (T), stage II ``stage2_kimg`` (S; ``None`` = until divergence, see
:class:`DivergenceRule`).  A teacher run (ch_mul 1, S = 0, no teacher) lasts ``teacher_kimg`` unless T
is given explicitly.

    >>> cfg = get_train_config("stylegan2-ffhq", "paper", ch_mul="1/8")
    >>> cfg.stage1_kimg, cfg.stage2_kimg, cfg.lam
    (15000.0, 45000.0, 0.1)
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from zoo.widths import format_ch_mul, parse_ch_mul

PRESETS = ("demo", "study", "paper")
STAGE2_OPTIMIZER = ("restart", "continue")
# settings that only shape stage II: a run without one (S = 0) ignores them when it resumes
STAGE2_ONLY_SETTINGS = frozenset({"lam", "dgl_interval", "stage2_optimizer", "stage2_student_adv"})
# what a run saved before a setting existed did, so that it resumes as it started
LEGACY_SETTINGS = {"stage2_optimizer": "continue", "d_steps": 1, "stage2_student_adv": True}


@dataclass(frozen=True)
class DivergenceRule:
    """When an open-ended stage II (``stage2_kimg=None``, BigGAN-ImageNet) stops.

    Stage II ends at the first of: a non-finite loss; the tracked metric (the first of
    ``TrainConfig.metrics``, lower is better) worse than ``(1 + tolerance) x`` its best value at
    ``patience`` consecutive evaluations; ``max_kimg`` of stage II.  The run's ``final/`` checkpoint is
    then the best-metric snapshot (the paper reports BigGAN "trained until divergence" at its best).
    """

    patience: int = 3
    tolerance: float = 0.05
    max_kimg: float = 200_000.0


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run except width, teacher and output directory.

    Schedule
      stage1_kimg, stage2_kimg:  T and S of Algorithm 1 (kimg); S None = until divergence.
      teacher_kimg:              length of a teacher run (ch_mul 1, S = 0, no teacher) when T is not given.
      lam:                       lambda, the weight of Adv(G, D_bar) in stage II (0.1 in the paper).
      dgl_interval:              k: Adv(G, D_bar) is added on every k-th generator step, weighted lambda * k
                                 (lazy, as StyleGAN2 treats R1).  1 = Algorithm 1 exactly (the paper);
                                 k > 1 divides the full-width teacher's cost in stage II by k.
      stage2_optimizer:          'restart' (default): both Adam optimisers start afresh at the stage switch,
                                 as in the authors' code, where stage II is a new run from the stage-I
                                 weights (BigGAN-PyTorch resume with load_optim=False; TF StyleGAN2
                                 pickles hold no optimiser state); 'continue': Algorithm 1 read as one loop.
      stage2_student_adv:        keep Adv(G, D) in G's stage-II loss (default; Algorithm 1).  False trains G in
                                 stage II on lambda * Adv(G, D_bar) alone (D still trains, unused by G): the
                                 paper's "only Adv(G, D_bar)" ablation (Table 7; T = 0 is its "from scratch").
      d_steps:                   D steps per G step (BigGAN-PyTorch num_D_steps): every step shows D one real
                                 batch; G, its regulariser and G_ema update on every d_steps-th step only.
                                 kimg counts real images shown to D, as always.
      batch:                     global minibatch (real images per step, over all processes).
      batch_gpu:                 micro-batch per process and accumulation round (None = batch // world
                                 size); batch = batch_gpu x world size x rounds.
    Optimisers (Adam)
      g_lr, d_lr, betas, eps:    as the family's reference; lazy regularisation rescales lr and betas
                                 by interval / (interval + 1) (StyleGAN2).
    Objective (the adversarial loss is the family's: GANFamily.loss)
      r1_gamma, r1_interval:     R1 on reals, lazy every r1_interval D steps (0 = off).
      pl_weight, pl_interval, pl_batch_shrink, pl_decay: path-length regulariser of G (0 = off).
      style_mixing:              probability of mixing two latents (StyleGAN2; 0 = off).
    Generator EMA (what users sample from)
      ema_kimg, ema_rampup:      StyleGAN2 half-life rule beta = 0.5 ** (batch / (ema_kimg * 1000)),
                                 ema_kimg optionally ramped up as nimg * ema_rampup.
      ema_decay, ema_start_kimg: BigGAN rule: fixed decay from ema_start_kimg on (a copy before).
                                 Exactly one of ema_kimg / ema_decay is set.
    Data
      xflip:                     random horizontal flips of reals (mirror augmentation).
    Book-keeping
      tick_kimg:                 one log line / progress update / metric sample every tick.
      snapshot_ticks:            resume state every N ticks (and at the stage switch and the end).
      image_ticks:               fake-image grid (fixed seeds) every N ticks.
      metric_ticks:              evaluation metrics every N ticks (0 = only at the end).
      metrics:                   metric names for train.metrics (empty = none).
      grid_size:                 images in the fixed-seed grid.
      monitor_batch:             images of the fixed batch that measures h(x), h(G(z)), h_bar(x), h_bar(G(z)).
    """

    config: str
    preset: str
    # schedule
    stage1_kimg: float
    stage2_kimg: Optional[float]
    teacher_kimg: float
    lam: float = 0.1
    dgl_interval: int = 1
    stage2_optimizer: str = "restart"
    stage2_student_adv: bool = True
    d_steps: int = 1
    batch: int = 32
    batch_gpu: Optional[int] = None
    # optimisers
    g_lr: float = 0.002
    d_lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    # objective
    r1_gamma: float = 10.0
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing: float = 0.9
    # generator EMA
    ema_kimg: Optional[float] = 10.0
    ema_rampup: Optional[float] = None
    ema_decay: Optional[float] = None
    ema_start_kimg: float = 0.0
    # data
    xflip: bool = False
    # book-keeping
    tick_kimg: float = 4.0
    snapshot_ticks: int = 50
    image_ticks: int = 10
    metric_ticks: int = 10
    metrics: tuple[str, ...] = ()
    grid_size: int = 16
    monitor_batch: int = 16
    divergence: DivergenceRule = field(default_factory=DivergenceRule)

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if isinstance(self.divergence, dict):
            object.__setattr__(self, "divergence", DivergenceRule(**self.divergence))
        self.validate()

    @property
    def family(self) -> str:
        from zoo.models import get_spec

        return get_spec(self.config).family

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        def bad(msg):
            raise ValueError(f"training config {self.config}/{self.preset}: {msg}")

        for f in dataclasses.fields(self):  # nan / inf from the Python API or --set (the CLI checks too)
            value = getattr(self, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                bad(f"{f.name} must be finite, got {value!r}")
        if self.stage1_kimg < 0 or (self.stage2_kimg is not None and self.stage2_kimg < 0):
            bad("stage1_kimg and stage2_kimg must be >= 0")
        if self.teacher_kimg <= 0:
            bad("teacher_kimg must be > 0")
        if self.lam < 0:
            bad(f"lambda must be >= 0, got {self.lam}")
        if self.batch < 1 or (self.batch_gpu is not None and (self.batch_gpu < 1 or self.batch % self.batch_gpu)):
            bad(f"batch ({self.batch}) must be a positive multiple of batch_gpu ({self.batch_gpu})")
        if min(self.g_lr, self.d_lr, self.eps) <= 0 or not all(0 <= b < 1 for b in self.betas):
            bad("learning rates and eps must be > 0 and betas in [0, 1)")
        if min(self.r1_interval, self.pl_interval, self.pl_batch_shrink, self.dgl_interval, self.d_steps) < 1:
            bad("d_steps, dgl_interval, regulariser intervals and pl_batch_shrink must be >= 1")
        if not 0 <= self.style_mixing <= 1:
            bad(f"style_mixing must be a probability, got {self.style_mixing}")
        if (self.ema_kimg is None) == (self.ema_decay is None):
            bad("set exactly one of ema_kimg (StyleGAN2 half-life) and ema_decay (BigGAN)")
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            bad(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.stage2_student_adv and self.dgl_interval != 1:
            bad("stage2_student_adv=false (G trained on Adv(G, D_bar) alone) needs dgl_interval 1")
        if self.stage2_optimizer not in STAGE2_OPTIMIZER:
            bad(f"stage2_optimizer must be one of {', '.join(STAGE2_OPTIMIZER)}, got {self.stage2_optimizer!r}")
        if self.tick_kimg <= 0 or min(self.snapshot_ticks, self.image_ticks) < 1 or self.metric_ticks < 0:
            bad("tick_kimg must be > 0, snapshot_ticks and image_ticks >= 1, metric_ticks >= 0")
        if self.stage2_kimg is None and not self.metrics:
            bad("an open-ended stage II (until divergence) needs a metric to watch (metrics=...)")
        if self.grid_size < 1 or self.monitor_batch < 1:
            bad("grid_size and monitor_batch must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------- presets

# The tables themselves are data of each GAN family (``GANFamily.presets``: {config: {preset: settings}},
# beside its catalogue in zoo/families/<family>.py); stage1_kimg and stage2_kimg may be {ch_mul: kimg} tables.

def _family_presets(config: str) -> Mapping[str, Mapping[str, Any]]:
    """The preset tables of a catalogue configuration (ValueError listing the known ones if unknown)."""
    from zoo.families import get_family
    from zoo.models import get_spec

    return get_family(get_spec(config).family).presets.get(config, {})


def default_preset(config: str) -> str:
    """'paper' for the paper's targets, 'study' for the embedded configurations (the first of paper,
    study, demo that the configuration has)."""
    available = _family_presets(config)
    return next((p for p in ("paper", "study", "demo") if p in available), "study")


def presets_of(config: str) -> list[str]:
    available = _family_presets(config)
    return [p for p in PRESETS if p in available]


def get_train_config(config: str, preset: str | None = None, ch_mul="1", **overrides) -> TrainConfig:
    """The training config of a named architecture and preset at width ``ch_mul``.

    ``overrides`` replace fields (``stage1_kimg=``, ``batch=``, ...).  Unknown names, presets or fields
    are ValueErrors listing what exists.
    """
    available = _family_presets(config)  # unknown configuration -> ValueError listing the known ones
    preset = preset or default_preset(config)
    if preset not in available:
        raise ValueError(f"{config} has no {preset!r} training preset; presets: {', '.join(presets_of(config))}")
    values: dict[str, Any] = dict(available[preset])
    width = format_ch_mul(parse_ch_mul(ch_mul))
    for key in ("stage1_kimg", "stage2_kimg"):
        if isinstance(values.get(key), dict):
            values[key] = values[key][width]
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values.update(overrides)
    return TrainConfig(config=config, preset=preset, **values)


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``['batch=16', 'betas=[0,0.99]', 'xflip=true']`` -> dict; values parsed as JSON, else kept as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out[key.strip()] = value
    return out
