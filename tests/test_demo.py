"""``make demo`` (scripts/demo.sh) end to end on tiny schedules, against a fake bundled registry (slow).

The demo reads the package's bundled registry (``zoo/weights/registry``), which a test must not write: the
script runs from a copy of the checkout whose bundled registry holds two tiny teachers (a few training
steps, no metrics), trained and published here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # minutes on 2 idle cores; far more on a busy machine
ROOT = Path(__file__).resolve().parents[1]


def _copy_checkout(dst: Path) -> Path:
    dst.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")
    for name in ("zoo", "train", "export", "serve", "scripts"):
        # never the real bundled entries: the copy gets the fake ones
        skip = lambda d, names: [n for n in names if n == "__pycache__" or (Path(d) == ROOT / "zoo" and n == "weights")]
        shutil.copytree(ROOT / name, dst / name, ignore=skip)
    return dst


def _env(checkout: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GANZOO_", "MLFLOW_", "DEMO_"))}
    env.update(PYTHONPATH=str(checkout), GANZOO_HOME=str(home), DEMO_PYTHON=sys.executable,
               DEMO_ZOO=f"{sys.executable} -m zoo.cli", DEMO_STAGE1_KIMG="0.064", DEMO_STAGE2_KIMG="0.064",
               DEMO_TRAIN_ARGS="--metrics none", DEMO_EVAL_N="64")
    return env


def _zoo(env, *args):
    subprocess.run([sys.executable, "-m", "zoo.cli", *args], env=env, check=True, capture_output=True, timeout=900)


def _demo(checkout: Path, out: Path, env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(checkout / "scripts" / "demo.sh"), str(out)], env=env, capture_output=True,
                          text=True, timeout=1800)


def test_demo_shows_the_shipped_zoo_then_compresses_its_teacher(tmp_path):
    checkout = _copy_checkout(tmp_path / "checkout")
    env = _env(checkout, tmp_path / "home")
    out = tmp_path / "demo"

    empty = _demo(checkout, out, env)  # no bundled entries: a clear refusal, nothing trained
    assert empty.returncode == 1 and "ships no trained entries" in empty.stderr
    assert not (out / "runs").exists()

    data = tmp_path / "data"
    _zoo(env, "data", "build", "fashion-mnist", "--out", str(data))
    bundled = checkout / "zoo" / "weights" / "registry"
    for config in ("stylegan2-fashion-mnist", "biggan-fashion-mnist"):
        run = tmp_path / f"teacher-{config}"
        _zoo(env, "train", "--config", config, "--preset", "demo", "--ch-mul", "1", "--stage1-kimg", "0.064",
             "--stage2-kimg", "0", "--metrics", "none", "--data", str(data), "--out", str(run), "--tracking-uri",
             "none", "--no-progress")
        _zoo(env, "publish", str(run), "--name", config, "--ch-mul", "1", "--registry", str(bundled))

    first = _demo(checkout, out, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    text = first.stdout
    assert "Part 1: the shipped zoo" in text and "Part 2: pipeline check" in text
    assert "same z gives a different" in text
    for png in ("stylegan2-fashion-mnist-1-v1.png", "biggan-fashion-mnist-1-v1.png"):
        assert (out / "shipped" / png).stat().st_size > 0
    assert "columns = classes 0..9" in text  # BigGAN: one column per class
    assert "tick " in first.stderr  # training progress is visible
    assert json.loads((out / "pipeline" / "eval-dgl-1_4.json").read_text())["n"] == 64
    assert (out / "exports" / "dgl-1_4" / "export.json").is_file()
    rows = json.loads((out / "pipeline" / "bench.json").read_text())["rows"]
    student = [r for r in rows if r["ch_mul"] == "1/4" and r["backend"] == "eager"]
    assert student and all(r["speedup_vs_full"] for r in student)  # measured against the shipped teacher
    assert any(r["ch_mul"] == "1/4" and r["backend"] == "onnx" for r in rows)  # the exported artifact
    index = json.loads((out / "registry" / "index.json").read_text())
    assert list(index["models"]["stylegan2-fashion-mnist"]) == ["1/4"]  # only what the demo made
    assert (out / "pipeline" / "dgl-1_4.png").stat().st_size > 0
    summary = json.loads((out / "runs" / "dgl-1_4" / "summary.json").read_text())
    assert summary["method"] == "dgl" and summary["teacher"]["ref"] == "stylegan2-fashion-mnist"

    again = _demo(checkout, out, env)  # resumable: every finished step is skipped
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for said in ("dgl-1_4 already trained", "already evaluated", "already exported", "already benchmarked",
                 "already published"):
        assert said in again.stdout
    assert "tick " not in again.stderr
