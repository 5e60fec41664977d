"""`zoo sweep bundle`: a finished sweep's teacher and best DGL student per width into a registry, all or nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from train_helpers import SG2, TINY_ARCH, TINY_TRAIN, tiny_arch

LICENCE = "CC0-1.0 (random test pixels, Test Foundry)"
# final KID per (width dir, seed): the bundle must ship seed 1 at 1/2 and seed 0 at 1/4
KIDS = {("1_2", 0): 0.30, ("1_2", 1): 0.10, ("1_4", 0): 0.20, ("1_4", 1): 0.40, ("teacher", 0): 0.05}


def _sweep_file(root: Path, seeds=(0, 1), name="tiny.json", teacher_entry=None, results=None) -> Path:
    spec = {"name": "tiny", "config": SG2, "preset": "demo", "experiment": "tiny-study", "root": str(root),
            "data": {"path": "data/tiny"}, "teacher": {"stage1_kimg": 0.008},
            "students": {"ch_mul": ["1/2", "1/4"], "seeds": list(seeds), "stage1_kimg": 0.008,
                         "stage2_kimg": 0.008, "lambda": 0.1}}  # the schedule _train_runs trains
    if teacher_entry:
        spec["teacher"]["entry"] = teacher_entry
    if results:
        spec["results"] = results
    path = root / name
    path.write_text(json.dumps(spec))
    return path


def _evaluator(kid: float, ds):
    """Stands in for train.metrics (no feature network run): a fixed KID with the provenance it records."""
    def evaluator(G, names, device):
        return {"kid": kid}

    evaluator.info = {"n": 64, "n_real": 32, "seed": 0, "truncation_psi": 1.0,
                      "real": {"name": ds.name, "sha256": ds.sha256, "count": 32, "resolution": 16, "channels": 3},
                      "feature_net": {"net": "efficientnet-lite0", "weights_sha256": "ab" * 32,
                                      "input_resolution": 224},
                      "settings": {"kid_subsets": 100, "kid_subset_size": 1000}}
    return evaluator


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny sweep whose teacher and DGL runs are finished (Baselines are never needed to bundle)."""
    from zoo.train.data.dataset import ImageDataset, load_dataset, save_dataset
    from zoo.train.sweep import TEACHER, load_sweep

    root = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 3, 16, 16), dtype=np.uint8)
    save_dataset(ImageDataset(images, None, None, "tiny-16"), root / "data" / "tiny",
                 source={"kind": "test", "licence": LICENCE}, build={"builder": "test"})
    ds = load_dataset(root / "data" / "tiny")
    sweep = load_sweep(_sweep_file(root))
    teacher_final = Path(sweep.by_name()[TEACHER].out) / "final"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is as fast, and spins less on a loaded machine
    try:
        _train_runs(sweep, teacher_final, ds)
    finally:
        torch.set_num_threads(threads)
    return root, ds


def _train_runs(sweep, teacher_final: Path, ds) -> None:
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.sweep import TEACHER
    from zoo.train.teacher import resolve_teacher

    for run in sweep.runs:
        if "baseline" in run.name:
            continue
        width, _, tail = run.name.partition("/")
        seed = int(tail.rsplit("-s", 1)[1]) if tail else 0
        ch_mul = "1" if run.name == TEACHER else width.replace("_", "/")
        arch = tiny_arch(SG2, ch_mul)
        cfg = get_train_config(SG2, "demo", ch_mul, **{**TINY_TRAIN, "stage1_kimg": 0.008, "lam": 0.1,
                                                        "stage2_kimg": 0 if run.name == TEACHER else 0.008,
                                                        "metrics": ("kid",)})
        teacher = None if run.name == TEACHER else resolve_teacher(str(teacher_final), arch)
        train(TrainRun(cfg=cfg, arch=arch, method="teacher" if teacher is None else "dgl", out=Path(run.out),
                       dataset=ds, teacher=teacher, seed=seed, tracking_uri="none", progress=False,
                       evaluator=_evaluator(KIDS[(width if tail else "teacher", seed)], ds)))


