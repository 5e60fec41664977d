"""`zoo compare` over training runs (train/compare.py): tables from MLflow and from run directories,
checked against statistics computed here, the refusal of columns computed differently, and bad input."""
import importlib.util
import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from compare_helpers import EXPERIMENT, INFO, SEEDS, VALUES, tiny_study  # noqa: E402
from train_helpers import SG2, tiny_arch  # noqa: E402

# the 0.975 quantile of Student's t, from tables (scipy.stats.t.ppf), for the dof used below
T975 = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078, 4: 2.7764451051977934,
        9: 2.262157162798205, 29: 2.045229642132703, 10_000: 1.960201239890626}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return tiny_study(tmp_path_factory)


def zoo(*argv, capsys):
    from zoo.cli import main

    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlruns.db'}"


def row(report, label_start, ch_mul):
    (cfg,) = report["configs"]
    matches = [r for r in cfg["rows"] if r["label"].startswith(label_start) and r["ch_mul"] == ch_mul]
    assert len(matches) == 1, [(r["label"], r["ch_mul"]) for r in cfg["rows"]]
    return matches[0]


def test_t_quantile():
    from zoo.train.compare import t_cdf, t_quantile

    for dof, t in T975.items():
        assert t_quantile(0.975, dof) == pytest.approx(t, abs=1e-8)
        assert t_cdf(t, dof) == pytest.approx(0.975, abs=1e-10)
    assert t_quantile(0.025, 3) == pytest.approx(-T975[3], abs=1e-8)


def test_variants_duplicates_and_unfinished_runs():
    """Rows are told apart by method + lambda + dgl_interval (the lazy teacher term is its own row, paired with
    the Baseline by seed); a run finished twice counts once (the latest); unfinished runs are left out, noted."""
    from zoo.train.compare import RunRecord, build_report

    kid = {("dgl", 1, 0): 0.20, ("dgl", 1, 1): 0.25, ("dgl", 1, 2): 0.22, ("dgl", 4, 0): 0.21, ("dgl", 4, 1): 0.30,
           ("baseline", 1, 0): 0.24, ("baseline", 1, 1): 0.27, ("baseline", 1, 2): 0.26}
    runs = [RunRecord(key=f"{m}-k{k}-s{s}", name=f"{m}-k{k}-s{s}", source="dir", status="FINISHED",
                      config=SG2, method=m, ch_mul="1/4", seed=s, lam=0.1 if m == "dgl" else 0.0, dgl_interval=k,
                      T_kimg=30, S_kimg=30, metrics={"kid": v}, end_time=10, metrics_info=INFO)
            for (m, k, s), v in kid.items()]
    runs.append(RunRecord(key="old", name="old baseline", source="dir", status="FINISHED", config=SG2,
                          method="baseline", ch_mul="1/4", seed=0, T_kimg=30, S_kimg=30, metrics={"kid": 9.0},
                          end_time=1, metrics_info=INFO))
    runs.append(RunRecord(key="live", name="live dgl", source="dir", status="RUNNING", config=SG2, method="dgl",
                          ch_mul="1/4", seed=3, lam=0.1, T_kimg=30, S_kimg=30))
    runs.append(RunRecord(key="teacher", name="teacher", source="dir", status="FINISHED", config=SG2,
                          method="teacher", ch_mul="1", seed=0, T_kimg=200, S_kimg=0, metrics={"kid": 0.1},
                          end_time=5, metrics_info=INFO))
    report = build_report(runs, source={"kind": "dir", "runs_dir": "x"}, stats=False)
    (cfg,) = report["configs"]
    assert [(r["label"], r["seeds"]) for r in cfg["rows"]] == [
        ("teacher", [0]), ("DGL-GAN (λ=0.1)", [0, 1, 2]), ("DGL-GAN (λ=0.1, lazy K=4)", [0, 1]),
        ("Baseline", [0, 1, 2])]
    assert any("skipped 1 unfinished run(s)" in n and "live dgl [RUNNING]" in n for n in report["notes"])
    assert any("finished more than once; using the latest (baseline-k1-s0), not old baseline" in n
               for n in cfg["notes"])
    paired = {p["variant"]: p for p in cfg["paired"] if p["baseline"] == "Baseline"}
    for variant, k, seeds in (("DGL-GAN (λ=0.1)", 1, [0, 1, 2]), ("DGL-GAN (λ=0.1, lazy K=4)", 4, [0, 1])):
        p = paired[variant]
        diffs = [kid[("dgl", k, s)] - kid[("baseline", 1, s)] for s in seeds]
        half = T975[len(seeds) - 1] * statistics.stdev(diffs) / math.sqrt(len(seeds))
        assert p["seeds"] == seeds and p["baseline"] == "Baseline"
        assert p["ci"] == pytest.approx([statistics.mean(diffs) - half, statistics.mean(diffs) + half])
    assert paired["DGL-GAN (λ=0.1, lazy K=4)"]["unpaired_seeds"] == [2]
    # K = 1: differences -0.04, -0.02, -0.04 -> [-0.066, -0.001]: lower KID than the Baseline, and no more
    assert paired["DGL-GAN (λ=0.1)"]["ci"][1] < 0
    assert paired["DGL-GAN (λ=0.1)"]["reading"].startswith("DGL-GAN (λ=0.1) lower than Baseline (better)")
    assert paired["DGL-GAN (λ=0.1, lazy K=4)"]["reading"].startswith("inconclusive")
    # the lazy term is also paired with K = 1 of the same lambda (whether it can become the default), and
    # nothing else is: the every-step DGL row has no second reference
    (lazy_vs_dgl,) = [p for p in cfg["paired"] if p["baseline"] != "Baseline"]
    assert (lazy_vs_dgl["variant"], lazy_vs_dgl["baseline"]) == ("DGL-GAN (λ=0.1, lazy K=4)", "DGL-GAN (λ=0.1)")
    assert lazy_vs_dgl["differences"] == pytest.approx({"0": 0.01, "1": 0.05}) and lazy_vs_dgl["seeds"] == [0, 1]
    assert len(cfg["paired"]) == 3


