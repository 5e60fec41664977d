"""Train the embedded zoo's shipped models (teachers, DGL students, baselines) within a wall-clock budget.

Meant for one GPU (it runs all jobs of a phase concurrently); works on CPU too with small budgets.
Phases: a short probe measures throughput, the two teachers train for ``--teacher-seconds``, then every
student (DGL and baseline, each width) trains for about ``--student-seconds`` against the frozen
teacher discriminator.  Lengths are set in kimg from the measured rates (so the runs are ordinary,
reproducible ``zoo train`` runs with a fixed T and S); jobs still running at ``--deadline`` are killed
and reported.  Finished ``final/`` checkpoints are packed into ``OUT/zoo-runs.tar`` (split in 15 MB parts).

    PYTHONPATH=. python3 scripts/train_embedded_zoo.py --data .gpu --out $OUT --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

FAMILIES = {  # config -> (dataset folder, [(student width, method)])
    "stylegan2-emoji": ("emoji-portrait-64", [("1/2", "dgl"), ("1/4", "dgl"), ("1/8", "dgl"), ("1/2", "baseline")]),
    "biggan-emoji": ("emoji-groups-32", [("1/2", "dgl"), ("1/4", "dgl")]),
}


def zoo_train(config, ch_mul, data, out, device, extra, log):
    cmd = [sys.executable, "-m", "zoo.cli", "train", "--config", config, "--ch-mul", ch_mul, "--data", str(data),
           "--out", str(out), "--preset", "study", "--metrics", "none", "--tracking-uri", "none", "--no-progress",
           "--device", device, *extra]
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def run_all(jobs: dict, deadline: float) -> dict:
    """Wait for every Popen; kill what is still running at ``deadline``. Returns name -> returncode."""
    codes = {}
    while len(codes) < len(jobs):
        for name, proc in jobs.items():
            if name not in codes and proc.poll() is not None:
                codes[name] = proc.returncode
                print(f"  {name}: exit {proc.returncode} at {time.time() - START:.0f}s", flush=True)
        if time.time() > deadline:
            for name, proc in jobs.items():
                if name not in codes:
                    proc.kill()
                    codes[name] = "killed"
                    print(f"  {name}: killed at the deadline", flush=True)
        time.sleep(1)
    return codes


def rate(run: Path) -> float:
    """Images per second of a finished run."""
    s = json.loads((run / "summary.json").read_text())
    return s["kimg"] * 1000 / max(s["train_seconds"], 1e-6)


START = time.time()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".gpu")
    ap.add_argument("--out", default=os.environ.get("OUT", "out/embedded"))
    ap.add_argument("--runs", default="/tmp/zoo-runs", help="where the runs are written (only the pack goes to --out)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--teacher-seconds", type=float, default=170)
    ap.add_argument("--student-seconds", type=float, default=170)
    ap.add_argument("--deadline", type=float, default=500, help="seconds after start when jobs are killed")
    ap.add_argument("--probe-kimg", type=float, default=0.5)
    args = ap.parse_args()
    out, data = Path(args.out), Path(args.data)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    deadline = START + args.deadline

    print("probe", flush=True)
    probe = {c: zoo_train(c, "1", data / d, runs / f"probe-{c}", args.device,
                          ["--stage1-kimg", str(args.probe_kimg), "--stage2-kimg", "0"], runs / f"probe-{c}.log")
             for c, (d, _) in FAMILIES.items()}
    run_all(probe, deadline)
    rates = {c: rate(runs / f"probe-{c}") for c in FAMILIES}
    print("probe rates (img/s, concurrent):", rates, flush=True)

    print("teachers", flush=True)
    teacher_kimg = {c: round(r * args.teacher_seconds * 0.9 / 1000, 1) for c, r in rates.items()}
    teachers = {c: zoo_train(c, "1", data / d, runs / f"{c}-teacher", args.device,
                             ["--stage1-kimg", str(teacher_kimg[c]), "--stage2-kimg", "0"], runs / f"{c}-teacher.log")
                for c, (d, _) in FAMILIES.items()}
    run_all(teachers, deadline)

    print("students", flush=True)
    n_jobs = sum(len(w) for _, w in FAMILIES.values())
    jobs = {}
    for c, (d, widths) in FAMILIES.items():
        teacher = runs / f"{c}-teacher" / "final"
        if not teacher.is_dir():
            print(f"  no teacher for {c}; skipping its students", flush=True)
            continue
        # concurrent jobs share the GPU: assume throughput splits over n_jobs/2 (narrow nets are launch-bound)
        kimg = rates[c] * 2 / n_jobs * 2 * args.student_seconds * 0.75 / 1000
        T, S = round(kimg * 2 / 3, 1), round(kimg / 3, 1)
        for w, method in widths:
            name = f"{c}-{method}-{w.replace('/', '_')}"
            extra = ["--baseline"] if method == "baseline" else []
            jobs[name] = zoo_train(c, w, data / d, runs / name, args.device,
                                   ["--teacher", str(teacher), "--stage1-kimg", str(T), "--stage2-kimg", str(S),
                                    *extra], runs / f"{name}.log")
    run_all(jobs, deadline)

    out.mkdir(parents=True, exist_ok=True)
    tar_path = out / "zoo-runs.tar"
    with tarfile.open(tar_path, "w") as tar:
        for run in sorted(runs.iterdir()):
            if run.is_dir() and not run.name.startswith("probe") and (run / "final").is_dir():
                student = "teacher" not in run.name
                for f in sorted((run / "final").iterdir()):  # students ship G only; teachers G and D
                    if f.name != "generator_raw.safetensors" and not (student and f.name == "discriminator.safetensors"):
                        tar.add(f, arcname=f"{run.name}/final/{f.name}")
                for extra in ("summary.json", "log.jsonl"):
                    if (run / extra).exists():
                        tar.add(run / extra, arcname=f"{run.name}/{extra}")
            if run.suffix == ".log" and not run.name.startswith("probe"):
                tar.add(run, arcname=f"logs/{run.name}")
    subprocess.run(["split", "-b", "15M", "-d", str(tar_path), str(out / "zoo-runs.tar.")], check=True)
    tar_path.unlink()
    print("packed", sorted(p.name for p in out.iterdir()), f"in {time.time() - START:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