def test_bundle_ships_the_teacher_with_D_and_the_best_DGL_seed_per_width(finished, tmp_path, capsys, monkeypatch):
    import zoo
    from zoo.cli import main
    from zoo.metrics import MetricValue
    from zoo.registry.api import info, load_entry, verify
    from zoo.train.bundle import bundle

    root, ds = finished
    reg = tmp_path / "registry"
    result = bundle(_sweep_file(root), reg, backends=("eager",), bench_iters=1, say=lambda *_: None)
    assert [(r["ch_mul"], r["role"], r["run"]) for r in result.published] == [
        ("1", "teacher", "teacher"), ("1/2", "student", "1_2/dgl-s1"), ("1/4", "student", "1_4/dgl-s0")]
    assert all(row["ok"] for row in verify(registry=str(reg)))

    G = zoo.load(SG2, ch_mul="1/2", registry=str(reg))
    with torch.no_grad():
        assert G(torch.randn(2, TINY_ARCH[SG2]["z_dim"]), None).shape == (2, 3, 16, 16)
    teacher = load_entry(SG2, ch_mul=1, registry=str(reg))
    assert teacher.D is not None  # D-bar, to compress further: the entry is a `zoo train --teacher`
    from zoo.train.teacher import resolve_teacher

    monkeypatch.setenv("GANZOO_REGISTRY", str(reg))
    assert resolve_teacher(SG2, tiny_arch(SG2, "1/8")).summary()["path"].startswith(str(reg.resolve()))
    t_info, s_info = info(SG2, 1, registry=str(reg)), info(SG2, "1/4", registry=str(reg))
    assert "discriminator.safetensors" in t_info["files"] and "discriminator.safetensors" not in s_info["files"]
    assert "generator_raw.safetensors" not in t_info["files"] | s_info["files"]  # G_ema ships, not raw G

    meta = s_info["metadata"]
    bundle_block = meta["bundle"]
    assert bundle_block["role"] == "student" and bundle_block["selection"]["chosen_seed"] == 0
    assert bundle_block["selection"]["candidates"] == {"0": 0.20, "1": 0.40}
    assert bundle_block["teacher"] == {"name": SG2, "ch_mul": "1", "version": t_info["version"],
                                       "generator_sha256": t_info["metadata"]["registry"]["generator_sha256"]}
    assert bundle_block["data"]["licence"] == LICENCE and bundle_block["data"]["sha256"] == ds.sha256
    assert "mlflow_run_id" in bundle_block  # None here: the tiny runs were not tracked
    kid = MetricValue.from_stored("kid", meta["metrics"]["kid"], meta["metrics_info"])
    assert kid.value == 0.20 and kid.data_and_n == (ds.sha256, 64) and kid.feature_net.net == "efficientnet-lite0"
    training = meta["training"]
    assert training["kimg"] == pytest.approx(0.016) and training["cpu_seconds"] > 0 and "git_commit" in training
    assert training["environment"]["hardware"]["fingerprint"]
    (row,) = [r for r in meta["latency"] if r["batch"] == 1]
    assert row["backend"] == "eager" and row["ch_mul"] == "1/4" and row["fingerprint"].startswith("cpu:")
    assert row["median_ms"] > 0 and row["speedup_vs_full"] > 0  # the teacher was timed in the same run

    for ch, who in (("1", "teacher"), ("1/4", "student")):
        entry = info(SG2, ch, registry=str(reg))
        assert "MODEL_CARD.md" in entry["files"]  # listed and hashed like every file
        card = (reg / entry["path"] / "MODEL_CARD.md").read_text()
        assert LICENCE in card and ds.sha256 in card and "EfficientNet-Lite0" in card
        # the weights' own licence: an SPDX id in the front matter the Hub reads, not "other"
        assert "license: apache-2.0" in card.split("---")[1] and "Weights licence: apache-2.0" in card
        # each training fact is its own list item (the git commit and the MLflow run id once ran together)
        assert "\n- git commit: " in card and "\n- MLflow run id: " in card
        assert "n (generated images) 64" in card and "kid" in card and "Known limits" in card
        assert ("inherits its teacher's and its data's terms" in card) == (who == "student")
        assert "trained from scratch" in card and "same z gives a different image at each width" in card
        if who == "student":
            assert f"`{SG2}` ch_mul 1 version {t_info['version']}" in card and "Seed 0 of 2" in card

    capsys.readouterr()
    assert main(["list", "--registry", str(reg)]) == 0
    listed = capsys.readouterr().out
    assert listed.count(SG2) == 3 and "1/2" in listed and "1/4" in listed


