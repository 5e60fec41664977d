"""The DGL-GAN training loop: Algorithm 1 of the paper, for StyleGAN2 and BigGAN students.

    for each step (batch real images, kimg = thousands of them):
        stage = I while nimg < T, then II until T + S           (the switch is logged, survives resume)
        G step:  loss = Adv(G, D)                               (the family's generator loss)
                      + lambda * Adv(G, D_bar)   in stage II    <- the only thing DGL-GAN adds
        [G reg:  path length, lazily]                           (StyleGAN2)
        D step:  loss = Adv(D)                                  (unchanged in both stages)
        [D reg:  R1, lazily]                                    (StyleGAN2)
        G_ema <- EMA of G
        every tick: log losses / h scores / speed, image grid, resume state, metrics

D_bar is the teacher's discriminator: eval mode, no gradients, in no optimiser; its state is hashed
before and after training and must come out bit-identical.  Every random draw of a step (latents,
noise, style mixing, classes) is seeded from (seed, step, phase, micro-batch), and real images are
addressed by position (:class:`train.sources.RealSampler`), so a run gives the same numbers on one
process or many, and a resumed run continues exactly.
"""
from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch

from zoo.train import distributed
from zoo.train.config import LEGACY_SETTINGS, STAGE2_ONLY_SETTINGS, TrainConfig
from zoo.train.losses import OBJECTIVES, dgl_term, path_lengths, r1_penalty
from zoo.train.runlock import lock_run
from zoo.train.sources import RealSampler, dataset_info
from zoo.train.state import find_state, load_state, read_counters, resume_state, save_state
from zoo.train.teacher import TeacherRef, num_classes, state_digest
from zoo.train.tracking import NullTracker, Tracker, default_tracking_uri, read_log
from zoo.environment import environment
from zoo.errors import ZooError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
STAGE1_STATE = "state_stage1"
# settings that may differ between a run and its resume (everything else must match)
RESUMABLE_DIFFERENCES = {"batch_gpu", "snapshot_ticks", "image_ticks", "metric_ticks", "metrics"}


@dataclass
class RunSpec:
    """A fully resolved training run (``train.cli`` builds it from the command line)."""

    cfg: TrainConfig
    arch: Any                             # the student's architecture config (zoo.models.get_config)
    method: str                           # 'dgl' | 'baseline' | 'teacher'
    out: Path
    dataset: Any                          # see train.sources
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
    def lam(self) -> float:
        """lambda as applied in stage II (0 for a baseline or teacher)."""
        return self.cfg.lam if self.method == "dgl" else 0.0

    @property
    def stage1_nimg(self) -> int:
        return int(round(self.cfg.stage1_kimg * 1000))

    @property
    def total_nimg(self) -> int:
        s = self.cfg.stage2_kimg if self.cfg.stage2_kimg is not None else self.cfg.divergence.max_kimg
        return self.stage1_nimg + int(round(s * 1000))

    def settings(self) -> dict[str, Any]:
        """What must be equal for a resume to continue the same run."""
        return {"train": self.cfg.to_dict(), "arch": self.arch.to_dict(), "method": self.method,
                "lambda": self.lam, "seed": self.seed,
                "teacher_sha256": self.teacher.d_sha256 if self.teacher else None,
                "dataset_sha256": getattr(self.dataset, "sha256", None)}


# ------------------------------------------------------------------------------------------ helpers

class Phase(NamedTuple):
    name: str
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    interval: int
    loss: Callable[["MicroBatch"], torch.Tensor]
    amp: bool  # autocast allowed (main phases); regularisers run in fp32


class MicroBatch(NamedTuple):
    index: int                   # global micro-batch index within the step
    real: torch.Tensor
    real_c: Optional[torch.Tensor]


def step_seed(seed: int, step: int, phase: int, micro: int) -> int:
    return int(np.random.SeedSequence([seed, step, phase, micro]).generate_state(1, np.uint64)[0] >> 1)


