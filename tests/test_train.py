"""DGL-GAN training (Algorithm 1): loss terms, stage switch at T, lambda = 0 == baseline, frozen teacher,
logged names, MLflow, resume equality, and clear errors before any training.  Tiny networks, in-process."""
import json

import pytest
import torch

from train_helpers import (BIGGAN, SG2, TINY_CLI, TINY_TRAIN, run_tiny, same_weights, save_tiny_checkpoint, ticks, tiny_arch,
                           weights)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks gain nothing from threads, and OpenMP threads on a busy 2-core machine cost 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {SG2: save_tiny_checkpoint(root / "sg2", SG2), BIGGAN: save_tiny_checkpoint(root / "biggan", BIGGAN)}


# ------------------------------------------------------------------------------------------ losses

def test_loss_terms_match_their_formulas():
    from zoo.families import get_family
    from zoo.families.losses import d_hinge, d_logistic, g_hinge, g_nonsaturating

    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sp = torch.nn.functional.softplus
    assert g_nonsaturating(fake) == pytest.approx(float(sp(-fake).mean()))
    assert d_logistic(real, fake) == pytest.approx(float(sp(fake).mean() + sp(-real).mean()))
    assert g_hinge(fake) == pytest.approx(1.25)                       # -mean(0.5, -3)
    assert d_hinge(real, fake) == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    sg2, biggan = get_family("stylegan2").loss, get_family("biggan").loss
    assert (sg2.g_loss, sg2.d_loss, biggan.g_loss, biggan.d_loss) == (g_nonsaturating, d_logistic, g_hinge, d_hinge)
    assert sg2.g_adv(fake) == g_nonsaturating(fake) and sg2.d_adv(real, fake) == d_logistic(real, fake)
    assert biggan.g_adv(fake) == g_hinge(fake) and biggan.d_adv(real, fake) == d_hinge(real, fake)


def test_r1_and_path_length_on_known_functions():
    from zoo.families.losses import path_lengths, r1_penalty

    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = (3 * x).sum(dim=[1, 2, 3])                           # grad = 3 everywhere, 4 pixels
    assert torch.allclose(r1_penalty(x, logits), torch.full([3], 36.0))
    ws = torch.randn(5, 2, 4, requires_grad=True)
    img = ws.sum(dim=1)[:, :, None, None].expand(5, 4, 1, 1) * 1.0  # a linear "generator"
    assert path_lengths(img, ws).shape == (5,)


def test_dgl_term_is_the_family_generator_loss_against_the_teacher(teachers):
    from zoo.families import get_family
    from zoo.train.teacher import resolve_teacher

    D_bar = resolve_teacher(str(teachers[SG2]), tiny_arch(SG2, "1/2")).load_discriminator()
    fake = torch.randn(4, 3, 16, 16, requires_grad=True)
    term = get_family("stylegan2").loss.dgl_term(D_bar, fake, None)
    assert float(term.detach()) == pytest.approx(float(torch.nn.functional.softplus(-D_bar(fake)).mean()))
    term.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in D_bar.parameters())


# ------------------------------------------------------------------------------------------ configs

def test_paper_presets_are_the_papers_settings():
    from zoo.train.config import get_train_config

    ffhq = {w: get_train_config("stylegan2-ffhq", "paper", w) for w in ("1/2", "1/4", "1/8")}
    assert [(c.stage1_kimg, c.stage2_kimg) for c in ffhq.values()] == [(15000, 65000), (15000, 65000),
                                                                       (15000, 45000)]
    church = get_train_config("stylegan2-church", "paper", "1/4")
    assert (church.stage1_kimg, church.stage2_kimg, church.batch, church.lam) == (15000, 30000, 32, 0.1)
    assert (church.g_lr, church.d_lr, church.betas, church.r1_interval, church.pl_interval) == (
        0.002, 0.002, (0.0, 0.99), 16, 4)
    imagenet = get_train_config("biggan-imagenet", "paper", "1/3")
    assert imagenet.stage1_kimg == 204_800 and imagenet.stage2_kimg is None  # 100000 iterations; until divergence
    assert (imagenet.batch, imagenet.batch_gpu, imagenet.g_lr, imagenet.d_lr, imagenet.betas, imagenet.eps) == (
        2048, 256, 1e-4, 4e-4, (0.0, 0.999), 1e-6)
    assert imagenet.ema_decay == 0.9999 and imagenet.r1_gamma == 0 and imagenet.metrics == ("fid",)


