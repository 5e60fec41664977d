"""Training settings pinned to their sources (issue 14's review of train/ against the paper and the authors' code).

Each test names the source it holds the code to:
  paper    DGL-GAN, arXiv 2112.06502 (../shared/paper): section 4.1-4.3 and appendix A
  authors  the DGL-GAN code (stylegan2_dgl/run_distillation.py, BigGAN-PyTorch-code/train_compression.py)
  NVlabs   stylegan2-ada-pytorch training/training_loop.py (EMA, lazy regularisation)
  BigGAN   ajbrock/BigGAN-PyTorch utils.ema, launch_BigGAN_bs256x8.sh
"""
from __future__ import annotations

import pytest
import torch

from train_helpers import BIGGAN, SG2, run_tiny, save_tiny_checkpoint, tiny_arch

# (config, ch_mul, method) -> (T, S) kimg.  Widths are every width each configuration ships.
PAPER_SCHEDULES = {
    # paper 4.1: FFHQ T 15000, S 65000 at 1/2 and 1/4, 45000 at 1/8; paper 4.3: uncompressed DGL-GAN
    # stage I 0 -> 20000, stage II 20000 -> 30000 kimg; a teacher keeps its own length (official 25000)
    ("stylegan2-ffhq", "1", "dgl"): (20_000, 10_000),
    ("stylegan2-ffhq", "1/2", "dgl"): (15_000, 65_000),
    ("stylegan2-ffhq", "1/4", "dgl"): (15_000, 65_000),
    ("stylegan2-ffhq", "1/8", "dgl"): (15_000, 45_000),
    ("stylegan2-ffhq", "1", "teacher"): (25_000, 0),
    # paper 4.1: church T 15000, S 30000 (the paper runs no width-1 DGL on church: the same schedule)
    ("stylegan2-church", "1", "dgl"): (15_000, 30_000),
    ("stylegan2-church", "1/2", "dgl"): (15_000, 30_000),
    ("stylegan2-church", "1/4", "dgl"): (15_000, 30_000),
    ("stylegan2-church", "1/8", "dgl"): (15_000, 30_000),
    ("stylegan2-church", "1", "teacher"): (25_000, 0),
    # paper 4.2 / appendix: T = 100000 BigGAN-PyTorch iterations of 2048 images, S until divergence;
    # the teacher is BigGAN-PyTorch's released 138k-iteration checkpoint
    ("biggan-imagenet", "1", "dgl"): (204_800, None),
    ("biggan-imagenet", "1/2", "dgl"): (204_800, None),
    ("biggan-imagenet", "1/3", "dgl"): (204_800, None),
    ("biggan-imagenet", "1/4", "dgl"): (204_800, None),
    ("biggan-imagenet", "1", "teacher"): (282_624, 0),
}