def test_the_dbar_only_ablation_is_its_own_row_paired_with_baseline_and_dgl():
    """A DGL run with stage2_student_adv off (the paper's Table 7) is not the DGL row: it gets its own label,
    and, like the lazy term, is paired with the Baseline and with plain DGL-GAN of the same lambda."""
    from zoo.train.compare import RunRecord, _apply_summary, build_report

    kid = {("dgl", True): [0.20, 0.25, 0.22], ("dgl", False): [0.30, 0.33, 0.29],
           ("baseline", True): [0.24, 0.27, 0.26]}
    runs = []
    for (method, student_adv), values in kid.items():
        for seed, v in enumerate(values):
            rec = RunRecord(key=f"{method}-{student_adv}-s{seed}", name=f"{method}-{student_adv}-s{seed}", source="dir",
                            status="FINISHED", metrics_info=INFO, end_time=10)
            _apply_summary(rec, {"config": SG2, "method": method, "ch_mul": "1/4", "seed": seed,
                                 "lambda": 0.1 if method == "dgl" else 0.0, "dgl_interval": 1, "T_kimg": 30,
                                 "S_kimg": 30, "stage2_student_adv": student_adv, "metrics": {"kid": v}})
            runs.append(rec)
    (cfg,) = build_report(runs, source={"kind": "dir", "runs_dir": "x"}, stats=False)["configs"]
    only = "DGL-GAN (λ=0.1, D̄ only in stage II)"
    assert [r["label"] for r in cfg["rows"]] == ["DGL-GAN (λ=0.1)", only, "Baseline"]
    pairs = {(p["variant"], p["baseline"]): p for p in cfg["paired"]}
    assert set(pairs) == {("DGL-GAN (λ=0.1)", "Baseline"), (only, "Baseline"), (only, "DGL-GAN (λ=0.1)")}
    only_vs_dgl = pairs[(only, "DGL-GAN (λ=0.1)")]
    assert only_vs_dgl["differences"] == pytest.approx({"0": 0.10, "1": 0.08, "2": 0.07})


