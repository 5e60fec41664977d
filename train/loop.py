"""The DGL-GAN training loop: Algorithm 1 of the paper, for any registered GAN family.

    for each step (batch real images, kimg = thousands of them):
        stage = I while nimg < T, then II until T + S           (DGLSchedule; the switch is logged, survives resume)
        G step:  loss = Adv(G, D)                               (the family's loss: g_adv)
                      + lam * Adv(G, D_bar)   in stage II       <- the only thing DGL-GAN adds (dgl_term)
        [G reg:  path length, lazily]                           (pl_weight > 0: StyleGAN2)
        D step:  loss = Adv(D)                                  (d_adv, unchanged in both stages)
        [D reg:  R1, lazily]                                    (r1_gamma > 0: StyleGAN2)
        G_ema <- EMA of G                                       (buffers: the family's rule)
        every tick: log losses / h scores / speed, image grid, resume state, metrics

A family that steps D first (``d_first``, BigGAN) runs the D phases before the G phases.  D_bar is the
teacher's discriminator: eval mode, no gradients, in no optimiser; its state is hashed before and after
training and must come out bit-identical.  Every random draw of a step (latents, noise, style mixing,
classes) is seeded from (seed, step, phase, micro-batch), and real images are addressed by position
(:class:`zoo.train.sources.RealSampler`), so a run gives the same numbers on one process or many, and a
resumed run continues exactly.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch

from zoo.environment import environment
from zoo.errors import ZooError
from zoo.families import GANFamily, get_family
from zoo.families.losses import path_lengths, r1_penalty
from zoo.train import distributed
from zoo.train.config import LEGACY_SETTINGS, STAGE2_ONLY_SETTINGS, TrainConfig
from zoo.train.runlock import lock_run
from zoo.train.schedule import DGLSchedule
from zoo.train.sources import RealSampler, dataset_info
from zoo.train.state import STATE_DIR, find_state, load_state, read_counters, resume_state, save_state
from zoo.train.teacher import TeacherRef, num_classes, state_digest
from zoo.train.tracking import NullTracker, Tracker, default_tracking_uri, read_log

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
STAGE1_STATE = "state_stage1"
# settings that may differ between a run and its resume (everything else must match)
RESUMABLE_DIFFERENCES = {"batch_gpu", "snapshot_ticks", "image_ticks", "metric_ticks", "metrics"}
# the per-step terms averaged over a tick and logged
LOGGED_TERMS = ["loss/G_adv", "loss/G_dgl", "loss/G_pl", "loss/D_adv", "loss/D_r1", "score/D_real_train",
                "score/D_fake_train"]


@dataclass
class TrainRun:
    """A fully resolved training run (``zoo.train.cli`` builds it from the command line)."""

    cfg: TrainConfig
    arch: Any                             # the student's architecture config (zoo.models.get_config)
    method: str                           # 'dgl' | 'baseline' | 'teacher'
    out: Path
    dataset: Any                          # see zoo.train.sources
    teacher: Optional[TeacherRef] = None
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    tracking_uri: Optional[str] = None    # None = sqlite under the output root; 'none' = JSONL only
    experiment: Optional[str] = None      # MLflow experiment (default: the configuration name)
    resume: bool = False
    stage1_from: Optional[Path] = None    # start stage II from another run's stage-I state
    evaluator: Optional[Callable[..., dict[str, float]]] = None  # (G_ema, names, device) -> {name: value}
    progress: bool = True
    stop_kimg: Optional[float] = None     # save state and exit at this kimg (continue later with resume)

    @property
    def schedule(self) -> DGLSchedule:
        return DGLSchedule.from_config(self.cfg, self.method)

    @property
    def lam(self) -> float:
        """lambda as applied in stage II (0 for a baseline or teacher)."""
        return self.schedule.lam

    @property
    def stage1_nimg(self) -> int:
        return self.schedule.T

    @property
    def total_nimg(self) -> int:
        return self.schedule.total

    def settings(self) -> dict[str, Any]:
        """What must be equal for a resume to continue the same run (the key 'lambda' is the state format)."""
        return {"train": self.cfg.to_dict(), "arch": self.arch.to_dict(), "method": self.method,
                "lambda": self.lam, "seed": self.seed,
                "teacher_sha256": self.teacher.d_sha256 if self.teacher else None,
                "dataset_sha256": getattr(self.dataset, "sha256", None)}


@dataclass
class Counters:
    """Where a run stands; saved in state/counters.json under these names (the resume format)."""

    nimg: int = 0
    step: int = 0
    tick: int = 0
    stage: int = 1
    pl_mean: float = 0.0                  # running mean of the path lengths (StyleGAN2's pl_mean)
    best_metric: Optional[float] = None   # open-ended stage II: the best value of the watched metric,
    bad_evals: int = 0                    # evaluations in a row worse than it,
    diverged: Optional[str] = None        # and why the run stopped, once it has
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0
    mlflow_run_id: Optional[str] = None


# ------------------------------------------------------------------------------------ networks

@dataclass
class Networks:
    """The student G, D and G_ema, the frozen teacher D_bar, and the student's optimisers."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    D_bar: Optional[torch.nn.Module]
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    scalers: dict[str, Any]              # fp16 only: a GradScaler per network, {'G': ..., 'D': ...}

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}