def test_bundling_again_changes_nothing(finished, tmp_path):
    from zoo.train.bundle import bundle

    root, _ = finished
    reg = tmp_path / "registry"
    bundle(_sweep_file(root), reg, bench=False, say=lambda *_: None)
    index = (reg / "index.json").read_bytes()
    again = bundle(_sweep_file(root), reg, bench=False, say=lambda *_: None)
    assert again.published == [] and len(again.unchanged) == 3
    assert (reg / "index.json").read_bytes() == index


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_over_budget_or_failing_midway_writes_nothing(finished, tmp_path, monkeypatch):
    import importlib

    from zoo.errors import ZooError
    from zoo.train.bundle import bundle

    publish_module = importlib.import_module("zoo.registry.publish")  # zoo.registry.publish is also the function
    root, _ = finished
    reg = tmp_path / "registry"
    with pytest.raises(ZooError, match=r"over the 0.01 MB budget.*nothing was written") as err:
        bundle(_sweep_file(root), reg, bench=False, budget_mb=0.01, say=lambda *_: None)
    assert f"{SG2} ch_mul=1/4 v1" in str(err.value)  # per-entry sizes
    assert not reg.exists() and _tree(tmp_path) == []  # no staging left either
    with pytest.raises(ZooError, match="budget"):  # nor a parent directory it had to create
        bundle(_sweep_file(root), tmp_path / "new" / "registry", bench=False, budget_mb=0.01, say=lambda *_: None)
    assert _tree(tmp_path) == []

    # an existing registry stays exactly as it was when the second entry fails to publish
    (reg / "old").mkdir(parents=True)
    (reg / "old" / "keep.txt").write_text("x")
    (reg / "index.json").write_text(json.dumps({"format": "ganzoo-registry/1", "models": {}}))
    before = _tree(reg)
    real, calls = publish_module.publish, []

    def failing(*args, **kwargs):
        calls.append(kwargs["ch_mul"])
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(publish_module, "publish", failing)
    with pytest.raises(OSError, match="disk full"):
        bundle(_sweep_file(root), reg, bench=False, say=lambda *_: None)
    assert calls == ["1", "1/2"]  # the teacher was staged, the first student failed
    assert _tree(reg) == before and [p.name for p in tmp_path.iterdir()] == ["registry"]


