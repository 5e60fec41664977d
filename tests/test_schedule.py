"""DGLSchedule on its own: the stage switch at T, lambda per stage and method, the lazy interval."""
import pytest

from zoo.train.schedule import DGLSchedule


def test_from_config_reads_T_S_lambda_interval_and_the_optimiser_rule():
    from zoo.train.config import get_train_config

    ffhq = get_train_config("stylegan2-ffhq", "paper", "1/8", dgl_interval=4)
    s = DGLSchedule.from_config(ffhq, "dgl")
    assert (s.T, s.S, s.total, s.lam, s.interval, s.stage2_optimizer, s.teacher) == (
        15_000_000, 45_000_000, 60_000_000, 0.1, 4, "restart", True)
    base = DGLSchedule.from_config(ffhq, "baseline")
    assert (base.lam, base.teacher, base.T, base.S) == (0.0, False, s.T, s.S)
    assert DGLSchedule.from_config(ffhq.replace(stage2_kimg=0.0), "teacher").total == 15_000_000
    # an open-ended stage II (until divergence) runs at most divergence.max_kimg
    imagenet = get_train_config("biggan-imagenet", "paper", "1/2")
    assert DGLSchedule.from_config(imagenet, "dgl").S == round(imagenet.divergence.max_kimg * 1000)
    # kimg that are not whole images round to the nearest image, as the loop counts them
    assert DGLSchedule.from_config(ffhq.replace(stage1_kimg=0.0244), "dgl").T == 24


def test_stage_switches_at_T_and_ends_at_T_plus_S():
    s = DGLSchedule(T=24, S=16, lam=0.1)
    assert [s.stage(n) for n in (0, 16, 23, 24, 32, 39)] == [1, 1, 1, 2, 2, 2]
    assert DGLSchedule(T=0, S=16, lam=0.1).stage(0) == 2          # DGL from scratch: stage II from the first step
    assert DGLSchedule(T=24, S=0, lam=0.1).stage(24) == 1         # a teacher run never enters stage II


def test_the_step_that_reaches_T_is_the_last_of_stage_one():
    s = DGLSchedule(T=20, S=8, lam=0.1)                          # T between two step boundaries (batch 8)
    steps = [(n, n + 8) for n in range(0, 28, 8)]
    assert [s.switches_at(a, b) for a, b in steps] == [False, False, True, False]
    assert s.stage(16) == 1 and s.stage(24) == 2                  # stage II from the first boundary after T
    assert not any(DGLSchedule(T=0, S=16, lam=0.1).switches_at(a, a + 8) for a in range(0, 16, 8))


@pytest.mark.parametrize("interval", [1, 3])
def test_teacher_term_every_interval_th_step_of_stage_two_weighted_lambda_times_interval(interval):
    s = DGLSchedule(T=24, S=48, lam=0.1, interval=interval)
    assert [s.teacher_runs(step, 2) for step in range(3, 9)] == [step % interval == 0 for step in range(3, 9)]
    assert [s.teacher_weight(step, 2) for step in range(3, 9)] == [
        0.1 * interval if step % interval == 0 else 0.0 for step in range(3, 9)]
    assert not any(s.teacher_runs(step, 1) for step in range(9)) and s.teacher_weight(0, 1) == 0.0


def test_lambda_per_stage_and_method():
    dgl = DGLSchedule(T=8, S=8, lam=0.25, interval=2)
    assert (dgl.lam_at(1), dgl.lam_at(2)) == (0.0, 0.25)
    base = DGLSchedule(T=8, S=8, lam=0.0, teacher=False)
    assert not base.teacher_runs(0, 2) and base.teacher_weight(0, 2) == 0.0 and base.lam_at(2) == 0.0
    # lambda = 0 in a DGL run: the term is still computed (and logged), with weight 0
    zero = DGLSchedule(T=8, S=8, lam=0.0)
    assert zero.teacher_runs(0, 2) and zero.teacher_weight(0, 2) == 0.0


def test_optimiser_rule():
    assert DGLSchedule(T=8, S=8, lam=0.1).restarts_optimizers
    assert not DGLSchedule(T=8, S=8, lam=0.1, stage2_optimizer="continue").restarts_optimizers


def test_the_run_spec_uses_the_schedule():
    from train_helpers import SG2, tiny_arch, tiny_dataset

    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun

    cfg = get_train_config(SG2, "demo", "1/2", stage1_kimg=0.024, stage2_kimg=0.016, lam=0.3)
    run = TrainRun(cfg=cfg, arch=tiny_arch(SG2, "1/2"), method="dgl", out="unused", dataset=tiny_dataset(SG2))
    assert (run.stage1_nimg, run.total_nimg, run.lam) == (24, 40, 0.3)
    assert run.schedule == DGLSchedule(T=24, S=16, lam=0.3, interval=1, stage2_optimizer="restart", teacher=True)
    assert TrainRun(cfg=cfg, arch=run.arch, method="baseline", out="unused", dataset=run.dataset).lam == 0.0