def check_tables(report):
    """Every number of the tiny study's tables, against values computed here from VALUES."""
    from zoo.families import get_family
    from zoo.models import build_generator

    (cfg,) = report["configs"]
    assert cfg["config"] == SG2 and cfg["family"] == "stylegan2"
    assert [(r["label"], r["ch_mul"]) for r in cfg["rows"]] == [
        ("teacher", "1"), ("DGL-GAN (λ=0.1)", "1/2"), ("Baseline", "1/2")]
    assert cfg["refused"] == {} and report["refusals"] == []
    params = {ch: sum(p.numel() for p in build_generator(tiny_arch(SG2, ch)).parameters()) for ch in ("1", "1/2")}
    for r in cfg["rows"]:
        assert r["params_G"] == params[r["ch_mul"]]
        assert r["compression"] == pytest.approx(params["1"] / params[r["ch_mul"]])
        assert r["macs_G_paper"] == int(get_family("stylegan2").paper_macs(tiny_arch(SG2, r["ch_mul"])))
        assert r["macs_G_fvcore"] and r["macs_G_fvcore"] < r["macs_G_paper"]  # the real cost is below the paper's
    teacher = row(report, "teacher", "1")
    assert teacher["seeds"] == [0] and teacher["metrics"]["kid"]["mean"] == pytest.approx(0.010)
    assert teacher["metrics"]["kid"]["std"] is None
    for method, label in (("dgl", "DGL-GAN"), ("baseline", "Baseline")):
        r = row(report, label, "1/2")
        assert r["seeds"] == list(SEEDS)
        for m in ("kid", "precision"):
            values = [VALUES[(method, s)][m] for s in SEEDS]
            cell = r["metrics"][m]
            assert cell["values"] == {str(s): pytest.approx(v) for s, v in zip(SEEDS, values)}
            assert cell["mean"] == pytest.approx(statistics.mean(values))
            assert cell["std"] == pytest.approx(statistics.stdev(values))
    paired = {p["metric"]: p for p in cfg["paired"]}
    assert set(paired) == {"kid", "precision"}
    for m, p in paired.items():
        diffs = [VALUES[("dgl", s)][m] - VALUES[("baseline", s)][m] for s in SEEDS]
        mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
        half = T975[len(diffs) - 1] * sd / math.sqrt(len(diffs))
        assert p["seeds"] == list(SEEDS) and p["dof"] == len(SEEDS) - 1
        assert [p["differences"][str(s)] for s in SEEDS] == pytest.approx(diffs)
        assert p["mean"] == pytest.approx(mean)
        assert p["ci"] == pytest.approx([mean - half, mean + half])
        assert p["variant"] == "DGL-GAN (λ=0.1)" and p["baseline"] == "Baseline"
    # KID: -5e-3 and -1e-3 -> the interval [-0.0284, 0.0224] contains 0: nothing more may be claimed
    assert paired["kid"]["ci"][0] < 0 < paired["kid"]["ci"][1]
    assert paired["kid"]["reading"].startswith("inconclusive")
    # precision: +0.10 and +0.11 -> [0.041, 0.169] excludes 0, higher is better
    assert paired["precision"]["ci"][0] > 0
    assert paired["precision"]["reading"].startswith("DGL-GAN (λ=0.1) higher than Baseline (better): by 0.04147 to "
                                                     "0.1685 at 95%")
    prov = cfg["provenance"]["kid"]
    assert prov["n (generated images)"] == "64" and prov["real data sha256"] == INFO["real"]["sha256"]