def test_an_unfinished_sweep_is_refused_and_the_cli_dry_run_writes_nothing(finished, tmp_path, capsys):
    from zoo.cli import main
    from zoo.errors import ZooError
    from zoo.train.bundle import bundle

    root, _ = finished
    with pytest.raises(ZooError, match=r"not finished on this machine: 1_2/dgl-s2, 1_4/dgl-s2"):
        bundle(_sweep_file(root, seeds=(0, 1, 2), name="three.json"), tmp_path / "r", bench=False)
    reg = tmp_path / "registry"
    assert main(["sweep", "bundle", str(_sweep_file(root)), "--into", str(reg), "--no-bench", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was written" in out and f"{SG2} ch_mul=1/2 v1" in out
    assert not reg.exists() and not (tmp_path / "r").exists()


def test_a_study_goes_on_across_machines_from_its_records_and_the_shipped_teacher(finished, tmp_path, capsys):
    """Session 1 ships the teacher and archives its record; a new machine (an empty sweep root) trains the
    students against the shipped entry's D-bar and bundles a width that references that entry."""
    import shutil

    from zoo.cli import main
    from zoo.errors import ZooError
    from zoo.train.bundle import bundle
    from zoo.train.sweep import archive, load_sweep, run_status

    root, ds = finished
    reg = tmp_path / "registry"
    # machine 1: the teacher only (its students are not all finished: --widths 1)
    first = bundle(_sweep_file(root), reg, bench=False, widths=["1"], say=lambda *_: None)
    assert [(r["ch_mul"], r["role"]) for r in first.published] == [("1", "teacher")]
    sweep_file = _sweep_file(root, name="records.json", results="results/tiny")
    said = []
    assert archive(load_sweep(sweep_file), say=said.append) == ["teacher"]  # the students' Baselines never ran
    assert any("width 1/2: not archived, 2 of 4 runs unfinished" in line for line in said)
    record = root / "results" / "tiny" / "teacher"
    assert sorted(str(p.relative_to(record)) for p in record.rglob("*") if p.is_file()) == [
        "final/config.json", "final/manifest.json", "final/metadata.json", "log.jsonl", "summary.json"]

    # machine 2: nothing of machine 1 but the records and the registry (here: another root, the same data)
    root2 = tmp_path / "machine2"
    shutil.copytree(root / "data", root2 / "data")
    shutil.copytree(root / "results", root2 / "results")
    for w in ("1_2",):  # as if the 1/2 students had been trained on machine 2
        shutil.copytree(Path(load_sweep(sweep_file).by_name()["1_2/dgl-s0"].out).parent,
                        root2 / "runs" / "tiny" / w)
    later = _sweep_file(root2, name="later.json", results="results/tiny", teacher_entry=f"{SG2}@1")
    sweep = load_sweep(later)
    teacher = sweep.by_name()["teacher"]
    assert run_status(teacher)["status"] == "done" and run_status(teacher)["archived"]
    dgl = sweep.by_name()["1_4/dgl-s0"]
    assert dgl.argv[dgl.argv.index("--teacher") + 1] == f"{SG2}@1" and dgl.needs is None and dgl.after == ()
    assert main(["sweep", "status", str(later), "--widths", "1,1/4"]) == 0
    out = capsys.readouterr().out
    assert "archived" in out and "1_2/" not in out

    with pytest.raises(ZooError, match=r"not finished on this machine: 1_4/dgl-s0, 1_4/dgl-s1"):
        bundle(later, reg, bench=False, say=lambda *_: None)
    second = bundle(later, reg, backends=("eager",), bench_iters=1, widths=["1/2"], say=lambda *_: None)
    assert [(r["ch_mul"], r["role"], r["run"]) for r in second.published] == [("1/2", "student", "1_2/dgl-s1")]
    from zoo.registry.api import info

    t_info, s_meta = info(SG2, 1, registry=str(reg)), info(SG2, "1/2", registry=str(reg))["metadata"]
    # the shipped teacher was timed in the same run: the student's speedup is a same-run ratio
    assert [r["ch_mul"] for r in s_meta["latency"]] == ["1/2", "1/2"] and all(
        r["speedup_vs_full"] > 0 for r in s_meta["latency"])
    assert s_meta["bundle"]["teacher"] == {
        "name": SG2, "ch_mul": "1", "version": t_info["version"],
        "generator_sha256": t_info["metadata"]["registry"]["generator_sha256"]}
    # the teacher's same-run timing cannot go into its published entry: the whole bench table is kept with the
    # study's records, and `zoo compare --runs-dir` shows the teacher's row from it
    (kept,) = (root2 / "results" / "tiny" / "latency").glob("*.json")
    assert second.latency_record == kept
    assert sorted({r["ch_mul"] for r in json.loads(kept.read_text())["bench"]["rows"]}) == ["1", "1/2"]
    assert t_info["metadata"].get("latency") in (None, [])  # bundled with bench=False: the table is the only source
    capsys.readouterr()
    assert main(["compare", "--runs-dir", str(root2 / "results" / "tiny"), "--registry", str(reg),
                 "--format", "json"]) in (0, 1)
    (table,) = json.loads(capsys.readouterr().out)["configs"]
    (row,) = table["rows"]  # the archived teacher record (its students' Baselines never ran: not archived)
    assert row["method"] == "teacher" and [(x["device"], x["batch"], x["speedup"]) for x in row["latency"]] == [
        (s_meta["latency"][0]["device"], b, 1.0) for b in (1, 8)]

    with pytest.raises(ZooError, match="no such version"):
        bundle(_sweep_file(root2, name="bad.json", teacher_entry=f"{SG2}@7"), reg, bench=False, widths=["1/2"])