def make_adam(module: torch.nn.Module, lr: float, cfg: TrainConfig, reg_interval: int | None):
    """Adam with StyleGAN2's lazy-regularisation correction (lr, betas ** (k / (k + 1)))."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    betas = (float(cfg.betas[0] ** ratio), float(cfg.betas[1] ** ratio))
    return torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=betas, eps=cfg.eps)


def ema_beta(cfg: TrainConfig, nimg: int) -> float:
    """How much of G_ema to keep this step (StyleGAN2 half-life rule or BigGAN fixed decay)."""
    if cfg.ema_decay is not None:
        return cfg.ema_decay if nimg >= cfg.ema_start_kimg * 1000 else 0.0
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


# How G_ema treats buffers, per family, as each reference implementation does: StyleGAN2-ADA
# (training_loop.py) averages parameters and copies buffers; BigGAN-PyTorch (utils.ema) averages every
# state entry, so the EMA generator's BN running statistics and SN u vectors are averages too.
EMA_AVERAGES_BUFFERS = {"stylegan2": False, "biggan": True}


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float, average_buffers: bool = False) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; floating buffers averaged the same way when
    ``average_buffers`` (BigGAN-PyTorch), else copied (StyleGAN2-ADA)."""
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


def as_condition(family: str, labels: torch.Tensor | None, n_classes: int) -> torch.Tensor | None:
    """Class labels as the family expects them: indices (BigGAN), one-hot (conditional StyleGAN2)."""
    if labels is None or n_classes == 0:
        return None
    if family == "biggan":
        return labels
    return torch.nn.functional.one_hot(labels, n_classes).float()


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


def git_commit(git: dict[str, Any]) -> str | None:
    """HEAD of the source tree (with '-dirty' when tracked files have local changes), or None outside git;
    ``git`` is ``zoo.environment.git_state()`` (already in the run's environment record)."""
    return (git["commit"] + ("-dirty" if git["dirty"] else "")) if git["commit"] else None


def run_tags(spec: RunSpec, env: dict[str, Any]) -> dict[str, str]:
    """MLflow tags that line runs up in its UI and in `zoo compare --experiment` (set again on resume)."""
    return {"family": spec.arch.family, "config": spec.cfg.config, "preset": spec.cfg.preset,
            "ch_mul": str(spec.arch.ch_mul), "method": spec.method, "seed": str(spec.seed),
            "lambda": f"{spec.lam:g}", "dgl_interval": str(spec.cfg.dgl_interval),
            "teacher": spec.teacher.d_sha256[:16] if spec.teacher else "none",
            "hardware": env["hardware"]["fingerprint"]}


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


# ---------------------------------------------------------------------------------------- the loop