def test_experiment_tables(study, capsys):
    code, out, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), "--format", "json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["source"] == {"kind": "mlflow", "tracking_uri": uri(study), "experiment": EXPERIMENT,
                                "runs": None}
    check_tables(report)

    code, md, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), capsys=capsys)
    assert code == 0, err
    assert "| DGL-GAN (λ=0.1) | 1/2 | 0,1 |" in md
    assert "28.00 ± 2.828 (s0 30.00, s1 26.00)" in md          # KID x 10^3: mean ± std (each seed)
    assert "inconclusive (the interval contains 0)" in md
    assert "[-28.41, +22.41] (t=12.706, 1 dof)" in md

    # --runs picks runs by id, across the same store; --config filters
    ids = [r for r in report["configs"][0]["rows"][1]["runs"]]
    code, out, err = zoo("--runs", ",".join(ids), "--tracking-uri", uri(study), "--format", "json", capsys=capsys)
    assert code == 0, err
    only = json.loads(out)
    assert [(r["label"], r["seeds"]) for r in only["configs"][0]["rows"]] == [("DGL-GAN (λ=0.1)", [0, 1])]
    code, out, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), "--config", "biggan-emoji",
                         capsys=capsys)
    assert code == 2 and "--config biggan-emoji: no finished run" in err and SG2 in err


def test_runs_dir_fallback(study, capsys, monkeypatch):
    """Without MLflow, the run directories (summary.json, final/, log.jsonl) give the same tables."""
    code, out, err = zoo("--runs-dir", study / "runs", "--format", "json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["source"] == {"kind": "dir", "runs_dir": str(study / "runs")}
    check_tables(report)
    # MLflow not installed: --experiment with --runs-dir falls back to the directories, and says so.  The root
    # also holds MLflow's artifact store (copies of summary.json): those are not runs
    monkeypatch.setitem(sys.modules, "mlflow", None)
    code, out, err = zoo("--experiment", EXPERIMENT, "--runs-dir", study, "--format", "csv", capsys=capsys)
    assert code == 0, err
    assert "MLflow is not installed: reading the run directories" in err
    lines = out.splitlines()
    assert lines[0].startswith("kind,config,label,method,ch_mul")
    assert len([line for line in lines if line.startswith("quality,")]) == 3 * 2  # 3 rows x (kid, precision)
    paired = [line for line in lines if line.startswith("paired,") and ",kid," in line]
    assert len(paired) == 1 and "inconclusive" in paired[0]
    code, out, err = zoo("--runs-dir", study, "--format", "json", capsys=capsys)
    assert code == 0 and json.loads(out)["notes"] == []  # no "unfinished run" from mlartifacts/
    code, out, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), capsys=capsys)
    assert code == 2 and "pip install 'dglgan-zoo[mlflow]'" in err