def test_every_embedded_config_has_demo_and_study_presets():
    from zoo.train.config import get_train_config, presets_of

    for name in ("stylegan2-emoji", "biggan-emoji", "stylegan2-fashion-mnist", "biggan-fashion-mnist"):
        assert presets_of(name) == ["demo", "study"]
        demo, study = get_train_config(name, "demo"), get_train_config(name, "study")
        assert demo.stage1_kimg + demo.stage2_kimg < study.stage1_kimg + study.stage2_kimg


@pytest.mark.parametrize("kwargs, message", [
    (dict(config="stylegan3-ffhq"), "unknown configuration"),
    (dict(config="stylegan2-ffhq", preset="demo"), "no 'demo' training preset"),
    (dict(config="stylegan2-emoji", frobnicate=1), "unknown training setting"),
    (dict(config="stylegan2-emoji", batch=10, batch_gpu=4), "multiple of batch_gpu"),
    (dict(config="stylegan2-emoji", lam=-1), "lambda"),
    (dict(config="stylegan2-emoji", dgl_interval=0), "dgl_interval"),
    (dict(config="stylegan2-emoji", stage2_student_adv=False, dgl_interval=4), "needs dgl_interval 1"),
])
def test_bad_training_configs(kwargs, message):
    from zoo.train.config import get_train_config

    with pytest.raises(ValueError, match=message):
        get_train_config(**kwargs)


# ------------------------------------------------------------------------------------------ Algorithm 1

def test_stage_switch_happens_exactly_at_T_and_adds_only_the_dgl_term(tmp_path, teachers):
    from zoo.train.state import read_counters
    from zoo.train.tracking import read_log

    summary = run_tiny(tmp_path / "run", teacher=teachers[SG2], T=0.024, S=0.016)
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [(r["nimg"], r["stage"]) for r in ticks(tmp_path / "run")] == [(8, 1), (16, 1), (24, 1), (32, 2), (40, 2)]
    assert [r["nimg"] for r in log if r["event"] == "stage2"] == [24]
    for r in ticks(tmp_path / "run"):
        assert ("loss/G_dgl" in r) == (r["stage"] == 2)
        assert r["progress/lambda"] == (0.1 if r["stage"] == 2 else 0.0)
    assert read_counters(tmp_path / "run" / "state_stage1")["nimg"] == 24
    assert summary["kimg"] == pytest.approx(0.04) and summary["method"] == "dgl"
    assert summary["teacher_D_unchanged"] is True


def test_switch_is_at_the_first_step_boundary_at_or_after_T(tmp_path, teachers):
    run_tiny(tmp_path / "run", teacher=teachers[SG2], T=0.020, S=0.008)  # batch 8: 20 images -> after step 3
    assert [(r["nimg"], r["stage"]) for r in ticks(tmp_path / "run")] == [(8, 1), (16, 1), (24, 1), (32, 2)]


def test_lambda_zero_is_exactly_the_baseline_and_lambda_matters(tmp_path, teachers):
    t = teachers[SG2]
    run_tiny(tmp_path / "zero", teacher=t, method="dgl", lam=0.0)
    run_tiny(tmp_path / "base", teacher=t, method="baseline")
    run_tiny(tmp_path / "dgl", teacher=t, method="dgl", lam=0.1)
    for f in ("generator.safetensors", "generator_raw.safetensors", "discriminator.safetensors"):
        assert same_weights(weights(tmp_path / "zero/final" / f), weights(tmp_path / "base/final" / f)), f
    # same stage I, different stage II
    assert same_weights(weights(tmp_path / "dgl/state_stage1/G.safetensors"),
                        weights(tmp_path / "base/state_stage1/G.safetensors"))
    assert not same_weights(weights(tmp_path / "dgl/final/generator_raw.safetensors"),
                            weights(tmp_path / "base/final/generator_raw.safetensors"))
    base = json.loads((tmp_path / "base/summary.json").read_text())
    assert base["method"] == "baseline" and base["lambda"] == 0.0
    assert all("loss/G_dgl" not in r for r in ticks(tmp_path / "base"))
    assert "score/hbar_fake" in ticks(tmp_path / "base")[-1]  # a baseline with a teacher still monitors it


