"""Tiny configurations and helpers shared by the training tests (no built data, no network)."""
from __future__ import annotations

from pathlib import Path

import torch

SG2 = "stylegan2-emoji"
BIGGAN = "biggan-emoji"
# tiny architectures: a few ms per step once oneDNN has compiled its kernels
TINY_ARCH = {
    SG2: dict(resolution=16, channel_base=512, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2),
    BIGGAN: dict(resolution=32, n_classes=3, G_ch=8, D_ch=8, dim_z=8, shared_dim=8, G_attn="16", D_attn="16"),
}
# one tick per step of 8 images, a state every tick, no metrics, no MLflow unless asked
TINY_TRAIN = dict(batch=8, tick_kimg=0.008, snapshot_ticks=1, image_ticks=1000, metric_ticks=0, metrics=(),
                  monitor_batch=8, grid_size=4)


def tiny_arch(name: str, ch_mul: str = "1", **overrides):
    from zoo.models import get_config

    return get_config(name, ch_mul, **{**TINY_ARCH[name], **overrides})


def tiny_dataset(name: str, n: int = 32):
    from zoo.train.sources import RandomImages
    from zoo.train.teacher import num_classes

    arch = tiny_arch(name)
    return RandomImages(arch.resolution, arch.img_channels, num_classes(arch), n=n)


def save_tiny_checkpoint(directory: Path, name: str, ch_mul: str = "1", seed: int = 1, with_D: bool = True,
                         **overrides) -> Path:
    """A random-init checkpoint (a stand-in teacher: DGL only needs a fixed, full-width D_bar)."""
    from zoo.checkpoint import save_checkpoint
    from zoo.models import build_discriminator, build_generator

    arch = tiny_arch(name, ch_mul, **overrides)
    torch.manual_seed(seed)
    G, D = build_generator(arch), build_discriminator(arch)
    return save_checkpoint(directory, config=arch, G_ema=G, D=D if with_D else None, name=name)


def run_tiny(out: Path, name: str = SG2, method: str = "dgl", teacher: Path | None = None, ch_mul: str = "1/2",
             T: float = 0.016, S: float = 0.016, lam: float = 0.1, tracking_uri: str | None = "none",
             **train_overrides):
    """Train a tiny run in-process; returns its summary."""
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.teacher import resolve_teacher

    arch = tiny_arch(name, ch_mul)
    stop_kimg = train_overrides.pop("stop_kimg", None)
    resume = train_overrides.pop("resume", False)
    stage1_from = train_overrides.pop("stage1_from", None)
    evaluator = train_overrides.pop("evaluator", None)
    cfg = get_train_config(name, "demo", ch_mul, **{**TINY_TRAIN, "stage1_kimg": T, "stage2_kimg": S, "lam": lam,
                                                    **train_overrides})
    ref = resolve_teacher(str(teacher), arch) if teacher is not None else None
    run = TrainRun(cfg=cfg, arch=arch, method=method, out=Path(out), dataset=tiny_dataset(name), teacher=ref,
                   tracking_uri=tracking_uri, progress=False, stop_kimg=stop_kimg, resume=resume,
                   stage1_from=stage1_from, evaluator=evaluator)
    return train(run)


def ticks(run_dir: Path) -> list[dict]:
    from zoo.train.tracking import read_log

    return [r for r in read_log(Path(run_dir) / "log.jsonl") if r["event"] == "tick"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit-for-bit equality, on purpose: it compares runs made *in one test process* (resume vs
    uninterrupted, lambda = 0 vs baseline, a fork vs its source, a file before vs after), which execute the
    same ops on the same shapes and identically seeded inputs with the same kernels, so any difference is a
    real change of behaviour, on any CPU.  Runs in different processes or with different batch layouts
    must compare within a tolerance instead (tests/test_train_process.py)."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


TINY_CLI = [f"--arch={k}={v}" for k, v in TINY_ARCH[SG2].items()] + [
    "--data", "random:32", "--preset", "demo", "--batch", "8", "--metrics", "none", "--no-progress",
    "--set", "tick_kimg=0.008", "--set", "snapshot_ticks=1", "--set", "image_ticks=1000",
    "--set", "monitor_batch=8", "--set", "grid_size=4"]
