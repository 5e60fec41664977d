"""`zoo sweep`: a study expands into dependent runs, runs resumably, pairs each Baseline with its DGL run."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from train_helpers import TINY_ARCH, SG2, weights

TINY_SET = ["tick_kimg=0.008", "snapshot_ticks=1", "image_ticks=1000", "monitor_batch=8", "grid_size=4",
            "metrics=[]", "batch=8"]


def _sweep_file(tmp_path: Path, **changes) -> Path:
    spec = {
        "name": "tiny", "config": SG2, "preset": "demo", "experiment": "tiny-study", "root": str(tmp_path / "root"),
        "data": {"spec": "random:32"}, "threads": 1,
        "arch": [f"{k}={v}" for k, v in TINY_ARCH[SG2].items()], "set": TINY_SET,
        "teacher": {"stage1_kimg": 0.016},
        "students": {"ch_mul": ["1/2"], "seeds": [0, 1], "stage1_kimg": 0.016, "stage2_kimg": 0.016,
                     "lambda": 0.1},
        "variants": [{"name": "dgl-lazy4", "seeds": [0], "dgl_interval": 4}],
    }
    spec.update(changes)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    return path


def test_a_sweep_expands_into_paired_runs(tmp_path):
    from zoo.train.sweep import load_sweep

    sweep = load_sweep(_sweep_file(tmp_path))
    runs = sweep.by_name()
    assert list(runs) == ["teacher", "1_2/dgl-s0", "1_2/baseline-s0", "1_2/dgl-lazy4-s0", "1_2/dgl-s1",
                          "1_2/baseline-s1"]
    teacher, dgl, base, lazy = (runs[n] for n in ["teacher", "1_2/dgl-s0", "1_2/baseline-s0", "1_2/dgl-lazy4-s0"])
    assert "--stage2-kimg" in teacher.argv and teacher.argv[teacher.argv.index("--stage2-kimg") + 1] == "0"
    assert dgl.after == ("teacher",) and dgl.needs.endswith("teacher/final/config.json")
    assert base.fork_from == dgl.out and "--baseline" in base.argv and base.after == ("1_2/dgl-s0",)
    assert lazy.fork_from == dgl.out and lazy.argv[lazy.argv.index("--dgl-interval") + 1] == "4"
    # equal budgets: every student has the same T and S
    for run in (dgl, base, lazy):
        assert run.argv[run.argv.index("--stage1-kimg") + 1] == "0.016"
        assert run.argv[run.argv.index("--stage2-kimg") + 1] == "0.016"
    # one MLflow store and experiment for the whole sweep
    assert all(f"sqlite:///{tmp_path / 'root' / 'mlruns.db'}" in r.argv and "tiny-study" in r.argv for r in runs.values())


def test_variants_take_lambda_and_stage_two_settings(tmp_path):
    """The paper's ablations as variants forked at T: lambda values and the D_bar-only G loss."""
    from zoo.train.sweep import load_sweep

    runs = load_sweep(_sweep_file(tmp_path, variants=[
        {"name": "lam0.3", "seeds": [0], "lambda": 0.3},
        {"name": "dbar-only", "seeds": [0], "set": ["stage2_student_adv=false"]}])).by_name()
    lam, only = runs["1_2/lam0.3-s0"], runs["1_2/dbar-only-s0"]
    assert lam.argv[lam.argv.index("--lambda") + 1] == "0.3" and lam.fork_from == runs["1_2/dgl-s0"].out
    assert only.argv[-4:-2] == ("--set", "stage2_student_adv=false") and "--teacher" in only.argv
    assert "1_2/dbar-only-s1" not in runs
    # an ablation of the same configuration is its own sweep: its runs never land in the main study's directories
    (tmp_path / "x").mkdir()
    other = load_sweep(_sweep_file(tmp_path / "x", name="tiny-ablation")).by_name()["1_2/dgl-s0"]
    assert Path(other.out).parent.parent.name == "tiny-ablation"
    assert Path(runs["1_2/dgl-s0"].out).parent.parent.name == "tiny"