@pytest.mark.parametrize("interval", [1, 3])
def test_lazy_dgl_term_runs_every_k_th_step_with_weight_lambda_k(tmp_path, teachers, monkeypatch, interval):
    """dgl_interval k: Adv(G, D_bar) on G steps 0, k, 2k, ... of stage II's step counter, weighted lambda * k."""
    from zoo.families.losses import AdversarialLoss

    calls = []
    dgl_term = AdversarialLoss.dgl_term

    def recording_dgl_term(*args):
        value = dgl_term(*args)
        calls.append([None])
        value.register_hook(lambda grad, slot=calls[-1]: slot.__setitem__(0, float(grad)))
        return value

    monkeypatch.setattr(AdversarialLoss, "dgl_term", recording_dgl_term)
    run_tiny(tmp_path / "run", teacher=teachers[SG2], T=0.024, S=0.048, dgl_interval=interval)  # steps 3..8
    assert len(calls) == len([s for s in range(3, 9) if s % interval == 0])
    assert "batch_gpu" not in TINY_TRAIN  # one micro-batch: d loss / d Adv(G, D_bar) is the weight itself
    assert [g for (g,) in calls] == pytest.approx([0.1 * interval] * len(calls))


def test_dbar_only_ablation_drops_adv_G_D_from_stage_two_only(tmp_path, teachers, monkeypatch):
    """stage2_student_adv=false (the paper's Table 7): in stage II, G's loss is lambda * Adv(G, D_bar) alone, so
    Adv(G, D) gets no gradient there while stage I is unchanged; it forks off a DGL run's stage I like any
    stage-II variant, and a run without a teacher term refuses it (it would silently be a Baseline)."""
    from zoo.errors import ZooError
    from zoo.families.losses import AdversarialLoss

    t = teachers[SG2]
    run_tiny(tmp_path / "dgl", teacher=t, T=0.024, S=0.016)
    calls = {"g_adv": [], "dgl": []}

    def recording(name, original):
        def wrapped(*args):
            value = original(*args)
            calls[name].append([None])
            value.register_hook(lambda grad, slot=calls[name][-1]: slot.__setitem__(0, float(grad)))
            return value
        return wrapped

    monkeypatch.setattr(AdversarialLoss, "g_adv", recording("g_adv", AdversarialLoss.g_adv))
    monkeypatch.setattr(AdversarialLoss, "dgl_term", recording("dgl", AdversarialLoss.dgl_term))
    run_tiny(tmp_path / "only", teacher=t, T=0.024, S=0.016, stage1_from=tmp_path / "dgl", stage2_student_adv=False)
    assert [r["nimg"] for r in ticks(tmp_path / "only")] == [32, 40]  # stage II only: 2 G steps
    # per G step: g_adv on D's logits (logged, not in the loss), then inside dgl_term on D_bar's (weight lambda)
    assert [g for (g,) in calls["g_adv"]] == [None, pytest.approx(0.1), None, pytest.approx(0.1)]
    assert [g for (g,) in calls["dgl"]] == pytest.approx([0.1, 0.1])
    assert all("loss/G_adv" in r and "loss/G_dgl" in r for r in ticks(tmp_path / "only"))
    assert not same_weights(weights(tmp_path / "only/final/generator_raw.safetensors"),
                            weights(tmp_path / "dgl/final/generator_raw.safetensors"))
    with pytest.raises(ZooError, match="needs a DGL run"):
        run_tiny(tmp_path / "base", teacher=t, method="baseline", stage2_student_adv=False)