def make_adam(module: torch.nn.Module, lr: float, cfg: TrainConfig, reg_interval: int | None):
    """Adam with StyleGAN2's lazy-regularisation correction (lr, betas ** (k / (k + 1)))."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    betas = (float(cfg.betas[0] ** ratio), float(cfg.betas[1] ** ratio))
    return torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=betas, eps=cfg.eps)


def build_networks(run: TrainRun, device: torch.device, fp16: bool) -> Networks:
    """Student networks from ``run.seed``, the teacher's D_bar from its checkpoint, Adam for the student."""
    from zoo.models import build_discriminator, build_generator

    cfg = run.cfg
    torch.manual_seed(run.seed)
    G = build_generator(run.arch).to(device).train()
    D = build_discriminator(run.arch).to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    D_bar = run.teacher.load_discriminator(device) if run.teacher is not None else None
    opt_G = make_adam(G, cfg.g_lr, cfg, cfg.pl_interval if cfg.pl_weight > 0 else None)
    opt_D = make_adam(D, cfg.d_lr, cfg, cfg.r1_interval if cfg.r1_gamma > 0 else None)
    if D_bar is not None:
        frozen = {id(p) for p in D_bar.parameters()}
        # an explicit check, not an assert: it must hold under python -O too
        if any(id(p) in frozen for o in (opt_G, opt_D) for g in o.param_groups for p in g["params"]):
            raise ZooError("internal error: a teacher-discriminator parameter is in a student optimiser")
    scalers = {"G": torch.amp.GradScaler("cuda"), "D": torch.amp.GradScaler("cuda")} if fp16 else {}
    return Networks(G, D, G_ema, D_bar, opt_G, opt_D, scalers)


def ema_beta(cfg: TrainConfig, nimg: int) -> float:
    """How much of G_ema to keep at one G_ema update, made every ``d_steps`` steps (StyleGAN2 half-life rule,
    a half-life in images whatever d_steps is, or BigGAN's fixed decay per G step)."""
    if cfg.ema_decay is not None:
        return cfg.ema_decay if nimg >= cfg.ema_start_kimg * 1000 else 0.0
    return 0.5 ** (cfg.batch * cfg.d_steps / max(half_life_nimg(cfg, nimg), 1e-8))


def half_life_nimg(cfg: TrainConfig, nimg: int) -> float:
    """StyleGAN2's G_ema half-life in images at ``nimg``: ema_kimg, ramped up as nimg * ema_rampup."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
    return ema_nimg


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float, average_buffers: bool = False) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; floating buffers averaged the same way when
    ``average_buffers`` (the family's ``ema_averages_buffers``: BigGAN-PyTorch's utils.ema), else copied
    (StyleGAN2-ADA's training_loop.py)."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    if not average_buffers:
        copy_buffers(G_ema, G)
        return
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b.lerp(b_ema, beta) if b.is_floating_point() else b)


@torch.no_grad()
def copy_buffers(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    for b_dst, b_src in zip(dst.buffers(), src.buffers()):
        b_dst.copy_(b_src)


def generate(G, z: torch.Tensor, c, style_mixing: float = 0.0, update_emas: bool = False,
             return_ws: bool = False):
    """G(z) as training runs it: StyleGAN2 with random noise inputs and style mixing (a random
    crossover layer with probability ``style_mixing``); BigGAN as is."""
    if not hasattr(G, "mapping"):
        return (G(z, c), None) if return_ws else G(z, c)
    ws = G.mapping(z, c, update_emas=update_emas)
    if style_mixing > 0 and float(torch.rand([])) < style_mixing:
        cutoff = int(torch.randint(1, ws.shape[1], []))
        ws = torch.cat([ws[:, :cutoff], G.mapping(torch.randn_like(z), c)[:, cutoff:]], dim=1)
    img = G.synthesis(ws, noise_mode="random")
    return (img, ws) if return_ws else img


# ------------------------------------------------------------------------------------ the phases

class MicroBatch(NamedTuple):
    index: int                   # global micro-batch index within the step
    real: torch.Tensor
    real_c: Optional[torch.Tensor]


class StepAt(NamedTuple):
    """What a phase needs to know about the step it belongs to."""

    step: int
    stage: int
    pl_mean: float               # the path-length running mean before this step


class Phase(NamedTuple):
    name: str                    # 'G', 'G_reg', 'D', 'D_reg'
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int                # runs on the steps that are multiples of it (lazy regularisation)
    loss: Callable[[MicroBatch, StepAt], torch.Tensor]
    amp: bool                    # autocast allowed (main phases); regularisers run in fp32


def step_seed(seed: int, step: int, phase: int, micro: int) -> int:
    return int(np.random.SeedSequence([seed, step, phase, micro]).generate_state(1, np.uint64)[0] >> 1)


class Stats:
    """Per-tick sums of logged scalars (tensors, so no device sync per step)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.counts[name] = self.counts.get(name, 0) + 1

    def reduce(self, dist: distributed.Dist, names: list[str]) -> dict[str, float]:
        """Means over the tick and over ranks; every rank passes the same ``names``."""
        if not names:
            return {}
        device = dist.device
        sums = torch.stack([self.sums.get(n, torch.zeros([], device=device)).to(device) for n in names])
        counts = torch.tensor([float(self.counts.get(n, 0)) for n in names], device=device)
        sums, counts = distributed.all_sum(dist, sums), distributed.all_sum(dist, counts)
        out = {n: float(s / c) for n, s, c in zip(names, sums.cpu(), counts.cpu()) if c > 0}
        self.sums.clear()
        self.counts.clear()
        return out


