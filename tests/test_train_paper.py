"""The paper's configurations build and train a few steps (stage I then stage II against a full-width D_bar)
at reduced batch on CPU; slow (FFHQ-1024 steps take about a minute each on 2 cores)."""
import pytest
import torch

from train_helpers import ticks

PAPER = [("stylegan2-ffhq", "1/8"), ("stylegan2-church", "1/8"), ("biggan-imagenet", "1/4")]


@pytest.mark.slow
@pytest.mark.parametrize("name, ch_mul", PAPER)
def test_paper_config_runs_both_stages_at_reduced_batch(tmp_path, name, ch_mul):
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.sources import RandomImages
    from zoo.train.teacher import num_classes, resolve_teacher
    from zoo.checkpoint import save_checkpoint
    from zoo.models import build_discriminator, build_generator, get_config

    paper = get_train_config(name, "paper", ch_mul)
    # the paper's settings except the batch and the length (one step per stage), no metrics
    cfg = paper.replace(batch=2, batch_gpu=2, stage1_kimg=0.002, stage2_kimg=0.002, tick_kimg=0.002, metrics=(),
                        monitor_batch=2, grid_size=2, snapshot_ticks=1, image_ticks=1)
    teacher_arch, arch = get_config(name, 1), get_config(name, ch_mul)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "teacher", config=teacher_arch, G_ema=build_generator(teacher_arch),
                    D=build_discriminator(teacher_arch), name=name)
    data = RandomImages(arch.resolution, arch.img_channels, num_classes(arch), n=4)
    run = TrainRun(cfg=cfg, arch=arch, method="dgl", out=tmp_path / "run", dataset=data, progress=False,
                   teacher=resolve_teacher(str(tmp_path / "teacher"), arch), tracking_uri="none")
    summary = train(run)
    assert summary["kimg"] == 0.004 and summary["teacher_D_unchanged"] is True
    records = ticks(tmp_path / "run")
    assert [r["stage"] for r in records] == [1, 2] and "loss/G_dgl" in records[1]
    assert all(torch.isfinite(torch.tensor(v)) for r in records for k, v in r.items() if k.startswith("loss/"))
    assert summary["lambda"] == paper.lam == 0.1