def test_biggan_teacher_D_stays_bit_identical(tmp_path, teachers):
    from zoo.families import get_family
    from zoo.train.teacher import resolve_teacher

    before = weights(teachers[BIGGAN] / "discriminator.safetensors")
    summary = run_tiny(tmp_path / "run", name=BIGGAN, teacher=teachers[BIGGAN], T=0.008, S=0.016)
    assert summary["teacher_D_unchanged"] is True
    assert same_weights(before, weights(teachers[BIGGAN] / "discriminator.safetensors"))
    # the frozen D_bar: eval mode, no grads, spectral-norm u/sv untouched by forward and backward passes
    D_bar = resolve_teacher(str(teachers[BIGGAN]), tiny_arch(BIGGAN, "1/2")).load_discriminator()
    state = {k: v.clone() for k, v in D_bar.state_dict().items()}
    fake, c = torch.randn(4, 3, 32, 32, requires_grad=True), torch.tensor([0, 1, 2, 0])
    for _ in range(3):
        get_family("biggan").loss.dgl_term(D_bar, fake, c).backward()
    assert not D_bar.training and fake.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in D_bar.parameters())
    assert all(torch.equal(state[k], v) for k, v in D_bar.state_dict().items())
    D_bar.train()(fake, c)  # the check can fail: in train mode the power iteration moves u0 / sv0
    assert any(not torch.equal(state[k], v) for k, v in D_bar.state_dict().items() if k.endswith("u0"))


@pytest.mark.parametrize("name", [SG2, BIGGAN])
def test_loss_terms_and_scores_are_logged_under_their_names(tmp_path, teachers, name):
    run_tiny(tmp_path / "run", name=name, teacher=teachers[name], T=0.008, S=0.024)
    records = ticks(tmp_path / "run")
    common = {"loss/G_adv", "loss/D_adv", "score/h_real", "score/h_fake", "score/hbar_real", "score/hbar_fake",
              "score/h_auc", "score/hbar_auc", "progress/kimg", "progress/stage", "progress/lambda",
              "speed/img_per_s", "speed/sec_per_kimg"}
    assert common <= set(records[0]) and "loss/G_dgl" in records[-1]
    assert all(0 <= r[k] <= 1 for r in records for k in ("score/h_auc", "score/hbar_auc"))
    regularisers = {"loss/G_pl", "loss/D_r1"}
    assert (regularisers <= set(records[0])) == (name == SG2)  # both run at step 0 (lazy: every 4 / 16 steps)
    assert all(torch.isfinite(torch.tensor(v)) for r in records for k, v in r.items() if k.startswith("loss/"))


@pytest.mark.parametrize("threshold, warned", [(1.01, True), (0.0, False)])
def test_a_dgl_run_warns_at_T_when_the_teacher_critic_cannot_tell_real_from_fake(tmp_path, teachers, capsys,
                                                                                   monkeypatch, threshold, warned):
    """At the stage switch the run compares D_bar's separation of the monitor batch (real vs the student's
    G(z)) with WEAK_CRITIC_AUC: below it, a warning line and a 'weak_critic' event (the BigGAN v1 case)."""
    import zoo.train.loop as loop

    monkeypatch.setattr(loop, "WEAK_CRITIC_AUC", threshold)
    run_tiny(tmp_path / "run", name=SG2, teacher=teachers[SG2], T=0.008, S=0.008)
    from zoo.train.tracking import read_log

    events = [r for r in read_log(tmp_path / "run" / "log.jsonl") if r["event"] == "weak_critic"]
    assert (len(events) == 1) == warned and ("D_bar separates" in capsys.readouterr().err) == warned
    if warned:
        assert 0 <= events[0]["hbar_auc"] <= 1 and events[0]["nimg"] == 8


def test_open_ended_stage2_stops_at_divergence_and_keeps_the_best_snapshot(tmp_path, teachers):
    """BigGAN-ImageNet's stage II runs until divergence: the watched metric worse than (1 + tolerance) x its
    best for `patience` evaluations in a row.  final/ is then the best snapshot."""
    values = iter([9.0, 5.0, 4.0, 3.0, 3.5, 3.1, 4.0, 4.5, 1.0, 1.0])  # one evaluation per tick (= step)
    calls = []

    def evaluator(G, names, device):
        calls.append(names)
        return {"fake_fid": next(values)}

    summary = run_tiny(tmp_path / "run", name=BIGGAN, teacher=teachers[BIGGAN], T=0.008, S=None, metric_ticks=1,
                       metrics=("fake_fid",), divergence={"patience": 2, "tolerance": 0.05, "max_kimg": 1.0},
                       evaluator=evaluator)
    # stage II evaluations: 5, 4, 3 (best, at 0.032 kimg), 3.5 (bad), 3.1 (within 5 %: resets), 4.0, 4.5 -> stop
    assert summary["diverged"].startswith("metric/fake_fid 4.5 > best 3") and summary["kimg"] == 0.064
    assert summary["final_is_best_snapshot"] is True and summary["final_kimg"] == 0.032
    assert summary["metrics"] == {"fake_fid": 3.0} and len(calls) == 8 and calls[0] == ["fake_fid"]
    final = json.loads((tmp_path / "run/final/metadata.json").read_text())
    assert final["metrics"] == {"fake_fid": 3.0} and final["training"]["final_kimg"] == 0.032
    assert same_weights(weights(tmp_path / "run/final/generator.safetensors"),
                        weights(tmp_path / "run/best/generator.safetensors"))