def test_archived_records_give_the_same_tables(study, tmp_path, capsys):
    """`zoo sweep archive` keeps only RECORD_FILES of each run (no weights): the tables read from those
    records are the tables of the full run directories."""
    from zoo.train.sweep import RECORD_FILES

    records = tmp_path / "records"
    for summary in (study / "runs").rglob("summary.json"):
        run = summary.parent
        if "mlartifacts" in run.parts:
            continue
        for rel in RECORD_FILES:
            if (run / rel).is_file():
                (records / run.relative_to(study / "runs") / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run / rel, records / run.relative_to(study / "runs") / rel)
    assert not list(records.rglob("*.safetensors"))
    code, out, err = zoo("--runs-dir", records, "--format", "json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    check_tables(report)
    code, full, err = zoo("--runs-dir", study / "runs", "--format", "json", capsys=capsys)
    assert json.loads(full)["configs"] == report["configs"]
    code, out, err = zoo("--runs-dir", records, "--format", "html", "--out", tmp_path / "page", capsys=capsys)
    assert code == 0, err
    assert "Baseline" in (tmp_path / "page" / "report.html").read_text()  # no sample grids (no weights), the tables and curves still


def edited_copy(study: Path, tmp_path: Path, run: str, edit) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(study / "runs", runs, ignore=shutil.ignore_patterns("state", "state_stage1", "images"))
    summary = runs / run / "summary.json"
    data = json.loads(summary.read_text())
    edit(data["metrics_info"])
    summary.write_text(json.dumps(data))
    return runs


@pytest.mark.parametrize("what, edit, differs", [
    ("n", lambda info: info.update(n=128), "n (generated images) differs (128: 1_2/baseline-s1; 64: "),
    ("data", lambda info: info["real"].update(sha256="f" * 64), "real data sha256 differs ("),
])
def test_refuses_numbers_computed_differently(study, tmp_path, capsys, what, edit, differs):
    runs = edited_copy(study, tmp_path, "1_2/baseline-s1", edit)
    code, out, err = zoo("--runs-dir", runs, "--format", "json", capsys=capsys)
    assert code == 1, err  # the tables are printed, but the exit status says a column was refused
    report = json.loads(out)
    (cfg,) = report["configs"]
    assert set(cfg["refused"]) == {"kid", "precision"}
    assert differs in cfg["refused"]["kid"] and "refused to put in one column" in cfg["refused"]["kid"]
    assert cfg["paired"] == []  # no difference is computed from a refused column
    assert "KID-EffLite0 ×10³: refused to put in one column" in err
    code, md, err = zoo("--runs-dir", runs, capsys=capsys)
    assert code == 1
    assert "28.00 ±" not in md and "| refused |" in md and "REFUSED" in md


def test_bad_input(study, tmp_path, capsys):
    code, _, err = zoo("--experiment", "nope", "--tracking-uri", uri(study), capsys=capsys)
    assert code == 2
    assert f"no MLflow experiment named 'nope' at {uri(study)} (experiments there: " in err and EXPERIMENT in err
    code, _, err = zoo("--runs", "0123456789abcdef", "--tracking-uri", uri(study), capsys=capsys)
    assert code == 2 and "--runs: no run '0123456789abcdef'" in err
    missing = tmp_path / "missing.db"
    code, _, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", f"sqlite:///{missing}", capsys=capsys)
    assert code == 2 and f"no MLflow store at {missing}" in err and not missing.exists()  # never created
    # an experiment without runs (in a copy of the store)
    shutil.copy(study / "mlruns.db", tmp_path / "copy.db")
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path / 'copy.db'}").create_experiment("empty")
    code, _, err = zoo("--experiment", "empty", "--tracking-uri", f"sqlite:///{tmp_path / 'copy.db'}", capsys=capsys)
    assert code == 2 and "MLflow experiment 'empty' at" in err and "has no runs" in err
    # run directories: missing, empty, only unfinished runs
    code, _, err = zoo("--runs-dir", tmp_path / "nowhere", capsys=capsys)
    assert code == 2 and "no such directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = zoo("--runs-dir", tmp_path / "empty", capsys=capsys)
    assert code == 2 and "no runs under" in err
    (tmp_path / "partial" / "run").mkdir(parents=True)
    (tmp_path / "partial" / "run" / "log.jsonl").write_text('{"event": "start", "nimg": 0}\n')
    code, _, err = zoo("--runs-dir", tmp_path / "partial", capsys=capsys)
    assert code == 2 and "nothing to compare: 1 run(s), none finished" in err and "run [UNFINISHED]" in err
    # mixed modes, html without a destination, no arguments
    code, _, err = zoo(SG2, "--experiment", EXPERIMENT, capsys=capsys)
    assert code == 2 and "not both" in err
    code, _, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), "--format", "html", capsys=capsys)
    assert code == 2 and "give --out DIR" in err
    code, _, err = zoo(capsys=capsys)
    assert code == 2 and "give a registry NAME, or runs" in err
    code, _, err = zoo(SG2, "--curves", "kid", capsys=capsys)  # registry mode has no runs to draw curves from
    assert code == 2 and "--curves" in err and "apply to runs" in err
    code, _, err = zoo("--runs-dir", study / "runs", "--curves", "kd", capsys=capsys)
    assert code == 2 and "--curves 'kd': not a metric" in err and "Traceback" not in err