def train(spec: RunSpec) -> dict[str, Any]:
    """Run (or resume) a training run; returns its summary (also ``<out>/summary.json``)."""
    from zoo.checkpoint import save_checkpoint
    from zoo.images import make_grid, save_png, seeded_latents
    from zoo.models import build_discriminator, build_generator

    dist = distributed.init(spec.device)
    device = dist.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    cfg, family, out = spec.cfg, spec.arch.family, Path(spec.out)
    run_lock = lock_run(out) if dist.is_main else None  # held until this function returns  # noqa: F841
    objective = OBJECTIVES[family]
    n_classes = num_classes(spec.arch)
    batch_gpu = cfg.batch_gpu or cfg.batch // dist.world_size
    check_batch(cfg, spec.arch, batch_gpu, dist.world_size)
    check_dataset(spec.dataset, spec.arch, cfg.config)
    if spec.method == "dgl" and spec.teacher is None:
        raise ZooError("a DGL-GAN run needs a teacher (--teacher)")
    n_micro = cfg.batch // batch_gpu                    # micro-batches per step, over all ranks
    my_micro = range(dist.rank, n_micro, dist.world_size)
    autocast_dtype = PRECISIONS[spec.precision]
    if autocast_dtype is not None and device.type != "cuda":
        raise ZooError(f"--precision {spec.precision} needs a CUDA device (this run is on {device})")
    T, total = spec.stage1_nimg, spec.total_nimg

    # --- networks: student G, D (width ch_mul), G_ema, and the frozen teacher D_bar
    torch.manual_seed(spec.seed)
    G = build_generator(spec.arch).to(device).train()
    D = build_discriminator(spec.arch).to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    D_bar = spec.teacher.load_discriminator(device) if spec.teacher is not None else None
    teacher_digest = state_digest(D_bar) if D_bar is not None else None

    # --- optimisers: only the student's parameters, ever
    opt_G = make_adam(G, cfg.g_lr, cfg, cfg.pl_interval if cfg.pl_weight > 0 else None)
    opt_D = make_adam(D, cfg.d_lr, cfg, cfg.r1_interval if cfg.r1_gamma > 0 else None)
    if D_bar is not None:
        frozen = {id(p) for p in D_bar.parameters()}
        # an explicit check, not an assert: it must hold under python -O too
        if any(id(p) in frozen for o in (opt_G, opt_D) for g in o.param_groups for p in g["params"]):
            raise ZooError("internal error: a teacher-discriminator parameter is in a student optimiser")
    scalers = {}
    if autocast_dtype == torch.float16:
        scalers = {"G": torch.amp.GradScaler("cuda"), "D": torch.amp.GradScaler("cuda")}

    # --- counters, resume
    counters: dict[str, Any] = dict(nimg=0, step=0, tick=0, stage=1, pl_mean=0.0, best_metric=None,
                                    bad_evals=0, diverged=None, train_seconds=0.0, cpu_seconds=0.0,
                                    mlflow_run_id=None)
    networks = {"G": G, "G_ema": G_ema, "D": D}
    optimizers = {"G": opt_G, "D": opt_D}
    settings = spec.settings()
    state_dir = resume_state(out) if spec.resume else None  # cleans leftovers of killed saves
    if spec.resume and state_dir is None and spec.stage1_from is None:
        raise ZooError(f"resume: no saved training state in {out} (start the run without resume)")
    resumed_from, from_other_run = None, False
    if state_dir is None and spec.stage1_from is not None:
        state_dir, from_other_run = find_state(spec.stage1_from, STAGE1_STATE), True
        if state_dir is None:
            raise ZooError(f"--stage1-from {spec.stage1_from}: no {STAGE1_STATE}/ there (it is written when a "
                           "run with stage2_kimg > 0 reaches T)")
    if state_dir is not None:
        saved = read_counters(state_dir)
        ignore = set(RESUMABLE_DIFFERENCES)
        if from_other_run:  # stage I does not depend on what only stage II uses
            ignore |= {"method", "lambda", "teacher_sha256", "stage2_kimg", "divergence"} | STAGE2_ONLY_SETTINGS
        if cfg.stage2_kimg == 0:
            ignore |= STAGE2_ONLY_SETTINGS
        saved_settings = saved.get("settings", {})
        if "train" in saved_settings:
            saved_settings = {**saved_settings, "train": {**LEGACY_SETTINGS, **saved_settings["train"]}}
        diffs = _differences(saved_settings, settings, ignore)
        if diffs:
            raise ZooError(f"cannot continue from {state_dir}: its run was started with different settings: "
                           + "; ".join(diffs[:8]))
        restored = load_state(state_dir, networks, optimizers)
        for key in counters:
            if key in restored:
                counters[key] = restored[key]
        for key, scaler in scalers.items():
            if key in restored.get("scalers", {}):
                scaler.load_state_dict(restored["scalers"][key])
        if from_other_run:
            counters.update(mlflow_run_id=None, train_seconds=0.0, cpu_seconds=0.0)
        resumed_from = str(state_dir)
    for module in (G, D, G_ema):
        distributed.broadcast_module(dist, module)

    # --- tracking (rank 0 writes; the others log nothing)
    env = environment(str(device))
    tracker: NullTracker = NullTracker()
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        uri = spec.tracking_uri if spec.tracking_uri is not None else default_tracking_uri(out)
        tracker = Tracker(out, tracking_uri=uri, experiment=spec.experiment or cfg.config, run_name=out.name,
                          run_id=counters["mlflow_run_id"],
                          tags=run_tags(spec, env))
        counters["mlflow_run_id"] = tracker.run_id
        if resumed_from:
            tracker.truncate(counters["nimg"])  # a resumed run re-does what came after its state
    params = {"config": cfg.config, "preset": cfg.preset, "method": spec.method, "ch_mul": str(spec.arch.ch_mul),
              "lambda": spec.lam, "T_kimg": cfg.stage1_kimg, "S_kimg": cfg.stage2_kimg, "seed": spec.seed,
              "teacher": spec.teacher.summary() if spec.teacher else None, "git_commit": git_commit(env["git"]),
              "environment": env, "world_size": dist.world_size, "batch_gpu": batch_gpu, "device": str(device),
              "precision": spec.precision, "data": dataset_info(spec.dataset), "train": cfg.to_dict(),
              "arch": spec.arch.to_dict()}
    tracker.log_params(params)
    tracker.log_event("resume" if resumed_from else "start", nimg=counters["nimg"], source=resumed_from,
                      world_size=dist.world_size, git_commit=params["git_commit"],
                      hardware=env["hardware"]["fingerprint"], packages_sha256=env["packages"]["sha256"])

    # --- data, fixed seeds for grids and the h-score monitor
    sampler = RealSampler(spec.dataset, spec.seed, cfg.xflip, device)
    label_pool = sampler.label_pool()
    grid_z = seeded_latents(G, list(range(cfg.grid_size)), device)
    grid_c = as_condition(family, torch.arange(cfg.grid_size, device=device) % max(n_classes, 1), n_classes)
    mon_real, mon_labels = sampler.batch(0, cfg.monitor_batch)
    mon_c = as_condition(family, mon_labels, n_classes)
    mon_z = seeded_latents(G, list(range(10_000, 10_000 + cfg.monitor_batch)), device)
    images_dir = out / "images"
    if dist.is_main and not resumed_from:
        save_png(make_grid(sampler.batch(0, cfg.grid_size)[0]), images_dir / "reals.png")

    def latents(n: int):
        z = torch.randn([n, G.z_dim], device=device)
        labels = None if label_pool is None else label_pool[torch.randint(len(label_pool), [n], device=device)]
        return z, as_condition(family, labels, n_classes)

    # --- the four phases; stage II adds one term to G's loss
    stats = Stats()
    pl_targets: list[torch.Tensor] = []
    state = {"stage": counters["stage"], "step": counters["step"]}

    def g_main(mb: MicroBatch) -> torch.Tensor:
        z, c = latents(batch_gpu)
        fake = generate(G, z, c, cfg.style_mixing)
        loss = objective.g_loss(D(fake, c))
        stats.add("loss/G_adv", loss)
        if state["stage"] == 2 and spec.method == "dgl" and state["step"] % cfg.dgl_interval == 0:
            dgl = dgl_term(D_bar, fake, c, objective)               # Adv(G, D_bar)
            stats.add("loss/G_dgl", dgl)
            loss = loss + spec.lam * cfg.dgl_interval * dgl         # lazy: lambda * k every k-th step
        return loss

    def g_reg(mb: MicroBatch) -> torch.Tensor:
        z, c = latents(max(batch_gpu // cfg.pl_batch_shrink, 1))
        fake, ws = generate(G, z, c, cfg.style_mixing, return_ws=True)
        lengths = path_lengths(fake, ws)
        target = torch.as_tensor(counters["pl_mean"], device=device).lerp(lengths.mean().detach(), cfg.pl_decay)
        pl_targets.append(target)
        penalty = (lengths - target).square().mean()
        stats.add("loss/G_pl", penalty)
        return penalty * cfg.pl_weight * cfg.pl_interval

    def d_main(mb: MicroBatch) -> torch.Tensor:
        z, c = latents(batch_gpu)
        with torch.no_grad():
            fake = generate(G, z, c, cfg.style_mixing, update_emas=True)
        real_logits, fake_logits = D(mb.real, mb.real_c), D(fake, c)
        loss = objective.d_loss(real_logits, fake_logits)
        stats.add("loss/D_adv", loss)
        stats.add("score/D_real_train", real_logits.mean())
        stats.add("score/D_fake_train", fake_logits.mean())
        return loss

    def d_reg(mb: MicroBatch) -> torch.Tensor:
        real = mb.real.detach().requires_grad_(True)
        logits = D(real, mb.real_c)
        penalty = r1_penalty(real, logits).mean()
        stats.add("loss/D_r1", penalty)
        return penalty * (cfg.r1_gamma / 2) * cfg.r1_interval

    phases = [Phase("G", G, opt_G, 1, g_main, True)]
    if cfg.pl_weight > 0:
        phases.append(Phase("G_reg", G, opt_G, cfg.pl_interval, g_reg, False))
    phases.append(Phase("D", D, opt_D, 1, d_main, True))
    if cfg.r1_gamma > 0:
        phases.append(Phase("D_reg", D, opt_D, cfg.r1_interval, d_reg, False))
    if family == "biggan":  # BigGAN-PyTorch steps D before G
        phases.sort(key=lambda p: p.name[0] != "D")

    def run_phase(index: int, phase: Phase, step: int, micro: list[MicroBatch]) -> None:
        G.requires_grad_(phase.module is G)
        D.requires_grad_(phase.module is D)
        phase.opt.zero_grad(set_to_none=True)
        scaler = scalers.get(phase.name[0]) if phase.amp else None
        for mb in micro:
            torch.manual_seed(step_seed(spec.seed, step, index, mb.index))
            amp = torch.autocast(device.type, dtype=autocast_dtype) if (phase.amp and autocast_dtype) \
                else contextlib.nullcontext()
            with amp:
                loss = phase.loss(mb) / n_micro
            (scaler.scale(loss) if scaler else loss).backward()
        distributed.reduce_gradients(dist, phase.module, sanitize=scaler is None)  # the scaler must see infs
        if scaler:
            scaler.step(phase.opt)
            scaler.update()
        else:
            phase.opt.step()

    # --- tick book-keeping: logs, h scores, images, state, metrics, divergence
    def monitor_scores() -> dict[str, float]:
        """h(x), h(G(z)) of the student D and h_bar of the teacher D_bar on a fixed batch (paper Fig. 4)."""
        G.eval(), D.eval()
        with torch.no_grad():
            fake = G(mon_z, mon_c)
            scores = {"score/h_real": D(mon_real, mon_c).mean(), "score/h_fake": D(fake, mon_c).mean()}
            if D_bar is not None:
                scores["score/hbar_real"] = D_bar(mon_real, mon_c).mean()
                scores["score/hbar_fake"] = D_bar(fake, mon_c).mean()
        G.train(), D.train()
        return {k: float(v) for k, v in scores.items()}

    def evaluate() -> dict[str, float]:
        """Metrics of G_ema (rank 0).  A failing metric is reported, never allowed to kill the run."""
        if spec.evaluator is None or not cfg.metrics:
            return {}
        try:
            values = spec.evaluator(G_ema, list(cfg.metrics), device)
        except Exception as exc:  # noqa: BLE001 - hours of training must not die on an evaluation error
            say(f"warning: metrics {', '.join(cfg.metrics)} failed at {counters['nimg'] / 1000:g} kimg: {exc}")
            tracker.log_event("metrics_failed", nimg=counters["nimg"], error=str(exc)[:500])
            return {}
        return {f"metric/{k}": float(v) for k, v in values.items()}

    def watch_divergence(metrics: dict[str, float], nonfinite: list[str]) -> None:
        """Open-ended stage II (DivergenceRule): keep the best-metric snapshot, stop once diverged."""
        watched, nimg = f"metric/{cfg.metrics[0]}", counters["nimg"]
        if nonfinite:
            counters["diverged"] = f"non-finite {', '.join(nonfinite)} at {nimg / 1000:g} kimg"
        elif watched in metrics:
            value, best = metrics[watched], counters["best_metric"]
            if best is None or value < best:
                counters["best_metric"], counters["bad_evals"] = value, 0
                write_checkpoint(out / "best", metrics)
            elif value > best * (1 + cfg.divergence.tolerance):
                counters["bad_evals"] += 1
                if counters["bad_evals"] >= cfg.divergence.patience:
                    counters["diverged"] = (f"{watched} {value:.4g} > best {best:.4g} "
                                            f"for {counters['bad_evals']} evaluations")
            else:
                counters["bad_evals"] = 0

    def snapshot(name: str = "state") -> None:
        extra = {"settings": settings, "scalers": {k: s.state_dict() for k, s in scalers.items()},
                 "kimg": counters["nimg"] / 1000}
        save_state(out, networks, optimizers, {**counters, **extra}, name=name)

    def write_checkpoint(directory: Path, metrics: dict[str, float], nets=None, training=None) -> None:
        """A regular zoo checkpoint (G_ema, G, D + config + metadata) of the current or given networks."""
        G_e, G_r, D_s = nets or (G_ema, G, D)
        save_checkpoint(directory, config=spec.arch, G_ema=G_e, G=G_r, D=D_s, name=cfg.config, overwrite=True,
                        metadata={"training": training or summary(metrics), "metrics": metrics_block(metrics)})

    def metrics_block(metrics: dict[str, float]) -> dict[str, float]:
        return {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith("metric/")}

    def summary(metrics: dict[str, float]) -> dict[str, Any]:
        return {
            "method": spec.method, "config": cfg.config, "preset": cfg.preset, "ch_mul": str(spec.arch.ch_mul),
            "lambda": spec.lam, "dgl_interval": cfg.dgl_interval, "T_kimg": cfg.stage1_kimg,
            "S_kimg": cfg.stage2_kimg, "kimg": counters["nimg"] / 1000, "seed": spec.seed, "batch": cfg.batch,
            "teacher": spec.teacher.summary() if spec.teacher else None,
            "teacher_D_unchanged": (state_digest(D_bar) == teacher_digest) if D_bar is not None else None,
            "git_commit": params["git_commit"], "environment": env, "data": params["data"],
            "mlflow": {"run_id": tracker.run_id, "tracking_uri": tracker.tracking_uri} if tracker.run_id else None,
            "metrics": metrics_block(metrics), "metrics_info": getattr(spec.evaluator, "info", None),
            "diverged": counters["diverged"],
            "train_seconds": round(counters["train_seconds"], 1),
            # CPU time of this process (all its threads) in training steps: the honest CPU-hours on a
            # shared machine, where wall time also counts other processes and paused periods
            "cpu_seconds": round(counters["cpu_seconds"], 1), "world_size": dist.world_size,
            "device": str(device), "precision": spec.precision, "resumed": resumed_from is not None,
            "stage1_from": str(spec.stage1_from) if from_other_run else None,
        }

    progress = None
    if dist.is_main and spec.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total / 1000, initial=counters["nimg"] / 1000, unit="kimg", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]")

    def say(text: str) -> None:
        if dist.is_main:
            (progress.write if progress is not None else print)(text, file=sys.stderr)

    say(f"{spec.method} run: {cfg.config} ch_mul={spec.arch.ch_mul} lambda={spec.lam} T={cfg.stage1_kimg} "
        f"S={cfg.stage2_kimg} kimg, batch {cfg.batch} ({n_micro} x {batch_gpu} over {dist.world_size} "
        f"process(es)), {device}, out {out}"
        + (f", stage I ({counters['nimg'] / 1000:g} kimg) from {spec.stage1_from}" if from_other_run
           else f", resumed at {counters['nimg'] / 1000:g} kimg" if resumed_from else ""))

    def maybe_switch_stage() -> None:
        """Stage I until T kimg, then stage II: exactly at T, logged, recorded in the resume state.
        The networks at T are also kept as state_stage1/ (for --stage1-from)."""
        nimg = counters["nimg"]
        if state["stage"] != 1 or nimg < T or nimg >= total:
            return
        if T > 0 and dist.is_main:
            snapshot(STAGE1_STATE)
        state["stage"] = counters["stage"] = 2
        if cfg.stage2_optimizer == "restart":  # fresh Adam moments for stage II (TrainConfig says why)
            for opt in (opt_G, opt_D):
                opt.state.clear()
        tracker.log_event("stage2", nimg=nimg, kimg=nimg / 1000, **{"lambda": spec.lam})
        lazy = f" every {cfg.dgl_interval} G steps" if cfg.dgl_interval > 1 else ""
        say(f"stage II from {nimg / 1000:g} kimg: G loss += {spec.lam * cfg.dgl_interval:g} * Adv(G, D_bar){lazy}"
            if spec.method == "dgl" else f"stage II from {nimg / 1000:g} kimg (lambda = 0: {spec.method})")

    # ============================================================================ Algorithm 1
    tick_start_nimg, tick_train_seconds, last_metrics = counters["nimg"], 0.0, {}
    done = counters["nimg"] >= total or counters["diverged"] is not None
    while not done:
        nimg, step = counters["nimg"], counters["step"]
        state["step"] = step
        maybe_switch_stage()  # T = 0 (DGL from scratch) or a --stage1-from start at T
        t0, cpu0 = time.perf_counter(), time.process_time()
        micro = []
        for m in my_micro:
            real, labels = sampler.batch(step * cfg.batch + m * batch_gpu, batch_gpu)
            micro.append(MicroBatch(m, real, as_condition(family, labels, n_classes)))
        for index, phase in enumerate(phases):
            if step % phase.interval == 0:
                run_phase(index, phase, step, micro)
        if pl_targets:  # path-length target: the mean over every micro-batch of the step, on all ranks
            mean_target = distributed.all_sum(dist, torch.stack(pl_targets).sum().reshape(1)) / n_micro
            counters["pl_mean"] = float(mean_target)
            pl_targets.clear()
        update_ema(G_ema, G, ema_beta(cfg, nimg), EMA_AVERAGES_BUFFERS[family])
        counters["nimg"] = nimg + cfg.batch
        counters["step"] = step + 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        tick_train_seconds += dt
        counters["train_seconds"] += dt
        counters["cpu_seconds"] += time.process_time() - cpu0
        if progress is not None:
            progress.update(cfg.batch / 1000)
            progress.set_postfix_str(f"stage {state['stage']}, {cfg.batch / dt:.1f} img/s", refresh=False)

        # --- end of tick?
        nimg = counters["nimg"]
        at_switch = state["stage"] == 1 and nimg >= T and T > 0
        done = nimg >= total
        if not (nimg >= tick_start_nimg + cfg.tick_kimg * 1000 or at_switch or done):
            continue
        counters["tick"] += 1
        tick = counters["tick"]
        distributed.average_buffers(dist, G)
        distributed.average_buffers(dist, D)
        if not EMA_AVERAGES_BUFFERS[family]:
            copy_buffers(G_ema, G)  # the ranks' averaged buffers (StyleGAN2-ADA's rule)
        losses = stats.reduce(dist, ["loss/G_adv", "loss/G_dgl", "loss/G_pl", "loss/D_adv", "loss/D_r1",
                                     "score/D_real_train", "score/D_fake_train"])
        img_per_s = (nimg - tick_start_nimg) / max(tick_train_seconds, 1e-9)
        metrics = {"progress/kimg": nimg / 1000, "progress/stage": state["stage"],
                   "progress/lambda": spec.lam if state["stage"] == 2 else 0.0, "speed/img_per_s": img_per_s,
                   "speed/sec_per_kimg": 1000 / max(img_per_s, 1e-9), **losses}
        if cfg.pl_weight > 0:
            metrics["loss/pl_mean"] = counters["pl_mean"]
        nonfinite = [k for k, v in losses.items() if not math.isfinite(v)]
        open_ended = cfg.stage2_kimg is None and state["stage"] == 2
        stop = torch.zeros(1, device=device)
        if dist.is_main:
            metrics.update(monitor_scores())
            if done or (cfg.metric_ticks and tick % cfg.metric_ticks == 0):
                metrics.update(evaluate())
            if tick % cfg.image_ticks == 0 or done:
                with torch.no_grad():
                    grid = make_grid(G_ema(grid_z, grid_c))
                save_png(grid, images_dir / f"fakes{nimg // 1000:06d}_{nimg % 1000:03d}.png")
                tracker.log_image(grid, "fakes", nimg)
            tracker.log_metrics(metrics, nimg, tick=tick, kimg=nimg / 1000, stage=state["stage"])
            if open_ended:
                watch_divergence(metrics, nonfinite)
            stop[0] = counters["diverged"] is not None
        if nonfinite and not open_ended:
            raise ZooError(f"training diverged: non-finite {', '.join(nonfinite)} at {nimg / 1000:g} kimg "
                           f"(last good state in {out / 'state'})")
        if float(distributed.all_sum(dist, stop)) > 0:
            done = True
            tracker.log_event("diverged", nimg=nimg, reason=counters["diverged"])
            say(f"stage II stopped: {counters['diverged']}")
        say(f"tick {tick:<4d} kimg {nimg / 1000:<8.3f} stage {metrics['progress/stage']}  {img_per_s:6.1f} img/s  "
            + "  ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in metrics.items()
                        if k.startswith(("loss/G", "loss/D", "score/h", "metric/"))))
        maybe_switch_stage()  # at T: before the snapshot, so the saved state is already in stage II
        stop_early = spec.stop_kimg is not None and nimg >= spec.stop_kimg * 1000 and not done
        if dist.is_main and (tick % cfg.snapshot_ticks == 0 or done or stop_early):
            snapshot()
        if stop_early:
            break
        tick_start_nimg, tick_train_seconds, last_metrics = nimg, 0.0, metrics
    # ============================================================================ end
    if progress is not None:
        progress.close()

    result: dict[str, Any] = {}
    if not done:  # stopped early: state saved, no final checkpoint yet
        tracker.log_event("stopped", nimg=counters["nimg"], kimg=counters["nimg"] / 1000)
        tracker.close("KILLED")
        say(f"stopped at {counters['nimg'] / 1000:g} kimg; continue with --resume")
        distributed.barrier(dist)
        distributed.shutdown(dist)
        return {"stopped_at_kimg": counters["nimg"] / 1000}
    if dist.is_main:
        final_metrics = ({k: v for k, v in last_metrics.items() if k.startswith("metric/")}
                         or read_final_metrics(out, counters))
        nets, best_kimg = None, None
        if counters["diverged"] and (out / "best").is_dir():  # until-divergence: the best snapshot is final
            from zoo.checkpoint import load_checkpoint

            best = load_checkpoint(out / "best")
            nets, best_kimg = (best.G_ema, best.G, best.D), best.metadata["training"]["kimg"]
            final_metrics = {f"metric/{k}": v for k, v in best.metadata["metrics"].items()}
        result = summary(final_metrics)
        if result["teacher_D_unchanged"] is False:
            raise ZooError("internal error: the teacher discriminator changed during training")
        if nets is not None:
            result.update(final_is_best_snapshot=True, final_kimg=best_kimg)
        write_checkpoint(out / "final", final_metrics, nets, result)
        from zoo.checkpoint import write_json

        write_json(out / "summary.json", result)
        tracker.log_artifacts(out / "final", "checkpoint")
        tracker.log_artifact(out / "summary.json")
        tracker.log_event("end", nimg=counters["nimg"], kimg=counters["nimg"] / 1000, diverged=counters["diverged"])
        tracker.close("FINISHED")
        say(f"done: {out / 'final'} ({counters['nimg'] / 1000:g} kimg)")
    distributed.barrier(dist)
    distributed.shutdown(dist)
    return result


def read_final_metrics(out: Path, counters: dict[str, Any]) -> dict[str, float]:
    """The metrics of the last tick record at the final nimg, if it evaluated any."""
    for record in reversed(read_log(out / "log.jsonl")):
        if record.get("event") == "tick" and record.get("nimg") == counters["nimg"]:
            return {k: v for k, v in record.items() if k.startswith("metric/")}
    return {}