def test_a_failing_metric_does_not_kill_the_run(tmp_path, teachers):
    from zoo.train.tracking import read_log

    def broken(G, names, device):
        raise RuntimeError("feature network missing")

    summary = run_tiny(tmp_path / "run", teacher=teachers[SG2], T=0.008, S=0.008, metric_ticks=1,
                       metrics=("kid",), evaluator=broken)
    assert summary["kimg"] == 0.016 and (tmp_path / "run/final/generator.safetensors").is_file()
    failures = [r for r in read_log(tmp_path / "run/log.jsonl") if r["event"] == "metrics_failed"]
    assert len(failures) == 2 and "feature network missing" in failures[0]["error"]


def test_resume_continues_exactly(tmp_path, teachers):
    """Stop mid-stage-II, resume: the same weights and the same logged numbers as one uninterrupted run."""
    t = teachers[SG2]
    run_tiny(tmp_path / "full", teacher=t, T=0.016, S=0.024)
    stopped = run_tiny(tmp_path / "split", teacher=t, T=0.016, S=0.024, stop_kimg=0.024)
    assert stopped == {"stopped_at_kimg": 0.024} and not (tmp_path / "split/final").exists()
    run_tiny(tmp_path / "split", teacher=t, T=0.016, S=0.024, resume=True)
    for f in ("generator.safetensors", "generator_raw.safetensors", "discriminator.safetensors"):
        assert same_weights(weights(tmp_path / "full/final" / f), weights(tmp_path / "split/final" / f)), f
    full, split = ticks(tmp_path / "full"), ticks(tmp_path / "split")
    assert [r["nimg"] for r in split] == [r["nimg"] for r in full] == [8, 16, 24, 32, 40]
    for a, b in zip(full, split):
        assert {k: v for k, v in a.items() if k.startswith(("loss/", "score/"))} == \
               {k: v for k, v in b.items() if k.startswith(("loss/", "score/"))}


def test_a_finished_teacher_run_is_lengthened_on_resume_not_shortened(tmp_path, teachers):
    """A teacher's T only says where it stops: --resume with a larger T continues the finished run to exactly
    the weights of a run that was that long from the start.  Shortening, or changing a student's T, is refused."""
    from zoo.errors import ZooError

    run_tiny(tmp_path / "full", method="teacher", ch_mul="1", T=0.032, S=0)
    run_tiny(tmp_path / "grown", method="teacher", ch_mul="1", T=0.016, S=0)
    summary = run_tiny(tmp_path / "grown", method="teacher", ch_mul="1", T=0.032, S=0, resume=True)
    assert summary["kimg"] == pytest.approx(0.032) and summary["T_kimg"] == pytest.approx(0.032)
    assert [r["nimg"] for r in ticks(tmp_path / "grown")] == [8, 16, 24, 32]
    for f in ("generator.safetensors", "generator_raw.safetensors", "discriminator.safetensors"):
        assert same_weights(weights(tmp_path / "full/final" / f), weights(tmp_path / "grown/final" / f)), f
    with pytest.raises(ZooError, match="lengthened, not shortened"):
        run_tiny(tmp_path / "grown", method="teacher", ch_mul="1", T=0.024, S=0, resume=True)
    run_tiny(tmp_path / "dgl", teacher=teachers[SG2], T=0.008, S=0.008)
    with pytest.raises(ZooError, match="different settings: train.stage1_kimg"):
        run_tiny(tmp_path / "dgl", teacher=teachers[SG2], T=0.016, S=0.008, resume=True)


