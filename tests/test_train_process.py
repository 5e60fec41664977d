"""Training across processes: a run killed with SIGKILL resumes with nothing lost, and two data-parallel
CPU processes (torchrun, gloo on 127.0.0.1) give the result of one process with the same global batch."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from train_helpers import SG2, TINY_ARCH, TINY_CLI, save_tiny_checkpoint, ticks, weights

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as the OMP_NUM_THREADS=1 subprocesses
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("teacher") / "t", SG2)


def train_args(out, teacher, *extra):
    return ["train", "--config", SG2, "--ch-mul", "1/2", "--teacher", str(teacher), "--out", str(out), *TINY_CLI,
            *extra]


def parameter_names(module_kind: str) -> set[str]:
    from zoo.models import build_discriminator, build_generator, get_config

    arch = get_config(SG2, "1/2", **TINY_ARCH[SG2])
    module = build_generator(arch) if module_kind == "G" else build_discriminator(arch)
    return {name for name, _ in module.named_parameters()}


def test_killed_run_resumes_with_nothing_lost(tmp_path, teacher):
    from zoo.cli import main

    schedule = ["--stage1-kimg", "0.048", "--stage2-kimg", "0.112", "--tracking-uri", "none"]  # 20 steps of 8
    out = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", *train_args(out, teacher, *schedule)], env=ENV,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            counters = out / "state" / "counters.json"
            try:
                if json.loads(counters.read_text())["nimg"] >= 64:  # in stage II
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9, (tmp_path / "killed.log").read_text()[-2000:]  # really killed mid-run
    assert not (out / "final").exists()

    assert main(train_args(out, teacher, *schedule, "--resume")) == 0
    assert main(train_args(tmp_path / "straight", teacher, *schedule)) == 0
    killed, straight = ticks(out), ticks(tmp_path / "straight")
    assert [r["nimg"] for r in killed] == [r["nimg"] for r in straight] == list(range(8, 161, 8))
    assert [r["stage"] for r in killed] == [1] * 6 + [2] * 14
    for a, b in zip(killed, straight):
        assert {k: v for k, v in a.items() if k.startswith(("loss/", "score/"))} == pytest.approx(
            {k: v for k, v in b.items() if k.startswith(("loss/", "score/"))}, rel=1e-5, abs=1e-6)
    for f in ("generator.safetensors", "generator_raw.safetensors", "discriminator.safetensors"):
        a, b = weights(out / "final" / f), weights(tmp_path / "straight/final" / f)
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kimg"] == 0.16 and summary["resumed"] is True


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path, teacher):
    from zoo.cli import main

    schedule = ["--stage1-kimg", "0.016", "--stage2-kimg", "0.016", "--device", "cpu"]  # 4 steps of 8 = 2 x 4
    assert main(train_args(tmp_path / "one/run", teacher, *schedule, "--batch-gpu", "4")) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "zoo.cli",
           *train_args(tmp_path / "two/run", teacher, *schedule)]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    one, two = tmp_path / "one/run/final", tmp_path / "two/run/final"
    for f, kind in (("generator_raw.safetensors", "G"), ("generator.safetensors", "G"),
                    ("discriminator.safetensors", "D")):
        a, b = weights(one / f), weights(two / f)
        names = parameter_names(kind)
        assert names <= a.keys()
        worst = max(float((a[k] - b[k]).abs().max()) for k in names)
        assert worst < 1e-5, (f, worst)
    # only rank 0 wrote: one start event, each tick once, one MLflow run
    summary = json.loads((tmp_path / "two/run/summary.json").read_text())
    assert summary["world_size"] == 2
    from zoo.train.tracking import read_log

    records = read_log(tmp_path / "two/run/log.jsonl")
    assert [r["event"] for r in records].count("start") == 1
    assert [r["nimg"] for r in ticks(tmp_path / "two/run")] == [8, 16, 24, 32]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'two' / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name(SG2).experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == summary["mlflow"]["run_id"]