def test_free_workers_take_the_runs_others_fork_from_first(tmp_path):
    from zoo.train.sweep import load_sweep, start_order

    sweep = load_sweep(_sweep_file(tmp_path))
    assert [r.name for r in start_order(sweep.runs)] == [
        "teacher", "1_2/dgl-s0", "1_2/dgl-s1", "1_2/baseline-s0", "1_2/dgl-lazy4-s0", "1_2/baseline-s1"]


def test_the_teacher_takes_every_core_and_the_students_share_them(tmp_path, monkeypatch):
    """"teacher": {"threads": 2} on 2 cores: the teacher runs alone, then two 1-thread students at once, and
    the running threads never exceed the cores."""
    import threading
    import time

    import zoo.train.sweep as sweep_mod

    sweep = sweep_mod.load_sweep(_sweep_file(tmp_path, teacher={"stage1_kimg": 0.016, "threads": 2}, variants=[]))
    runs = sweep.by_name()
    assert runs["teacher"].threads == 2 and runs["1_2/dgl-s0"].threads == 1
    lock, running, peaks = threading.Lock(), {}, []

    def fake_execute(run, log_dir):  # leaves the files a finished run leaves, so dependants become ready
        with lock:
            running[run.name] = run.threads
            peaks.append(dict(running))
        time.sleep(0.3)
        out = Path(run.out)
        for rel in ("final/config.json", "summary.json", "state_stage1/counters.json"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text("{}")
        with lock:
            del running[run.name]
        return 0

    monkeypatch.setattr(sweep_mod, "execute", fake_execute)
    assert sweep_mod.run_local(sweep, workers=2, cores=2, poll_s=0.05, say=lambda *_: None) == {
        name: 0 for name in runs}
    assert all(sum(p.values()) <= 2 for p in peaks)
    assert {"teacher": 2} in peaks and any(len(p) == 2 for p in peaks)  # alone, and students two at a time
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(sweep_mod.ZooError, match="threads"):
        sweep_mod.load_sweep(_sweep_file(bad, teacher={"stage1_kimg": 1, "threads": 0}))


def test_bad_sweep_files_are_clear_errors(tmp_path):
    from zoo.train.sweep import load_sweep
    from zoo.errors import ZooError

    bad = tmp_path / "bad.json"
    named = json.loads(_sweep_file(tmp_path).read_text())
    for text, message in [("[1, 2]", "JSON object"), ("{", "sweep file"), ('{"config": "x"}', "missing or bad"),
                          (json.dumps({**named, "name": "../escape"}), "name must be"),
                          (json.dumps({**named, "teacher": {**named["teacher"], "entry": "Tiny@"}}), "bad entry name"),
                          (json.dumps({**named, "teacher": {**named["teacher"], "entry": "tiny@"}}), "nothing after '@'"),
                          (json.dumps({**named, "teacher": {**named["teacher"], "entry": 2}}), "NAME\\[@VERSION\\]")]:
        bad.write_text(text)
        with pytest.raises(ZooError, match=message):
            load_sweep(bad)


def test_local_sweep_runs_resumes_and_skips_finished_runs(tmp_path):
    """End to end on this machine: every run finishes; each Baseline starts from its DGL run's stage I
    (identical weights at T); a second invocation starts nothing; the status table counts CPU time."""
    from zoo.train.sweep import load_sweep, run_local, run_status, status_table

    sweep = load_sweep(_sweep_file(tmp_path))
    results = run_local(sweep, workers=2, poll_s=0.2, say=lambda *_: None)
    assert results == {name: 0 for name in sweep.by_name()}, list((tmp_path / "root" / "logs").rglob("*.log"))
    runs = sweep.by_name()
    assert all(run_status(r)["status"] == "done" for r in runs.values())
    for seed in (0, 1):
        dgl, base = Path(runs[f"1_2/dgl-s{seed}"].out), Path(runs[f"1_2/baseline-s{seed}"].out)
        base_summary = json.loads((base / "summary.json").read_text())
        assert base_summary["method"] == "baseline" and base_summary["stage1_from"] == str(dgl)
        # the fork is exact: the baseline's stage-I state is the DGL run's
        stage1 = weights(dgl / "state_stage1" / "G.safetensors")
        assert base_summary["kimg"] == pytest.approx(0.032)
        assert set(stage1) == set(weights(base / "final" / "generator_raw.safetensors"))
        dgl_summary = json.loads((dgl / "summary.json").read_text())
        assert dgl_summary["lambda"] == 0.1 and dgl_summary["teacher"]["path"].endswith("teacher/final")
    lazy = json.loads((Path(runs["1_2/dgl-lazy4-s0"].out) / "summary.json").read_text())
    assert lazy["method"] == "dgl"
    # a second run of the sweep has nothing to do
    logs = sorted((tmp_path / "root" / "logs" / "tiny").glob("*.log"))
    sizes = [p.stat().st_size for p in logs]
    assert run_local(sweep, workers=2, poll_s=0.2, say=lambda *_: None) == results
    assert [p.stat().st_size for p in logs] == sizes
    rows, cpu_hours = status_table(sweep)
    assert all(r["status"] == "done" for r in rows) and cpu_hours > 0


def test_a_teacher_the_sweep_file_lengthens_is_resumed(tmp_path):
    """Until its KID curve flattens: a finished teacher whose sweep file now asks for a larger T is 'partial'
    and continues from its last state (``zoo train --resume``); the students' runs do not move."""
    from zoo.train.sweep import command, load_sweep, run_local, run_status

    say = lambda *_: None  # noqa: E731
    short = load_sweep(_sweep_file(tmp_path, teacher={"stage1_kimg": 0.016})).only(["1"])
    assert run_local(short, workers=1, poll_s=0.1, say=say) == {"teacher": 0}
    assert run_status(short.by_name()["teacher"])["status"] == "done"
    longer = load_sweep(_sweep_file(tmp_path, teacher={"stage1_kimg": 0.032})).only(["1"])
    teacher = longer.by_name()["teacher"]
    assert run_status(teacher)["status"] == "partial" and command(teacher)[-1] == "--resume"
    assert run_local(longer, workers=1, poll_s=0.1, say=say) == {"teacher": 0}
    summary = json.loads((Path(teacher.out) / "summary.json").read_text())
    assert summary["kimg"] == pytest.approx(0.032) and run_status(teacher)["status"] == "done"


def test_a_finished_student_of_another_schedule_is_not_counted_as_done(tmp_path):
    """Shortening or lengthening the students' T + S in the sweep file must not let runs (or archived records)
    of the old schedule pass for the new one; the teacher is exempt (it is lengthened, above)."""
    from zoo.errors import ZooError
    from zoo.train.sweep import load_sweep, run_status

    sweep = load_sweep(_sweep_file(tmp_path, results="results/tiny"))
    student = sweep.by_name()["1_2/dgl-s0"]
    assert student.kimg == pytest.approx(0.032)

    def finish(where: Path, t: float, s: float) -> None:
        (where / "final").mkdir(parents=True, exist_ok=True)
        (where / "final" / "config.json").write_text("{}")
        (where / "summary.json").write_text(json.dumps({"T_kimg": t, "S_kimg": s, "kimg": t + s}))

    finish(Path(student.out), 0.016, 0.016)
    assert run_status(student)["status"] == "done"
    finish(Path(student.out), 0.008, 0.008)
    with pytest.raises(ZooError, match=r"T \+ S = 0.008 \+ 0.008 kimg, the sweep file now gives 0.032; move"):
        run_status(student)
    shutil.rmtree(student.out)
    finish(Path(student.record), 0.03, 0.03)  # an archived record of the old schedule
    with pytest.raises(ZooError, match=str(student.record)):
        run_status(student)


def test_a_run_held_by_another_process_is_not_started_twice(tmp_path):
    from zoo.train.runlock import lock_run
    from zoo.train.sweep import execute, load_sweep, run_status

    sweep = load_sweep(_sweep_file(tmp_path))
    teacher = sweep.by_name()["teacher"]
    held = lock_run(teacher.out)
    (Path(teacher.out) / "log.jsonl").write_text("{}\n")  # a live run before its first snapshot
    assert run_status(teacher)["status"] == "running"
    code = execute(teacher, tmp_path / "logs")
    assert code != 0 and (Path(teacher.out) / "log.jsonl").exists()  # refused, and nothing was deleted
    held.close()
    assert run_status(teacher)["status"] == "ready"


def test_plan_and_status_have_no_side_effects(tmp_path, capsys):
    from zoo.cli import main

    path = _sweep_file(tmp_path)
    out = tmp_path / "root" / "runs" / "tiny" / "teacher"
    out.mkdir(parents=True)
    (out / "log.jsonl").write_text("{}\n")
    assert main(["sweep", "plan", str(path)]) == 0
    assert "teacher" in capsys.readouterr().out
    assert main(["sweep", "status", str(path)]) == 0
    assert (out / "log.jsonl").exists()
    text = capsys.readouterr().out
    assert "teacher" in text and "0/6 done" in text
    # each row shows the run's process CPU hours and its training wall hours apart (they differ on a busy machine)
    assert all("cpu" in line and "wall" in line for line in text.splitlines() if line.startswith("1_2/"))


@pytest.mark.slow
def test_ray_sweep(tmp_path):
    """The same sweep as Ray tasks on a local Ray instance (dependencies as object refs)."""
    ray = pytest.importorskip("ray")
    from zoo.train.sweep import load_sweep, run_ray, run_status

    sweep = load_sweep(_sweep_file(tmp_path, variants=[]))
    try:
        results = run_ray(sweep, None)
    finally:
        ray.shutdown()
    assert results == {name: 0 for name in sweep.by_name()}
    assert all(run_status(r)["status"] == "done" for r in sweep.runs)
    assert torch.isfinite(torch.tensor(json.loads(
        (Path(sweep.by_name()["1_2/baseline-s1"].out) / "summary.json").read_text())["kimg"]))


def test_output_into_a_closed_pipe_is_not_a_traceback(tmp_path):
    """`zoo sweep status FILE | head -1`: the reader leaves early; the command still exits cleanly."""
    import subprocess
    import sys

    path = _sweep_file(tmp_path)
    proc = subprocess.run(f"{sys.executable} -m zoo.cli sweep status {path} | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("teacher") and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_widths_and_archived_records(tmp_path, capsys):
    """A run recorded in the sweep's results directory is done on any machine; --widths limits a sweep."""
    from zoo.cli import main
    from zoo.errors import ZooError
    from zoo.train.sweep import load_sweep, run_local, run_status

    path = _sweep_file(tmp_path, results="results/tiny",
                       students={"ch_mul": ["1/2", "1/4"], "seeds": [0], "stage1_kimg": 0.016, "stage2_kimg": 0.016})
    sweep = load_sweep(path)
    assert sweep.widths() == ["1", "1/2", "1/4"]
    assert [r.name for r in sweep.only(["1/4"]).runs] == ["1_4/dgl-s0", "1_4/baseline-s0", "1_4/dgl-lazy4-s0"]
    with pytest.raises(ZooError, match=r"no width 1/3 \(its widths: 1, 1/2, 1/4\)"):
        sweep.only(["1/3"])
    for run in sweep.runs:  # records as `zoo sweep archive` writes them
        assert run.record == str(tmp_path / "results" / "tiny" / run.name)
        (Path(run.record) / "final").mkdir(parents=True)
        (Path(run.record) / "summary.json").write_text(json.dumps({"kimg": 0.032, "cpu_seconds": 36.0}))
        (Path(run.record) / "final" / "config.json").write_text("{}")
    assert all(run_status(r) == {"status": "done", "archived": True, "kimg": 0.032, "train_seconds": None,
                                 "cpu_seconds": 36.0} for r in sweep.runs)
    assert run_local(sweep, workers=2, poll_s=0.1, say=lambda *_: None) == {r.name: 0 for r in sweep.runs}
    assert not (tmp_path / "root").exists()  # nothing was started, nothing written
    assert main(["sweep", "status", str(path), "--widths", "1/2"]) == 0
    out = capsys.readouterr().out
    assert out.count("archived") == 3 and "teacher" not in out and "0.03 CPU-hours" in out
    assert main(["sweep", "archive", str(path)]) == 0  # already recorded: nothing to do
    for bad in ("/abs/results", "../outside"):
        with pytest.raises(ZooError, match="results"):
            load_sweep(_sweep_file(tmp_path, results=bad))