def test_stage1_from_forks_a_baseline_off_a_dgl_run(tmp_path, teachers):
    t = teachers[SG2]
    run_tiny(tmp_path / "dgl", teacher=t, method="dgl")
    run_tiny(tmp_path / "base", teacher=t, method="baseline")
    run_tiny(tmp_path / "fork", teacher=t, method="baseline", stage1_from=tmp_path / "dgl")
    assert [r["nimg"] for r in ticks(tmp_path / "fork")] == [24, 32]  # only stage II was trained
    assert same_weights(weights(tmp_path / "fork/final/generator_raw.safetensors"),
                        weights(tmp_path / "base/final/generator_raw.safetensors"))


def test_mlflow_records_params_metrics_and_artifacts(tmp_path, teachers):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    summary = run_tiny(tmp_path / "runs" / "dgl", teacher=teachers[SG2], tracking_uri=None, stop_kimg=0.024)
    summary = run_tiny(tmp_path / "runs" / "dgl", teacher=teachers[SG2], tracking_uri=None, resume=True)
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlruns.db'}"
    assert summary["mlflow"] == {"run_id": summary["mlflow"]["run_id"], "tracking_uri": uri}
    client = MlflowClient(uri)
    run = client.get_run(summary["mlflow"]["run_id"])  # one run across the resume
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert (p["lambda"], p["ch_mul"], p["method"], p["seed"]) == ("0.1", "1/2", "dgl", "0")
    assert p["teacher.discriminator_sha256"] == summary["teacher"]["discriminator_sha256"]
    assert "git_commit" in p and p["train.r1_gamma"] and p["arch.resolution"] == "16"
    history = client.get_metric_history(run.info.run_id, "loss/G_dgl")
    assert sorted({m.step for m in history}) == [24, 32]
    assert {m.step for m in client.get_metric_history(run.info.run_id, "score/hbar_real")} == {8, 16, 24, 32}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoint", "images", "summary.json"} <= artifacts
    assert "checkpoint/generator.safetensors" in {a.path for a in client.list_artifacts(run.info.run_id,
                                                                                        "checkpoint")}
    meta = json.loads((tmp_path / "runs/dgl/final/metadata.json").read_text())
    assert meta["training"]["mlflow"]["run_id"] == run.info.run_id and meta["training"]["method"] == "dgl"


def test_training_without_mlflow_installed_logs_the_same_numbers_to_jsonl(tmp_path, teachers, monkeypatch):
    import sys

    for name in ("mlflow", "mlflow.tracking", "mlflow.entities"):
        monkeypatch.setitem(sys.modules, name, None)  # `import mlflow` now raises ImportError
    with pytest.warns(UserWarning, match="mlflow is not installed"):
        summary = run_tiny(tmp_path / "runs" / "dgl", teacher=teachers[SG2], tracking_uri=None)
    assert summary["mlflow"] is None and not (tmp_path / "runs" / "mlruns.db").exists()
    assert "loss/G_dgl" in ticks(tmp_path / "runs" / "dgl")[-1]


# ------------------------------------------------------------------------------------------ bad input

@pytest.fixture(scope="module")
def odd_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    return {"half": save_tiny_checkpoint(root / "half", SG2, ch_mul="1/2"),
            "res32": save_tiny_checkpoint(root / "res32", SG2, resolution=32),
            "noD": save_tiny_checkpoint(root / "noD", SG2, with_D=False)}