def test_latency_from_registry_and_registry_mode(study, tmp_path, capsys):
    """Where the registry entry of a width has `zoo bench` rows, the table shows latency and speedup; the
    registry's own `zoo compare NAME` keeps working."""
    from zoo.integrity import manifest_for, write_json
    from zoo.registry.publish import publish

    registry = tmp_path / "registry"
    bench = {"1": (10.0, 1.0), "1/2": (4.0, 2.5)}
    for ch, run in (("1", "teacher"), ("1/2", "1_2/dgl-s0")):
        ckpt = tmp_path / "ckpt" / ch.replace("/", "_")
        shutil.copytree(study / "runs" / run / "final", ckpt)
        meta = json.loads((ckpt / "metadata.json").read_text())
        ms, speedup = bench[ch]
        meta["latency"] = [{"model": SG2, "ch_mul": ch, "backend": "eager", "dtype": "fp32", "batch": 8,
                            "median_ms": ms, "speedup_vs_full": speedup, "device": "Test CPU", "device_type": "cpu"}]
        write_json(ckpt / "metadata.json", meta)
        write_json(ckpt / "manifest.json", manifest_for(ckpt))
        publish(ckpt, name=SG2, registry=str(registry))
    code, out, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), "--registry", registry,
                         "--format", "json", capsys=capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["configs"][0]["latency_groups"] == [["Test CPU", "eager", "fp32", 8]]
    for label, ch in (("teacher", "1"), ("DGL-GAN", "1/2"), ("Baseline", "1/2")):
        (lat,) = row(report, label, ch)["latency"]
        assert (lat["ms"], lat["speedup"]) == bench[ch]
    code, md, err = zoo("--experiment", EXPERIMENT, "--tracking-uri", uri(study), "--registry", registry,
                        capsys=capsys)
    assert "latency Test CPU eager fp32 b8 (speedup)" in md and "| 4.00 ms (2.50x) |" in md

    code, out, err = zoo(SG2, "--registry", registry, "--json", capsys=capsys)
    assert code == 0, err
    assert [r["ch_mul"] for r in json.loads(out)] == ["1", "1/2"]


def test_training_evaluators_record_provenance():
    """What `zoo train` and train.metrics.make_evaluator evaluate with ends up in evaluator.info (the loop
    stores it as summary.json's metrics_info), and runs evaluated at another n are refused a shared column."""
    import numpy as np

    from zoo.train.cli import make_evaluator as cli_evaluator
    from zoo.train.compare import RunRecord, check_provenance
    from zoo.train.data.dataset import ImageDataset
    from zoo.train.metrics.evaluation import make_evaluator
    from zoo.models import build_generator

    images = np.random.RandomState(0).randint(0, 256, (40, 3, 16, 16), dtype=np.uint8)
    data = ImageDataset(images=images, name="rand16")
    G = build_generator(tiny_arch(SG2, "1/2")).eval()
    small, default = make_evaluator(data, n=24, seed=0), cli_evaluator(("swd",), data, SG2)
    assert small.info is None and default.info is None
    assert set(small(G, ["swd"], "cpu")) >= {"swd", "swd_16"} and set(default(G, ["swd"], "cpu")) >= {"swd"}
    for ev, n in ((small, 24), (default, 2048)):  # zoo train evaluates at evaluate()'s default n
        assert ev.info["n"] == n and ev.info["n_real"] == min(n, 40) and ev.info["seed"] == 0
        assert ev.info["real"] == {"name": "rand16", "sha256": data.sha256, "count": 40, "resolution": 16,
                                   "channels": 3}
        assert ev.info["settings"]["swd_patches"] == 128 and ev.info["truncation_psi"] == 1.0
    runs = [RunRecord(key=k, name=k, source="dir", status="FINISHED", metrics={"swd": 1.0}, metrics_info=ev.info)
            for k, ev in (("a", small), ("b", default))]
    message, _, _ = check_provenance(runs, "swd")
    assert "n (generated images) differs (2048: b; 24: a)" in message
    assert "n_real (real images) differs (24: a; 40: b)" in message