def _cli_schedule(config, ch_mul, method, tmp_path):
    """(T, S) as `zoo train` resolves them from the command line (no training)."""
    import argparse

    from zoo.train.cli import add_arguments, build_run

    argv = ["--config", config, "--ch-mul", ch_mul, "--out", str(tmp_path / "run"), "--data", "random:4",
            "--metrics", "none"]
    if method == "teacher":
        argv += ["--stage2-kimg", "0"]
    else:  # a DGL run needs a teacher; the tiny stand-in only has to pass the checks
        argv += ["--baseline"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    spec = build_run(parser.parse_args(argv))
    assert spec.method == ("teacher" if method == "teacher" else "baseline")
    return spec.cfg.stage1_kimg, spec.cfg.stage2_kimg


@pytest.mark.parametrize("key", sorted(PAPER_SCHEDULES), ids=lambda k: "-".join(k).replace("/", "_"))
def test_every_width_of_every_paper_preset_has_the_papers_schedule(key, tmp_path, monkeypatch):
    from zoo.train.config import get_train_config

    config, ch_mul, method = key
    monkeypatch.setattr("train.cli.check_dataset", lambda *a, **k: None, raising=False)
    if method == "dgl":
        cfg = get_train_config(config, "paper", ch_mul)
        assert (cfg.stage1_kimg, cfg.stage2_kimg) == PAPER_SCHEDULES[key]
        assert cfg.lam == 0.1  # paper 4.1 / 4.2
    else:
        assert _cli_schedule(config, ch_mul, method, tmp_path) == PAPER_SCHEDULES[key]


def test_the_schedule_table_covers_every_shipped_width():
    from zoo.models import get_spec

    for config in ("stylegan2-ffhq", "stylegan2-church", "biggan-imagenet"):
        assert {w for c, w, m in PAPER_SCHEDULES if c == config and m == "dgl"} == set(get_spec(config).ch_muls)


def test_church_gamma_and_xflip_come_from_the_authors_launcher():
    """authors: run_distillation.py hard-codes D_loss.gamma = 10 and mirror augmentation defaults to false
    (set true only in their FFHQ commands).  NVlabs' church run (gamma 100) is not the source."""
    from zoo.train.config import get_train_config

    church = get_train_config("stylegan2-church", "paper", "1/4")
    ffhq = get_train_config("stylegan2-ffhq", "paper", "1/4")
    assert (church.r1_gamma, church.xflip) == (10.0, False)
    assert (ffhq.r1_gamma, ffhq.xflip) == (10.0, True)


# ------------------------------------------------------------------------------------------ EMA

def test_ema_beta_per_family():
    """NVlabs: beta = 0.5 ** (batch / (ema_kimg * 1000)), ema_kimg ramped up as nimg * rampup.
    BigGAN: decay 0.9999 from iteration 20000 (a plain copy before it)."""
    from zoo.train.config import get_train_config
    from zoo.train.loop import ema_beta

    sg2 = get_train_config("stylegan2-ffhq", "paper", "1/2")
    assert ema_beta(sg2, 0) == pytest.approx(0.5 ** (32 / 10_000))
    small = get_train_config("stylegan2-emoji", "study", "1/2")  # half-life 5 kimg, 5 % ramp-up
    assert ema_beta(small, 20_000) == pytest.approx(0.5 ** (16 / (20_000 * 0.05)))
    assert ema_beta(small, 10_000_000) == pytest.approx(0.5 ** (16 / 5_000))
    big = get_train_config("biggan-imagenet", "paper", "1/2")
    start = 20_000 * 2048
    assert ema_beta(big, start - 2048) == 0.0 and ema_beta(big, start) == 0.9999
    # G_ema updates once per G step: with d_steps D steps per G step the half-life stays ema_kimg of images,
    # while BigGAN's decay stays per G step (BigGAN-PyTorch)
    assert ema_beta(sg2.replace(d_steps=4), 0) == pytest.approx(0.5 ** (4 * 32 / 10_000))
    assert ema_beta(big.replace(d_steps=4), start) == 0.9999


def test_ema_half_life_in_images_and_the_slow_ema_warning(tmp_path, capsys):
    """G_ema's half-life in kimg: StyleGAN2's ema_kimg (shortened by the ramp-up), BigGAN's per-G-step decay
    times batch x d_steps images.  A run shorter than twice it warns once at its start ('slow_ema' event)."""
    import math

    from zoo.train.config import get_train_config
    from zoo.train.loop import ema_half_life_kimg
    from zoo.train.tracking import read_log

    sg2 = get_train_config("stylegan2-emoji", "study", "1/2")  # 5 kimg, 5 % ramp-up
    assert ema_half_life_kimg(sg2, 1000) == 5.0 and ema_half_life_kimg(sg2, 40) == pytest.approx(2.0)
    big = get_train_config("biggan-fashion-mnist", "study", "1")
    assert big.d_steps == 4 and big.ema_decay == 0.99
    g_steps = math.log(0.5) / math.log(0.99)
    assert ema_half_life_kimg(big, 180) == pytest.approx(g_steps * 32 * 4 / 1000)  # 8.9 kimg
    assert ema_half_life_kimg(big.replace(ema_decay=0.999, d_steps=1), 60) == pytest.approx(
        math.log(0.5) / math.log(0.999) * 32 / 1000)
    for decay, warned in ((0.999, True), (0.5, False)):
        out = tmp_path / f"run-{decay}"
        run_tiny(out, BIGGAN, method="baseline", ch_mul="1", T=0.032, S=0, ema_decay=decay, ema_start_kimg=0.0)
        events = [r for r in read_log(out / "log.jsonl") if r["event"] == "slow_ema"]
        assert (len(events) == 1) == warned and ("G_ema's half-life" in capsys.readouterr().err) == warned
        if warned:
            assert events[0]["run_kimg"] == pytest.approx(0.032) and events[0]["half_life_kimg"] > 0.016


@pytest.mark.parametrize("name", [SG2, BIGGAN])
def test_ema_buffers_follow_each_familys_reference(name):
    """NVlabs averages parameters and copies buffers; BigGAN-PyTorch's utils.ema averages every state
    entry, so BN running statistics and SN u vectors of G_ema are averages."""
    from zoo.families import get_family
    from zoo.train.loop import update_ema
    from zoo.models import build_generator

    arch = tiny_arch(name)
    torch.manual_seed(0)
    G, G_ema = build_generator(arch), build_generator(arch)
    float_buffers = [n for n, b in G.named_buffers() if b.is_floating_point()]
    assert float_buffers, "the test needs floating buffers to tell the rules apart"
    with torch.no_grad():
        for b in G.buffers():
            if b.is_floating_point():
                b.copy_(torch.randn_like(b))
        for b in G_ema.buffers():
            if b.is_floating_point():
                b.zero_()
    p_before = [p.detach().clone() for p in G_ema.parameters()]
    update_ema(G_ema, G, 0.75, get_family(arch.family).ema_averages_buffers)
    for p_e, p0, p in zip(G_ema.parameters(), p_before, G.parameters()):
        torch.testing.assert_close(p_e, 0.75 * p0 + 0.25 * p)
    src = dict(G.named_buffers())
    for n, b in G_ema.named_buffers():
        if not b.is_floating_point():
            continue
        expected = 0.25 * src[n] if arch.family == "biggan" else src[n]
        torch.testing.assert_close(b, expected)
    assert {f: get_family(f).ema_averages_buffers for f in ("stylegan2", "biggan")} == {"stylegan2": False,
                                                                                          "biggan": True}


def test_biggan_ema_generator_keeps_averaged_buffers_through_a_run(tmp_path):
    """In a real (tiny) BigGAN run G_ema's BN statistics are not G's copied at the tick."""
    from train_helpers import weights

    run_tiny(tmp_path / "run", BIGGAN, method="baseline", ch_mul="1", T=0.032, S=0, ema_decay=0.5,
             ema_start_kimg=0.0)
    g = weights(tmp_path / "run" / "final" / "generator_raw.safetensors")
    g_ema = weights(tmp_path / "run" / "final" / "generator.safetensors")
    stats = [k for k in g if k.endswith("stored_mean")]
    assert stats and any(not torch.allclose(g[k], g_ema[k]) for k in stats)


# ------------------------------------------------------------------------------------------ optimisers

def _adam_steps(run_dir, net="G"):
    from train_helpers import weights

    opt = weights(run_dir / "state" / f"opt_{net}.safetensors")
    return {int(v.item()) for k, v in opt.items() if k.endswith(".step")}


@pytest.mark.parametrize("rule, g_steps", [("restart", 2), ("continue", 4)])
def test_adam_state_at_the_stage_switch(tmp_path, rule, g_steps):
    """authors: stage II is a new run from the stage-I weights (BigGAN-PyTorch resume with
    load_optim=False; TF StyleGAN2 pickles hold no optimiser state), so Adam restarts: after 2 + 2
    steps, G's Adam has counted only stage II's 2.  'continue' keeps Algorithm 1's single loop."""
    teacher = save_tiny_checkpoint(tmp_path / "teacher", SG2)
    run_tiny(tmp_path / "run", SG2, teacher=teacher, T=0.016, S=0.016, pl_weight=0.0, r1_gamma=0.0,
             stage2_optimizer=rule)
    assert _adam_steps(tmp_path / "run", "G") == {g_steps}
    assert _adam_steps(tmp_path / "run", "D") == {g_steps}


def test_restart_is_the_default():
    from zoo.train.config import get_train_config

    for config, preset in [("stylegan2-ffhq", "paper"), ("biggan-imagenet", "paper"), (SG2, "study")]:
        assert get_train_config(config, preset, "1/2").stage2_optimizer == "restart"
    with pytest.raises(ValueError, match="stage2_optimizer"):
        get_train_config(SG2, "study", "1/2", stage2_optimizer="keep")


@pytest.mark.parametrize("name, g_interval, d_interval", [(SG2, 4, 16), (BIGGAN, None, None)])
def test_lazy_regularisation_lr_and_betas_per_network(tmp_path, name, g_interval, d_interval):
    """NVlabs training_loop.py: a network regularised every k steps gets lr * k/(k+1) and
    betas ** (k/(k+1)); BigGAN has no regulariser, so its optimisers keep the plain settings."""
    import json

    run_tiny(tmp_path / "run", name, method="baseline", ch_mul="1", T=0.008, S=0)
    groups = json.loads((tmp_path / "run" / "state" / "counters.json").read_text())["optimizer_groups"]
    from zoo.train.config import get_train_config

    cfg = get_train_config(name, "demo", "1")
    for net, lr, k in (("G", cfg.g_lr, g_interval), ("D", cfg.d_lr, d_interval)):
        ratio = k / (k + 1) if k else 1.0
        (group,) = groups[net]
        assert group["lr"] == pytest.approx(lr * ratio)
        assert group["betas"] == pytest.approx([cfg.betas[0] ** ratio, cfg.betas[1] ** ratio])


# ------------------------------------------------------------------------------------------ G step, forks

@pytest.mark.parametrize("name", [SG2, BIGGAN])
def test_student_and_teacher_discriminators_see_the_same_fake_tensor(tmp_path, name, monkeypatch):
    """Algorithm 1: Adv(G, D) and Adv(G, D_bar) in one G step score the same G(z), not two draws."""
    import zoo.models
    from zoo.families.losses import AdversarialLoss

    teacher = save_tiny_checkpoint(tmp_path / "teacher", name)
    to_teacher, to_any_D = [], []   # (discriminator, input) pairs
    real_term, real_build = AdversarialLoss.dgl_term, zoo.models.build_discriminator

    def spy_term(loss, D_bar, fake, c):
        to_teacher.append((D_bar, fake))
        return real_term(loss, D_bar, fake, c)

    def build_and_record(arch):
        D = real_build(arch)
        original = D.forward
        D.forward = lambda img, *a, **k: (to_any_D.append((D, img)), original(img, *a, **k))[1]
        return D

    monkeypatch.setattr(AdversarialLoss, "dgl_term", spy_term)
    monkeypatch.setattr(zoo.models, "build_discriminator", build_and_record)
    run_tiny(tmp_path / "run", name, teacher=teacher, ch_mul="1/2", T=0, S=0.016, pl_weight=0.0, r1_gamma=0.0)
    assert len(to_teacher) == 2  # one G step per 8 images, the term on every step (dgl_interval 1)
    for D_bar, fake in to_teacher:
        student_inputs = [img for D, img in to_any_D if D is not D_bar]
        assert any(img is fake for img in student_inputs)


def test_stage1_from_a_run_with_another_dgl_interval(tmp_path):
    """Stage I does not depend on dgl_interval (nor lambda, S or the stage-II optimiser rule), so a fork
    may differ in them; T or the seed may not."""
    from zoo.errors import ZooError

    teacher = save_tiny_checkpoint(tmp_path / "teacher", SG2)
    run_tiny(tmp_path / "dgl", SG2, teacher=teacher, T=0.016, S=0.016)
    summary = run_tiny(tmp_path / "lazy", SG2, teacher=teacher, T=0.016, S=0.016, dgl_interval=4,
                       stage1_from=tmp_path / "dgl")
    assert summary["kimg"] == pytest.approx(0.032)
    run_tiny(tmp_path / "base", SG2, method="baseline", T=0.016, S=0.024, stage1_from=tmp_path / "dgl")
    with pytest.raises(ZooError, match="different settings"):
        run_tiny(tmp_path / "other-T", SG2, teacher=teacher, T=0.024, S=0.016, stage1_from=tmp_path / "dgl")


# ------------------------------------------------------------------------------------------ provenance

def test_runs_record_their_environment_and_are_tagged_for_comparison(tmp_path):
    """Every run records torch / oneDNN, the CPU and its instruction set, the packages' hash and the git
    state, and carries the MLflow tags that line runs up (family, config, ch_mul, method, seed, teacher)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    teacher = save_tiny_checkpoint(tmp_path / "teacher", SG2)
    summary = run_tiny(tmp_path / "run", SG2, teacher=teacher, T=0.008, S=0.008, tracking_uri=uri)
    env = summary["environment"]
    assert env["torch"].startswith("2.") and env["hardware"]["fingerprint"].startswith("cpu:")
    assert env["hardware"]["cpu_isa"] and len(env["packages"]["sha256"]) == 64 and "dirty" in env["git"]
    run = MlflowClient(uri).get_run(summary["mlflow"]["run_id"])
    tags = run.data.tags
    assert {k: tags[k] for k in ("family", "config", "ch_mul", "method", "seed", "lambda")} == {
        "family": "stylegan2", "config": SG2, "ch_mul": "1/2", "method": "dgl", "seed": "0", "lambda": "0.1"}
    assert tags["teacher"] == summary["teacher"]["discriminator_sha256"][:16]
    assert tags["hardware"] == env["hardware"]["fingerprint"]


# ------------------------------------------------------------------------------------------ run directories

def test_resume_never_silently_starts_over(tmp_path):
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="no saved training state"):
        run_tiny(tmp_path / "missing", SG2, method="baseline", T=0.008, S=0, resume=True)
    assert not (tmp_path / "missing" / "log.jsonl").exists()


def test_one_process_per_run_directory(tmp_path):
    from zoo.train.runlock import is_locked, lock_run
    from zoo.errors import ZooError

    held = lock_run(tmp_path / "run")
    assert is_locked(tmp_path / "run")
    with pytest.raises(ZooError, match="in use by a running training process"):
        run_tiny(tmp_path / "run", SG2, method="baseline", T=0.008, S=0)
    held.close()
    assert not is_locked(tmp_path / "run")
    run_tiny(tmp_path / "run", SG2, method="baseline", T=0.008, S=0)  # the stale .lock file blocks nothing


def test_d_steps_gives_D_several_steps_per_G_step(tmp_path):
    """BigGAN-PyTorch num_D_steps (its 32-px launchers and the authors' CIFAR compression script use 4): every
    step is one D update on a new real batch; G's Adam steps (and G_ema) only on every d_steps-th step."""
    from safetensors.torch import load_file

    def adam_steps(out, key):
        tensors = load_file(str(out / "state" / f"opt_{key}.safetensors"))
        return {int(v) for k, v in tensors.items() if k.endswith(".step")}

    run_tiny(tmp_path / "k3", name=BIGGAN, method="teacher", ch_mul="1", T=0.048, S=0, d_steps=3)  # 6 steps
    assert adam_steps(tmp_path / "k3", "D") == {6} and adam_steps(tmp_path / "k3", "G") == {2}
    run_tiny(tmp_path / "k1", name=BIGGAN, method="teacher", ch_mul="1", T=0.048, S=0)
    assert adam_steps(tmp_path / "k1", "D") == {6} and adam_steps(tmp_path / "k1", "G") == {6}
    with pytest.raises(Exception, match="d_steps"):
        run_tiny(tmp_path / "k0", name=BIGGAN, method="teacher", ch_mul="1", T=0.048, S=0, d_steps=0)
