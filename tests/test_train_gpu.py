"""Training on CUDA: fp32 / bf16 / fp16 autocast runs both stages with finite losses and a frozen teacher,
and a paper-scale student takes steps at a realistic per-GPU batch.  Skipped without CUDA."""
import pytest
import torch

from train_helpers import BIGGAN, SG2, save_tiny_checkpoint, ticks

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", [SG2, BIGGAN])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_mixed_precision_runs_both_stages(tmp_path, name, precision):
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.teacher import resolve_teacher
    from train_helpers import TINY_TRAIN, tiny_arch, tiny_dataset

    teacher = save_tiny_checkpoint(tmp_path / "teacher", name)
    arch = tiny_arch(name, "1/2")
    cfg = get_train_config(name, "demo", "1/2", **{**TINY_TRAIN, "stage1_kimg": 0.016, "stage2_kimg": 0.016})
    run = TrainRun(cfg=cfg, arch=arch, method="dgl", out=tmp_path / "run", dataset=tiny_dataset(name),
                   teacher=resolve_teacher(str(teacher), arch), device="cuda", precision=precision,
                   tracking_uri="none", progress=False)
    summary = train(run)
    assert summary["device"].startswith("cuda") and summary["teacher_D_unchanged"] is True
    records = ticks(tmp_path / "run")
    assert [r["stage"] for r in records] == [1, 1, 2, 2]
    assert all(torch.isfinite(torch.tensor(v)) for r in records for k, v in r.items() if k.startswith("loss/"))


@pytest.mark.parametrize("name, ch_mul, batch", [("stylegan2-ffhq", "1/2", 8), ("biggan-imagenet", "1/2", 32)])
def test_paper_scale_student_steps_on_gpu(tmp_path, name, ch_mul, batch):
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.sources import RandomImages
    from zoo.train.teacher import num_classes, resolve_teacher
    from zoo.checkpoint import save_checkpoint
    from zoo.models import build_discriminator, build_generator, get_config

    kimg = batch / 1000
    cfg = get_train_config(name, "paper", ch_mul).replace(
        batch=batch, batch_gpu=batch, stage1_kimg=kimg, stage2_kimg=3 * kimg, tick_kimg=kimg, metrics=(),
        monitor_batch=8, grid_size=4, snapshot_ticks=100, image_ticks=100)
    teacher_arch, arch = get_config(name, 1), get_config(name, ch_mul)
    save_checkpoint(tmp_path / "teacher", config=teacher_arch, G_ema=build_generator(teacher_arch),
                    D=build_discriminator(teacher_arch), name=name)
    run = TrainRun(cfg=cfg, arch=arch, method="dgl", out=tmp_path / "run", progress=False, tracking_uri="none",
                   dataset=RandomImages(arch.resolution, arch.img_channels, num_classes(arch), n=2 * batch),
                   teacher=resolve_teacher(str(tmp_path / "teacher"), arch), device="cuda", precision="bf16")
    summary = train(run)
    records = ticks(tmp_path / "run")
    assert summary["teacher_D_unchanged"] is True and records[-1]["progress/stage"] == 2
    print(f"\n{name} {ch_mul} bf16 batch {batch}: stage II {records[-1]['speed/img_per_s']:.1f} img/s on "
          f"{torch.cuda.get_device_name()}")