def test_zoo_imports_nothing_from_train():
    code = ("import sys, zoo.cli, zoo.registry.cli; import train.compare; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'mlflow', 'matplotlib')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
    src = Path(__file__).resolve().parents[1] / "zoo"
    offenders = [str(p) for p in src.rglob("*.py")
                 if any(line.lstrip().startswith(("import train", "from train", "import export", "from export"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


def test_a_malformed_kept_latency_table_is_a_clear_error(tmp_path):
    """`zoo sweep bundle`'s latency/*.json files are read from a committed directory: anything but
    {"config": NAME, "bench": a bench table} is refused with the file's name, never a traceback."""
    from zoo.errors import ZooError
    from zoo.train.compare import latency_tables

    assert latency_tables(tmp_path) == []
    (tmp_path / "latency").mkdir()
    for i, text in enumerate(['[]', '{"config": "x"}', '{"config": "x", "bench": {"rows": 3}}']):
        bad = tmp_path / "latency" / f"{i}.json"
        bad.write_text(text)
        with pytest.raises(ZooError, match=f"{i}.json: not a latency record"):
            latency_tables(tmp_path)
        bad.unlink()


def test_stage2_curves_pair_each_evaluation_by_seed(capsys, tmp_path):
    """--curves kid: the metric at every stage-II evaluation the variant and its reference share, per seed,
    the shared value at T once, and per evaluation how many seeds had the variant ahead."""
    from zoo.train.compare import RunRecord, build_report, format_csv, format_markdown
    from zoo.errors import ZooError

    # (method, seed) -> logged (kimg, kid); a forked Baseline logs stage II only
    logged = {("dgl", 0): [(20.0, 1.5), (30.0, 1.2), (40.0, 0.9), (60.0, 0.7)],
              ("dgl", 1): [(30.0, 1.3), (40.0, 1.1), (60.0, 0.8)],
              ("baseline", 0): [(40.0, 1.0), (60.0, 0.75)],
              ("baseline", 1): [(40.0, 1.0), (60.0, 0.9)]}
    runs = [RunRecord(key=f"{m}-s{s}", name=f"{m}-s{s}", source="dir", status="FINISHED", config=SG2, method=m,
                      ch_mul="1/4", seed=s, lam=0.1 if m == "dgl" else 0.0, T_kimg=30, S_kimg=30,
                      metrics={"kid": pts[-1][1]}, end_time=1, metrics_info=INFO,
                      history_loader=lambda keys, pts=pts: {"metric/kid": pts} if "metric/kid" in keys else {})
            for (m, s), pts in logged.items()]
    report = build_report(runs, source={"kind": "dir", "runs_dir": "x"}, stats=False, curves="kid")
    (cfg,) = report["configs"]
    (curve,) = cfg["curves"]
    assert (curve["variant"], curve["baseline"], curve["kimg"]) == ("DGL-GAN (λ=0.1)", "Baseline", [40.0, 60.0])
    assert curve["seeds"]["0"] == {"T": 1.2, "variant": [0.9, 0.7], "baseline": [1.0, 0.75]}
    assert curve["seeds"]["1"] == {"T": 1.3, "variant": [1.1, 0.8], "baseline": [1.0, 0.9]}
    assert curve["better"] == [1, 2] and curve["counted"] == [2, 2]
    md = format_markdown({"source": {"kind": "dir", "runs_dir": "x"}, "notes": [], "configs": [cfg]})
    assert "| 0 | 1200 | 900.0 / 1000 | 700.0 / 750.0 |" in md
    assert "| DGL-GAN (λ=0.1) lower (better) |  | 1 of 2 | 2 of 2 |" in md
    import csv
    import io

    csv_rows = [r for r in csv.DictReader(io.StringIO(format_csv({"configs": [cfg]}))) if r["kind"] == "curve"]
    assert [(r["seeds"], r["kimg"], r["values"]) for r in csv_rows] == [
        ("0", "40.0", "0.9;1.0"), ("0", "60.0", "0.7;0.75"), ("1", "40.0", "1.1;1.0"), ("1", "60.0", "0.8;0.9")]
    if importlib.util.find_spec("matplotlib"):  # the html report (extra `report`) shows the same table
        from zoo.train.report import write_html

        page = write_html(report, runs, tmp_path).read_text()
        assert "at each evaluation of stage II" in page and "<td>900.0 / 1000</td>" in page and "2 of 2" in page
    assert not build_report(runs, source={"kind": "dir", "runs_dir": "x"}, stats=False)["configs"][0]["curves"]
    with pytest.raises(ZooError, match="--curves 'kd': not a metric"):
        build_report(runs, source={"kind": "dir", "runs_dir": "x"}, stats=False, curves="kd")