@pytest.mark.parametrize("case, message", [
    ("unknown-config", "unknown configuration 'stylegan3-emoji'"),
    ("other-family", "its family is biggan, the student's is stylegan2"),
    ("other-resolution", "its resolution is 32, the student's is 16"),
    ("teacher-ch-mul", "has ch_mul=1/2; a DGL-GAN teacher is the full-width"),
    ("missing-teacher", "no such checkpoint directory"),
    ("teacher-without-D", "has no discriminator.safetensors"),
    ("student-ch-mul", "ch_mul=1/3 is not a supported width"),
    ("no-teacher", "stage II of DGL-GAN needs --teacher"),
    ("lambda-and-baseline", "contradict"),
    ("missing-data", "no such dataset"),
])
def test_bad_input_is_a_clear_error_before_training(tmp_path, capsys, teachers, odd_checkpoints, case, message):
    from zoo.cli import main

    out = tmp_path / "out"
    args = ["train", "--config", SG2, "--ch-mul", "1/2", "--out", str(out), "--teacher", str(teachers[SG2])]
    args += TINY_CLI
    change = {
        "unknown-config": ["--config", "stylegan3-emoji"],
        "other-family": ["--teacher", str(teachers[BIGGAN])],
        "other-resolution": ["--teacher", str(odd_checkpoints["res32"])],
        "teacher-ch-mul": ["--teacher", str(odd_checkpoints["half"])],
        "missing-teacher": ["--teacher", str(tmp_path / "nowhere")],
        "teacher-without-D": ["--teacher", str(odd_checkpoints["noD"])],
        "student-ch-mul": ["--ch-mul", "1/3"],
        "lambda-and-baseline": ["--baseline", "--lambda", "0.2"],
        "missing-data": ["--data", str(tmp_path / "no-data")],
    }
    if case == "no-teacher":
        args = [a for i, a in enumerate(args) if a != "--teacher" and (i == 0 or args[i - 1] != "--teacher")]
    assert main(args + change.get(case, [])) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # nothing was written: the error came before any training


def test_teacher_can_be_a_registry_entry(tmp_path, teachers):
    from zoo.train.teacher import resolve_teacher
    from zoo.errors import ZooError
    from zoo.registry import publish

    publish(teachers[SG2], name="tiny-teacher")
    student = tiny_arch(SG2, "1/2")
    for ref in ("tiny-teacher", "tiny-teacher@1", "tiny-teacher@latest"):
        t = resolve_teacher(ref, student)
        assert t.name == SG2 and (t.path / "discriminator.safetensors").is_file() and t.ref == ref
        assert t.d_sha256 == resolve_teacher(str(teachers[SG2]), student).d_sha256
    with pytest.raises(ZooError, match="neither a checkpoint directory nor a registry entry"):
        resolve_teacher("tiny-teacher@7", student)
    with pytest.raises(ZooError, match="nothing after '@'"):  # a typo names itself, not "no entry"
        resolve_teacher("tiny-teacher@", student)


def test_existing_run_directory_needs_resume(tmp_path, capsys, teachers):
    from zoo.cli import main

    run_tiny(tmp_path / "run", teacher=teachers[SG2], T=0.008, S=0.0, method="baseline")
    args = ["train", "--config", SG2, "--ch-mul", "1/2", "--out", str(tmp_path / "run"), "--baseline"] + TINY_CLI
    assert main(args) == 2
    assert "pass --resume to continue it" in capsys.readouterr().err


def test_cli_trains_a_teacher_then_a_student(tmp_path, capsys):
    """The documented two-command workflow, end to end through `zoo train`."""
    from zoo.cli import main

    teacher = ["train", "--config", SG2, "--ch-mul", "1", "--stage2-kimg", "0", "--out", str(tmp_path / "t"),
               "--tracking-uri", "none"] + TINY_CLI
    assert main(teacher + ["--stage1-kimg", "0.008"]) == 0
    summary = json.loads((tmp_path / "t/summary.json").read_text())
    assert summary["method"] == "teacher" and summary["ch_mul"] == "1" and summary["kimg"] == 0.008
    student = ["train", "--config", SG2, "--ch-mul", "1/2", "--teacher", str(tmp_path / "t/final"),
               "--stage1-kimg", "0.008", "--stage2-kimg", "0.008", "--out", str(tmp_path / "s"),
               "--tracking-uri", "none", "--dgl-interval", "2"] + TINY_CLI
    assert main(student) == 0
    summary = json.loads((tmp_path / "s/summary.json").read_text())
    assert summary["method"] == "dgl" and summary["teacher"]["path"] == str((tmp_path / "t/final").resolve())
    assert summary["dgl_interval"] == 2
    from zoo.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "s/final")  # a regular checkpoint, manifest verified
    assert ckpt.config.ch_mul == "1/2" and ckpt.metadata["training"]["T_kimg"] == 0.008
    assert (tmp_path / "s/images/reals.png").is_file() and list((tmp_path / "s/images").glob("fakes*.png"))
