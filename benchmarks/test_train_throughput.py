"""Training throughput (real images per second) of the teacher and each student width, embedded configs.

For every width: stage I (the plain objective: what a teacher or a baseline pays) and, for students,
stage II (+ lambda * Adv(G, D_bar): one extra forward/backward through the full-width teacher D).  The
numbers come from the training loop's own ``speed/img_per_s`` (train steps only, after a warm-up
step), at the demo preset's batch size; they land in the benchmark JSON's ``extra_info``.  Gates (CPU
only) are ratios measured in the same run (narrower must be faster), never absolute times.

    make bench                                   # or: pytest benchmarks/test_train_throughput.py --benchmark-only
    GANZOO_BENCH_DEVICE=cuda pytest benchmarks/test_train_throughput.py --benchmark-only
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DEVICE = os.environ.get("GANZOO_BENCH_DEVICE", "cpu")
# (config, widths, measured steps): StyleGAN2 over 4 steps so one lazy path-length step is included
CASES = {"stylegan2-emoji": (("1", "1/2", "1/4", "1/8"), 4), "biggan-emoji": (("1", "1/2", "1/3", "1/4"), 1)}


def _images_per_second(out: Path, name: str, ch_mul: str, stage: int, teacher: Path | None, steps: int) -> float:
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.sources import RandomImages
    from zoo.train.teacher import num_classes, resolve_teacher
    from zoo.train.tracking import read_log
    from zoo.models import get_config

    demo = get_train_config(name, "demo", ch_mul)
    kimg = demo.batch / 1000
    # one tick per step; the first step of each stage is a warm-up (oneDNN compiles its kernels there)
    T, S = (kimg, (1 + steps) * kimg) if stage == 2 else ((1 + steps) * kimg, 0.0)
    cfg = demo.replace(stage1_kimg=T, stage2_kimg=S, tick_kimg=kimg, metrics=(), snapshot_ticks=10_000,
                       image_ticks=10_000)
    arch = get_config(name, ch_mul)
    data = RandomImages(arch.resolution, arch.img_channels, num_classes(arch), n=256)
    run = TrainRun(cfg=cfg, arch=arch, method="dgl" if stage == 2 else ("teacher" if ch_mul == "1" else "baseline"),
                   out=out, dataset=data, teacher=resolve_teacher(str(teacher), arch) if stage == 2 else None,
                   device=DEVICE, tracking_uri="none", progress=False)
    train(run)
    ticks = [r for r in read_log(out / "log.jsonl") if r["event"] == "tick"]
    measured = ticks[-steps:]
    assert all(r["progress/stage"] == stage for r in measured)
    return len(measured) * demo.batch / sum(demo.batch / r["speed/img_per_s"] for r in measured)


@pytest.mark.parametrize("name", list(CASES))
def test_training_throughput_by_width(benchmark, tmp_path, name):
    from zoo.checkpoint import save_checkpoint
    from zoo.models import build_discriminator, build_generator, get_config

    widths, steps = CASES[name]
    teacher_arch = get_config(name, 1)
    torch.manual_seed(0)
    teacher = save_checkpoint(tmp_path / "teacher", config=teacher_arch, G_ema=build_generator(teacher_arch),
                              D=build_discriminator(teacher_arch), name=name)
    results: dict[str, float] = {}

    def measure_all():
        for w in widths:
            tag = w.replace("/", "_")
            results[f"stage1 {w}"] = _images_per_second(tmp_path / f"s1-{tag}", name, w, 1, None, steps)
            if w != "1":
                results[f"stage2 {w}"] = _images_per_second(tmp_path / f"s2-{tag}", name, w, 2, teacher, steps)

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    benchmark.extra_info.update({f"img_per_s {k}": round(v, 2) for k, v in results.items()})
    benchmark.extra_info.update(device=DEVICE, threads=torch.get_num_threads(),
                                malloc_mmap_threshold=os.environ.get("MALLOC_MMAP_THRESHOLD_"))
    print(f"\n{name} on {DEVICE} ({torch.get_num_threads()} threads), img/s: "
          + ", ".join(f"{k}: {v:.1f}" for k, v in results.items()))
    if DEVICE != "cpu":  # small models on a GPU are launch-bound: report only
        return
    stage1 = [results[f"stage1 {w}"] for w in widths]
    assert stage1[1] > 1.3 * stage1[0], "a 1/2-width student should train clearly faster than its teacher"
    assert all(b > 0.9 * a for a, b in zip(stage1[1:], stage1[2:])), "narrower students should not be slower"
    for w in widths[1:]:  # stage II pays for the teacher's D: slower than stage I, but it still runs
        assert 0 < results[f"stage2 {w}"] < 1.1 * results[f"stage1 {w}"]