class PhaseLosses:
    """The loss of each phase of a step on one micro-batch; every term is logged into ``stats``.

    G:      Adv(G, D), plus lam * k * Adv(G, D_bar) where the schedule runs the teacher term (stage II
            without Adv(G, D) when stage2_student_adv is off: the paper's ablation)
    G_reg:  path-length penalty, weighted pl_weight * pl_interval (lazy)
    D:      Adv(D) on reals and on G(z) drawn without autograd
    D_reg:  R1 on reals, weighted gamma / 2 * r1_interval (lazy)
    """

    def __init__(self, nets: Networks, family: GANFamily, cfg: TrainConfig, schedule: DGLSchedule,
                 label_pool: Optional[torch.Tensor], n_classes: int, batch_gpu: int, device: torch.device):
        self.G, self.D, self.D_bar, self.loss = nets.G, nets.D, nets.D_bar, family.loss
        self.family, self.cfg, self.schedule = family, cfg, schedule
        self.label_pool, self.n_classes, self.batch_gpu, self.device = label_pool, n_classes, batch_gpu, device
        self.stats = Stats()
        self.pl_targets: list[torch.Tensor] = []  # this step's path-length targets, one per micro-batch

    def phases(self, nets: Networks) -> list[Phase]:
        """The phases in the order they run: G's then D's, or D's first (``family.d_first``)."""
        cfg = self.cfg
        phases = [Phase("G", nets.G, nets.opt_G, cfg.d_steps, self.g_main, True)]
        if cfg.pl_weight > 0:
            phases.append(Phase("G_reg", nets.G, nets.opt_G, cfg.pl_interval * cfg.d_steps, self.g_reg, False))
        phases.append(Phase("D", nets.D, nets.opt_D, 1, self.d_main, True))
        if cfg.r1_gamma > 0:
            phases.append(Phase("D_reg", nets.D, nets.opt_D, cfg.r1_interval, self.d_reg, False))
        if self.family.d_first:
            phases.sort(key=lambda p: p.module is not nets.D)  # stable: G then G_reg stay in order
        return phases

    def latents(self, n: int):
        z = torch.randn([n, self.G.z_dim], device=self.device)
        pool = self.label_pool
        labels = None if pool is None else pool[torch.randint(len(pool), [n], device=self.device)]
        return z, self.family.condition(labels, self.n_classes)

    def g_main(self, mb: MicroBatch, at: StepAt) -> torch.Tensor:
        z, c = self.latents(self.batch_gpu)
        fake = generate(self.G, z, c, self.cfg.style_mixing)
        adv = self.loss.g_adv(self.D(fake, c))
        self.stats.add("loss/G_adv", adv)
        g_step = at.step // self.cfg.d_steps  # the lazy teacher term counts G steps
        if not self.schedule.teacher_runs(g_step, at.stage):
            return adv
        dgl = self.loss.dgl_term(self.D_bar, fake, c)  # Adv(G, D_bar) on the same G(z) as Adv(G, D)
        self.stats.add("loss/G_dgl", dgl)
        teacher_term = self.schedule.teacher_weight(g_step, at.stage) * dgl
        return adv + teacher_term if self.cfg.stage2_student_adv else teacher_term

    def g_reg(self, mb: MicroBatch, at: StepAt) -> torch.Tensor:
        cfg = self.cfg
        z, c = self.latents(max(self.batch_gpu // cfg.pl_batch_shrink, 1))
        fake, ws = generate(self.G, z, c, cfg.style_mixing, return_ws=True)
        lengths = path_lengths(fake, ws)
        target = torch.as_tensor(at.pl_mean, device=self.device).lerp(lengths.mean().detach(), cfg.pl_decay)
        self.pl_targets.append(target)
        penalty = (lengths - target).square().mean()
        self.stats.add("loss/G_pl", penalty)
        return penalty * cfg.pl_weight * cfg.pl_interval

    def d_main(self, mb: MicroBatch, at: StepAt) -> torch.Tensor:
        z, c = self.latents(self.batch_gpu)
        with torch.no_grad():
            fake = generate(self.G, z, c, self.cfg.style_mixing, update_emas=True)
        real_logits, fake_logits = self.D(mb.real, mb.real_c), self.D(fake, c)
        loss = self.loss.d_adv(real_logits, fake_logits)
        self.stats.add("loss/D_adv", loss)
        self.stats.add("score/D_real_train", real_logits.mean())
        self.stats.add("score/D_fake_train", fake_logits.mean())
        return loss

    def d_reg(self, mb: MicroBatch, at: StepAt) -> torch.Tensor:
        real = mb.real.detach().requires_grad_(True)
        logits = self.D(real, mb.real_c)
        penalty = r1_penalty(real, logits).mean()
        self.stats.add("loss/D_r1", penalty)
        return penalty * (self.cfg.r1_gamma / 2) * self.cfg.r1_interval

    def next_pl_mean(self, dist: distributed.Dist, n_micro: int) -> float:
        """The path-length running mean after this step: its targets' mean over every micro-batch and rank."""
        mean_target = distributed.all_sum(dist, torch.stack(self.pl_targets).sum().reshape(1)) / n_micro
        self.pl_targets.clear()
        return float(mean_target)


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# ------------------------------------------------------------------------------------ checks, resume

def check_dataset(ds, arch, config: str) -> None:
    """The dataset must have the architecture's resolution, channels and (if conditional) classes."""
    what = getattr(ds, "name", None) or getattr(ds, "path", None) or "the dataset"
    if ds.resolution != arch.resolution or ds.channels != arch.img_channels:
        raise ZooError(f"{what} holds {ds.resolution}x{ds.resolution} images with {ds.channels} channel(s); "
                       f"{config} needs {arch.resolution}x{arch.resolution} with {arch.img_channels}")
    n = num_classes(arch)
    if n and (ds.labels is None or ds.num_classes != n):
        raise ZooError(f"{config} is class-conditional with {n} classes, but {what} has "
                       f"{'no labels' if ds.labels is None else f'{ds.num_classes} classes'}")


def check_batch(cfg: TrainConfig, arch, batch_gpu: int, world_size: int) -> None:
    if batch_gpu < 1 or cfg.batch % (batch_gpu * world_size):
        raise ZooError(f"batch {cfg.batch} must be a multiple of batch_gpu ({batch_gpu}) x processes ({world_size})")
    group = getattr(arch, "mbstd_group_size", 0)
    if group and batch_gpu % min(group, batch_gpu):
        raise ZooError(f"batch_gpu {batch_gpu} must be a multiple of D's minibatch-stddev group ({group})")
    if group and cfg.monitor_batch % min(group, cfg.monitor_batch):
        raise ZooError(f"monitor_batch {cfg.monitor_batch} must be a multiple of D's minibatch-stddev group "
                       f"({group})")


def _differences(saved: dict[str, Any], current: dict[str, Any], ignore=()) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{d}" for d in _differences(a, b, ignore)]
        elif a != b:
            out.append(f"{key} ({a!r} -> {b!r})")
    return out


def find_start_state(run: TrainRun, out: Path) -> tuple[Optional[Path], bool]:
    """The state this run continues from (None: a fresh start) and whether it is another run's stage I."""
    state_dir = resume_state(out) if run.resume else None  # cleans leftovers of killed saves
    if run.resume and state_dir is None and run.stage1_from is None:
        raise ZooError(f"resume: no saved training state in {out} (start the run without resume)")
    if state_dir is not None or run.stage1_from is None:
        return state_dir, False
    state_dir = find_state(run.stage1_from, STAGE1_STATE)
    if state_dir is None:
        raise ZooError(f"--stage1-from {run.stage1_from}: no {STAGE1_STATE}/ there (it is written when a "
                       "run with stage2_kimg > 0 reaches T)")
    return state_dir, True


def restore(state_dir: Path, run: TrainRun, nets: Networks, from_other_run: bool) -> Counters:
    """Load a saved state into ``nets`` after checking it was written by the same run; its counters."""
    cfg = run.cfg
    ignore = set(RESUMABLE_DIFFERENCES)
    if from_other_run:  # stage I does not depend on what only stage II uses
        ignore |= {"method", "lambda", "teacher_sha256", "stage2_kimg", "divergence"} | STAGE2_ONLY_SETTINGS
    if cfg.stage2_kimg == 0:
        ignore |= STAGE2_ONLY_SETTINGS
    if run.method == "teacher":  # a teacher's length only says where it stops: a larger T lengthens it
        ignore |= {"stage1_kimg", "teacher_kimg"}
    saved_settings = read_counters(state_dir).get("settings", {})
    if "train" in saved_settings:
        saved_settings = {**saved_settings, "train": {**LEGACY_SETTINGS, **saved_settings["train"]}}
    diffs = _differences(saved_settings, run.settings(), ignore)
    if diffs:
        raise ZooError(f"cannot continue from {state_dir}: its run was started with different settings: "
                       + "; ".join(diffs[:8]))
    restored = load_state(state_dir, nets.modules, nets.optimizers)
    counters = Counters(**{f.name: restored[f.name] for f in dataclasses.fields(Counters) if f.name in restored})
    for key, scaler in nets.scalers.items():
        if key in restored.get("scalers", {}):
            scaler.load_state_dict(restored["scalers"][key])
    if from_other_run:
        counters = dataclasses.replace(counters, mlflow_run_id=None, train_seconds=0.0, cpu_seconds=0.0)
    if counters.nimg > run.total_nimg:
        raise ZooError(f"cannot continue from {state_dir}: the run stands at {counters.nimg / 1000:g} kimg, past "
                       f"the {run.total_nimg / 1000:g} kimg asked for (a teacher can be lengthened, not shortened)")
    return counters


# ------------------------------------------------------------------------------------ book-keeping

def git_commit(git: dict[str, Any]) -> str | None:
    """HEAD of the source tree (with '-dirty' when tracked files have local changes), or None outside git;
    ``git`` is ``zoo.environment.git_state()`` (already in the run's environment record)."""
    return (git["commit"] + ("-dirty" if git["dirty"] else "")) if git["commit"] else None


def run_tags(run: TrainRun, env: dict[str, Any]) -> dict[str, str]:
    """MLflow tags that line runs up in its UI and in `zoo compare --experiment` (set again on resume)."""
    return {"family": run.arch.family, "config": run.cfg.config, "preset": run.cfg.preset,
            "ch_mul": str(run.arch.ch_mul), "method": run.method, "seed": str(run.seed),
            "lambda": f"{run.lam:g}", "dgl_interval": str(run.cfg.dgl_interval),
            "stage2_student_adv": str(run.cfg.stage2_student_adv).lower(),
            "teacher": run.teacher.d_sha256[:16] if run.teacher else "none",
            "hardware": env["hardware"]["fingerprint"]}


def run_params(run: TrainRun, env: dict[str, Any], world_size: int, batch_gpu: int,
               device: torch.device) -> dict[str, Any]:
    """The run's MLflow params (also the provenance part of its summary)."""
    cfg = run.cfg
    return {"config": cfg.config, "preset": cfg.preset, "method": run.method, "ch_mul": str(run.arch.ch_mul),
            "lambda": run.lam, "T_kimg": cfg.stage1_kimg, "S_kimg": cfg.stage2_kimg, "seed": run.seed,
            "teacher": run.teacher.summary() if run.teacher else None, "git_commit": git_commit(env["git"]),
            "environment": env, "world_size": world_size, "batch_gpu": batch_gpu, "device": str(device),
            "precision": run.precision, "data": dataset_info(run.dataset), "train": cfg.to_dict(),
            "arch": run.arch.to_dict()}


def open_tracker(run: TrainRun, out: Path, env: dict[str, Any], counters: Counters, resumed: bool) -> Tracker:
    """Rank 0's tracker (log.jsonl, MLflow); a resumed run re-does what came after its state."""
    out.mkdir(parents=True, exist_ok=True)
    uri = run.tracking_uri if run.tracking_uri is not None else default_tracking_uri(out)
    tracker = Tracker(out, tracking_uri=uri, experiment=run.experiment or run.cfg.config, run_name=out.name,
                      run_id=counters.mlflow_run_id, tags=run_tags(run, env))
    counters.mlflow_run_id = tracker.run_id
    if resumed:
        tracker.truncate(counters.nimg)
    return tracker


class Monitor:
    """The fixed inputs of every tick: the image grid's latents and classes, and the batch on which the h
    scores are measured (paper Fig. 4)."""

    def __init__(self, G, family: GANFamily, sampler: RealSampler, cfg: TrainConfig, n_classes: int,
                 device: torch.device):
        from zoo.images import seeded_latents

        self.grid_z = seeded_latents(G, list(range(cfg.grid_size)), device)
        self.grid_c = family.condition(torch.arange(cfg.grid_size, device=device) % max(n_classes, 1), n_classes)
        self.real, labels = sampler.batch(0, cfg.monitor_batch)
        self.c = family.condition(labels, n_classes)
        self.z = seeded_latents(G, list(range(10_000, 10_000 + cfg.monitor_batch)), device)

    def scores(self, nets: Networks) -> dict[str, float]:
        """h(x), h(G(z)) of the student D and h_bar of the teacher D_bar on the fixed batch, and how well
        each separates the real batch from G's (``separation``: 0.5 = not at all, so no signal for G)."""
        from zoo.train.metrics.stats import separation

        G, D, D_bar = nets.G, nets.D, nets.D_bar
        G.eval(), D.eval()
        scores = {}
        with torch.no_grad():
            fake = G(self.z, self.c)
            for name, critic in (("h", D), ("hbar", D_bar)):
                if critic is not None:
                    real_logits, fake_logits = critic(self.real, self.c).flatten(), critic(fake, self.c).flatten()
                    scores[f"score/{name}_real"] = float(real_logits.mean())
                    scores[f"score/{name}_fake"] = float(fake_logits.mean())
                    scores[f"score/{name}_auc"] = separation(real_logits, fake_logits)
        G.train(), D.train()
        return scores

    def grid(self, G_ema) -> torch.Tensor:
        from zoo.images import make_grid

        with torch.no_grad():
            return make_grid(G_ema(self.grid_z, self.grid_c))


class Records:
    """What a run writes (rank 0): log lines, states, checkpoints, its summary; and its progress bar."""

    def __init__(self, run: TrainRun, out: Path, dist: distributed.Dist, tracker: NullTracker,
                 params: dict[str, Any], nets: Networks, resumed_from: Optional[str], from_other_run: bool,
                 counters: Counters):
        self.run, self.out, self.dist, self.tracker, self.params, self.nets = run, out, dist, tracker, params, nets
        self.resumed_from, self.from_other_run = resumed_from, from_other_run
        self.teacher_digest = state_digest(nets.D_bar) if nets.D_bar is not None else None
        self.progress = None
        if dist.is_main and run.progress:
            from tqdm.auto import tqdm

            total = run.schedule.total
            self.progress = tqdm(total=total / 1000, initial=counters.nimg / 1000, unit="kimg", dynamic_ncols=True,
                                 bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]")

    def say(self, text: str) -> None:
        if self.dist.is_main:
            (self.progress.write if self.progress is not None else print)(text, file=sys.stderr)

    def stepped(self, stage: int, seconds: float) -> None:
        if self.progress is not None:
            batch = self.run.cfg.batch
            # the last step may pass the total (kimg not a multiple of the batch): stop the bar at 100 %
            self.progress.update(max(0.0, min(batch / 1000, self.progress.total - self.progress.n)))
            self.progress.set_postfix_str(f"stage {stage}, {batch / seconds:.1f} img/s", refresh=False)

    def close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def snapshot(self, counters: Counters, name: str = STATE_DIR) -> None:
        scalers = {k: s.state_dict() for k, s in self.nets.scalers.items()}
        extra = {"settings": self.run.settings(), "scalers": scalers, "kimg": counters.nimg / 1000}
        save_state(self.out, self.nets.modules, self.nets.optimizers, {**dataclasses.asdict(counters), **extra},
                   name=name)

    def evaluate(self, G_ema, counters: Counters) -> dict[str, float]:
        """Metrics of G_ema (rank 0).  A failing metric is reported, never allowed to kill the run."""
        run, metrics = self.run, self.run.cfg.metrics
        if run.evaluator is None or not metrics:
            return {}
        try:
            values = run.evaluator(G_ema, list(metrics), self.dist.device)
        except Exception as exc:  # noqa: BLE001 - hours of training must not die on an evaluation error
            self.say(f"warning: metrics {', '.join(metrics)} failed at {counters.nimg / 1000:g} kimg: {exc}")
            self.tracker.log_event("metrics_failed", nimg=counters.nimg, error=str(exc)[:500])
            return {}
        return {f"metric/{k}": float(v) for k, v in values.items()}

    def save_grid(self, grid: torch.Tensor, nimg: int) -> None:
        from zoo.images import save_png

        save_png(grid, self.out / "images" / f"fakes{nimg // 1000:06d}_{nimg % 1000:03d}.png")
        self.tracker.log_image(grid, "fakes", nimg)

    def write_checkpoint(self, directory: Path, counters: Counters, metrics: dict[str, float], nets=None,
                         training=None) -> None:
        """A regular zoo checkpoint (G_ema, G, D + config + metadata) of the current or given networks."""
        from zoo.checkpoint import save_checkpoint

        G_e, G_r, D_s = nets or (self.nets.G_ema, self.nets.G, self.nets.D)
        save_checkpoint(directory, config=self.run.arch, G_ema=G_e, G=G_r, D=D_s, name=self.run.cfg.config,
                        overwrite=True, metadata={"training": training or self.summary(counters, metrics),
                                                  "metrics": metrics_block(metrics)})

    def summary(self, counters: Counters, metrics: dict[str, float]) -> dict[str, Any]:
        run, cfg, D_bar = self.run, self.run.cfg, self.nets.D_bar
        return {
            "method": run.method, "config": cfg.config, "preset": cfg.preset, "ch_mul": str(run.arch.ch_mul),
            "lambda": run.lam, "dgl_interval": cfg.dgl_interval, "stage2_student_adv": cfg.stage2_student_adv,
            "T_kimg": cfg.stage1_kimg, "S_kimg": cfg.stage2_kimg, "kimg": counters.nimg / 1000, "seed": run.seed,
            "batch": cfg.batch,
            "teacher": run.teacher.summary() if run.teacher else None,
            "teacher_D_unchanged": (state_digest(D_bar) == self.teacher_digest) if D_bar is not None else None,
            "git_commit": self.params["git_commit"], "environment": self.params["environment"],
            "data": self.params["data"],
            "mlflow": ({"run_id": self.tracker.run_id, "tracking_uri": self.tracker.tracking_uri}
                       if self.tracker.run_id else None),
            "metrics": metrics_block(metrics), "metrics_info": getattr(run.evaluator, "info", None),
            "diverged": counters.diverged,
            "train_seconds": round(counters.train_seconds, 1),
            # CPU time of this process (all its threads) in training steps: the honest CPU-hours on a
            # shared machine, where wall time also counts other processes and paused periods
            "cpu_seconds": round(counters.cpu_seconds, 1), "world_size": self.dist.world_size,
            "device": str(self.dist.device), "precision": run.precision, "resumed": self.resumed_from is not None,
            "stage1_from": str(run.stage1_from) if self.from_other_run else None,
        }


def metrics_block(metrics: dict[str, float]) -> dict[str, float]:
    return {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("metric/")}


def enter_stage2(records: Records, nets: Networks, counters: Counters, schedule: DGLSchedule, method: str) -> None:
    """Stage I until T, then stage II: at the first step boundary at or after T, logged, recorded in the
    resume state.  The networks at T are also kept as state_stage1/ (for --stage1-from)."""
    nimg = counters.nimg
    if schedule.T > 0 and records.dist.is_main:
        records.snapshot(counters, STAGE1_STATE)
    counters.stage = 2
    if schedule.restarts_optimizers:  # fresh Adam moments for stage II (TrainConfig says why)
        for opt in nets.optimizers.values():
            opt.state.clear()
    records.tracker.log_event("stage2", nimg=nimg, kimg=nimg / 1000, **{"lambda": schedule.lam})
    lazy = f" every {schedule.interval} G steps" if schedule.interval > 1 else ""
    records.say(f"stage II from {nimg / 1000:g} kimg: G loss += {schedule.lam * schedule.interval:g} * Adv(G, D_bar)"
                f"{lazy}" if method == "dgl" else f"stage II from {nimg / 1000:g} kimg (lambda = 0: {method})")


# Below this separation of the monitor batch (real vs the student's G(z) at T), D_bar hardly tells real from fake,
# so Adv(G, D_bar) has little to teach: the shipped BigGAN teacher v1 measured 0.54 (docs/results.md).
WEAK_CRITIC_AUC = 0.6


def warn_if_weak_critic(records: Records, metrics: dict[str, float], nimg: int) -> None:
    auc = metrics.get("score/hbar_auc")
    if auc is not None and auc < WEAK_CRITIC_AUC:
        records.tracker.log_event("weak_critic", nimg=nimg, hbar_auc=auc)
        records.say(f"warning: the teacher's D_bar separates the monitor batch's real images from this student's "
                    f"only at AUC {auc:.2f} (0.5 = chance): Adv(G, D_bar) carries little signal")


# G_ema lags G by about its half-life.  Past this fraction of the run, the final G_ema is mostly early G: the
# BigGAN diagnostics at d_steps 4 (decay 0.999 per G step: an 89-kimg half-life in a 40-kimg run) read
# G_ema's blobs as a slow G, while G itself drew garments (docs/results.md).
SLOW_EMA_FRACTION = 0.5


def ema_half_life_kimg(cfg: TrainConfig, run_kimg: float) -> float:
    """G_ema's half-life in kimg of images at the end of a ``run_kimg`` run (ema_beta's rules)."""
    if cfg.ema_decay is None:
        return half_life_nimg(cfg, run_kimg * 1000) / 1000
    if cfg.ema_decay == 0:
        return 0.0
    g_steps = math.log(0.5) / math.log(cfg.ema_decay)
    return g_steps * cfg.batch * cfg.d_steps / 1000


def warn_if_slow_ema(records: Records, cfg: TrainConfig, total_nimg: int) -> None:
    length = total_nimg / 1000
    half_life = ema_half_life_kimg(cfg, length)
    if length > 0 and half_life > SLOW_EMA_FRACTION * length:
        records.tracker.log_event("slow_ema", nimg=0, half_life_kimg=half_life, run_kimg=length)
        knob = ("ema_decay (per G step, i.e. per batch x d_steps images)" if cfg.ema_decay is not None
                else "ema_kimg")
        records.say(f"warning: G_ema's half-life is {half_life:.3g} kimg in a {length:g}-kimg run, so its samples "
                    f"lag G's: lower {knob}")


def watch_divergence(counters: Counters, cfg: TrainConfig, metrics: dict[str, float], nonfinite: list[str]) -> bool:
    """Open-ended stage II (DivergenceRule): track the best metric, record a divergence in ``counters``.
    True when this tick set a new best (the caller keeps it as best/)."""
    watched, nimg = f"metric/{cfg.metrics[0]}", counters.nimg
    if nonfinite:
        counters.diverged = f"non-finite {', '.join(nonfinite)} at {nimg / 1000:g} kimg"
    elif watched in metrics:
        value, best = metrics[watched], counters.best_metric
        if best is None or value < best:
            counters.best_metric, counters.bad_evals = value, 0
            return True
        if value > best * (1 + cfg.divergence.tolerance):
            counters.bad_evals += 1
            if counters.bad_evals >= cfg.divergence.patience:
                counters.diverged = f"{watched} {value:.4g} > best {best:.4g} for {counters.bad_evals} evaluations"
        else:
            counters.bad_evals = 0
    return False


def read_final_metrics(out: Path, nimg: int) -> dict[str, float]:
    """The metrics of the last tick record at the final nimg, if it evaluated any."""
    for record in reversed(read_log(out / "log.jsonl")):
        if record.get("event") == "tick" and record.get("nimg") == nimg:
            return {k: v for k, v in record.items() if k.startswith("metric/")}
    return {}


# ------------------------------------------------------------------------------------ the loop

def train(run: TrainRun) -> dict[str, Any]:
    """Run (or resume) a training run; returns its summary (also ``<out>/summary.json``)."""
    # ---- set-up: devices, checks, networks
    dist = distributed.init(run.device)
    device = dist.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    cfg, out, family, schedule = run.cfg, Path(run.out), get_family(run.arch.family), run.schedule
    run_lock = lock_run(out) if dist.is_main else None  # held until this function returns  # noqa: F841
    n_classes = num_classes(run.arch)
    batch_gpu = cfg.batch_gpu or cfg.batch // dist.world_size
    check_batch(cfg, run.arch, batch_gpu, dist.world_size)
    if not cfg.stage2_student_adv and not (run.method == "dgl" and run.lam > 0):
        raise ZooError("stage2_student_adv=false trains G on lambda * Adv(G, D_bar) alone: it needs a DGL run "
                       f"with lambda > 0 (this is a {run.method} run, lambda {run.lam:g})")
    check_dataset(run.dataset, run.arch, cfg.config)
    if run.method == "dgl" and run.teacher is None:
        raise ZooError("a DGL-GAN run needs a teacher (--teacher)")
    n_micro = cfg.batch // batch_gpu                    # micro-batches per step, over all ranks
    my_micro = range(dist.rank, n_micro, dist.world_size)
    autocast_dtype = PRECISIONS[run.precision]
    if autocast_dtype is not None and device.type != "cuda":
        raise ZooError(f"--precision {run.precision} needs a CUDA device (this run is on {device})")
    if family.loss is None:
        raise ZooError(f"GAN family {family.name!r} defines no loss: it cannot be trained")
    nets = build_networks(run, device, fp16=autocast_dtype == torch.float16)
    G, D, G_ema = nets.G, nets.D, nets.G_ema

    # ---- resume: this run's own state, or another run's stage I (--stage1-from)
    state_dir, from_other_run = find_start_state(run, out)
    counters = restore(state_dir, run, nets, from_other_run) if state_dir is not None else Counters()
    resumed_from = str(state_dir) if state_dir is not None else None
    for module in (G, D, G_ema):
        distributed.broadcast_module(dist, module)

    # ---- tracking, data, the fixed monitor batch, the phases
    env = environment(str(device))
    tracker = open_tracker(run, out, env, counters, resumed_from is not None) if dist.is_main else NullTracker()
    params = run_params(run, env, dist.world_size, batch_gpu, device)
    tracker.log_params(params)
    tracker.log_event("resume" if resumed_from else "start", nimg=counters.nimg, source=resumed_from,
                      world_size=dist.world_size, git_commit=params["git_commit"],
                      hardware=env["hardware"]["fingerprint"], packages_sha256=env["packages"]["sha256"])
    sampler = RealSampler(run.dataset, run.seed, cfg.xflip, device)
    monitor = Monitor(G, family, sampler, cfg, n_classes, device)
    if dist.is_main and not resumed_from:
        from zoo.images import make_grid, save_png

        save_png(make_grid(sampler.batch(0, cfg.grid_size)[0]), out / "images" / "reals.png")
    losses = PhaseLosses(nets, family, cfg, schedule, sampler.label_pool(), n_classes, batch_gpu, device)
    phases = losses.phases(nets)
    records = Records(run, out, dist, tracker, params, nets, resumed_from, from_other_run, counters)
    records.say(f"{run.method} run: {cfg.config} ch_mul={run.arch.ch_mul} lambda={run.lam} T={cfg.stage1_kimg} "
                f"S={cfg.stage2_kimg} kimg, batch {cfg.batch} ({n_micro} x {batch_gpu} over {dist.world_size} "
                f"process(es)), {device}, out {out}"
                + (f", stage I ({counters.nimg / 1000:g} kimg) from {run.stage1_from}" if from_other_run
                   else f", resumed at {counters.nimg / 1000:g} kimg" if resumed_from else ""))
    if not resumed_from:
        warn_if_slow_ema(records, cfg, schedule.total)

    tick_start_nimg, tick_train_seconds, last_metrics = counters.nimg, 0.0, {}
    done = counters.nimg >= schedule.total or counters.diverged is not None
    while not done:
        # ---- the step: every phase due at this step, on every micro-batch, then G_ema
        nimg, step = counters.nimg, counters.step
        if counters.stage == 1 and schedule.stage(nimg) == 2:  # T = 0 (DGL from scratch), a --stage1-from start
            enter_stage2(records, nets, counters, schedule, run.method)
        t0, cpu0 = time.perf_counter(), time.process_time()
        at = StepAt(step, counters.stage, counters.pl_mean)
        micro = []
        for m in my_micro:
            real, labels = sampler.batch(step * cfg.batch + m * batch_gpu, batch_gpu)
            micro.append(MicroBatch(m, real, family.condition(labels, n_classes)))
        for index, phase in enumerate(phases):
            if step % phase.interval:
                continue
            G.requires_grad_(phase.module is G)
            D.requires_grad_(phase.module is D)
            phase.opt.zero_grad(set_to_none=True)
            scaler = nets.scalers.get(phase.name[0]) if phase.amp else None
            for mb in micro:
                torch.manual_seed(step_seed(run.seed, step, index, mb.index))
                with autocast(device, autocast_dtype if phase.amp else None):
                    loss = phase.loss(mb, at) / n_micro
                (scaler.scale(loss) if scaler else loss).backward()
            distributed.reduce_gradients(dist, phase.module, sanitize=scaler is None)  # the scaler must see infs
            if scaler:
                scaler.step(phase.opt)
                scaler.update()
            else:
                phase.opt.step()
        if losses.pl_targets:
            counters.pl_mean = losses.next_pl_mean(dist, n_micro)
        if step % cfg.d_steps == 0:  # G moved (BigGAN-PyTorch averages once per G step)
            update_ema(G_ema, G, ema_beta(cfg, nimg), family.ema_averages_buffers)
        counters.nimg, counters.step = nimg + cfg.batch, step + 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        tick_train_seconds += dt
        counters.train_seconds += dt
        counters.cpu_seconds += time.process_time() - cpu0
        records.stepped(counters.stage, dt)

        # ---- the tick: every tick_kimg, at the switch and at the end
        nimg, stage = counters.nimg, counters.stage
        done = nimg >= schedule.total
        if not (nimg >= tick_start_nimg + cfg.tick_kimg * 1000 or schedule.switches_at(nimg - cfg.batch, nimg)
                or done):
            continue
        counters.tick += 1
        tick = counters.tick
        distributed.average_buffers(dist, G)
        distributed.average_buffers(dist, D)
        if not family.ema_averages_buffers:
            copy_buffers(G_ema, G)  # the ranks' averaged buffers (StyleGAN2-ADA's rule)
        terms = losses.stats.reduce(dist, LOGGED_TERMS)
        img_per_s = (nimg - tick_start_nimg) / max(tick_train_seconds, 1e-9)
        metrics = {"progress/kimg": nimg / 1000, "progress/stage": stage, "progress/lambda": schedule.lam_at(stage),
                   "speed/img_per_s": img_per_s, "speed/sec_per_kimg": 1000 / max(img_per_s, 1e-9), **terms}
        if cfg.pl_weight > 0:
            metrics["loss/pl_mean"] = counters.pl_mean
        nonfinite = [k for k, v in terms.items() if not math.isfinite(v)]
        open_ended = cfg.stage2_kimg is None and stage == 2
        stop = torch.zeros(1, device=device)
        if dist.is_main:
            metrics.update(monitor.scores(nets))
            if done or (cfg.metric_ticks and tick % cfg.metric_ticks == 0):
                metrics.update(records.evaluate(G_ema, counters))
            if tick % cfg.image_ticks == 0 or done:
                records.save_grid(monitor.grid(G_ema), nimg)
            tracker.log_metrics(metrics, nimg, tick=tick, kimg=nimg / 1000, stage=stage)
            if open_ended and watch_divergence(counters, cfg, metrics, nonfinite):
                records.write_checkpoint(out / "best", counters, metrics)
            stop[0] = counters.diverged is not None
        if nonfinite and not open_ended:
            raise ZooError(f"training diverged: non-finite {', '.join(nonfinite)} at {nimg / 1000:g} kimg "
                           f"(last good state in {out / 'state'})")
        if float(distributed.all_sum(dist, stop)) > 0:
            done = True
            tracker.log_event("diverged", nimg=nimg, reason=counters.diverged)
            records.say(f"stage II stopped: {counters.diverged}")
        records.say(f"tick {tick:<4d} kimg {nimg / 1000:<8.3f} stage {stage}  {img_per_s:6.1f} img/s  "
                    + "  ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in metrics.items()
                                if k.startswith(("loss/G", "loss/D", "score/h", "metric/"))))
        if counters.stage == 1 and schedule.stage(nimg) == 2:  # at T: before the snapshot, which is then stage II
            enter_stage2(records, nets, counters, schedule, run.method)
            if run.method == "dgl":
                warn_if_weak_critic(records, metrics, nimg)
        stop_early = run.stop_kimg is not None and nimg >= run.stop_kimg * 1000 and not done
        if dist.is_main and (tick % cfg.snapshot_ticks == 0 or done or stop_early):
            records.snapshot(counters)
        if stop_early:
            break
        tick_start_nimg, tick_train_seconds, last_metrics = nimg, 0.0, metrics

    # ---- the end: a final checkpoint and summary, or (stopped early) only the state
    records.close_progress()
    if not done:
        tracker.log_event("stopped", nimg=counters.nimg, kimg=counters.nimg / 1000)
        tracker.close("KILLED")
        records.say(f"stopped at {counters.nimg / 1000:g} kimg; continue with --resume")
        distributed.barrier(dist)
        distributed.shutdown(dist)
        return {"stopped_at_kimg": counters.nimg / 1000}
    result: dict[str, Any] = {}
    if dist.is_main:
        result = finish(records, counters, last_metrics)
    distributed.barrier(dist)
    distributed.shutdown(dist)
    return result


def finish(records: Records, counters: Counters, last_metrics: dict[str, float]) -> dict[str, Any]:
    """Rank 0 at the end: final/ (the best snapshot of a run stopped at divergence, else the networks now),
    summary.json and the MLflow artifacts; returns the summary."""
    from zoo.checkpoint import load_checkpoint
    from zoo.integrity import write_json

    out, tracker = records.out, records.tracker
    final_metrics = ({k: v for k, v in last_metrics.items() if k.startswith("metric/")}
                     or read_final_metrics(out, counters.nimg))
    nets, best_kimg = None, None
    if counters.diverged and (out / "best").is_dir():  # until-divergence: the best snapshot is final
        best = load_checkpoint(out / "best")
        nets, best_kimg = (best.G_ema, best.G, best.D), best.metadata["training"]["kimg"]
        final_metrics = {f"metric/{k}": v for k, v in best.metadata["metrics"].items()}
    result = records.summary(counters, final_metrics)
    if result["teacher_D_unchanged"] is False:
        raise ZooError("internal error: the teacher discriminator changed during training")
    if nets is not None:
        result.update(final_is_best_snapshot=True, final_kimg=best_kimg)
    records.write_checkpoint(out / "final", counters, final_metrics, nets, result)
    write_json(out / "summary.json", result)
    tracker.log_artifacts(out / "final", "checkpoint")
    tracker.log_artifact(out / "summary.json")
    tracker.log_event("end", nimg=counters.nimg, kimg=counters.nimg / 1000, diverged=counters.diverged)
    tracker.close("FINISHED")
    records.say(f"done: {out / 'final'} ({counters.nimg / 1000:g} kimg)")
    return result
