"""``zoo sweep``: a study's training runs, launched resumably into one MLflow experiment.

A sweep file (JSON; the project's own are in ``studies/``) names a configuration, the teacher's length,
the student widths, seeds and schedule, and optional variants.  It expands into runs that depend on
each other:

    teacher                      ch_mul 1, S = 0                          needs nothing
    <w>/dgl-s<seed>              stage I, then stage II with lambda       needs teacher/final
    <w>/baseline-s<seed>         lambda = 0, forked at T from the DGL run needs <w>/dgl-s<seed>/state_stage1
    <w>/<variant>-s<seed>        the lazy term, a lambda, "set": [...]    needs <w>/dgl-s<seed>/state_stage1

so every Baseline shares its DGL run's stage I bit for bit (the paired comparison), and budgets are equal
by construction (same T + S).  Each run is one ``zoo train`` process; running the sweep again resumes
unfinished runs (``--resume``) and skips finished ones, so a sweep survives being killed at any moment
(it loses at most one snapshot interval per run).

Executors: ``local`` (default): N worker processes on this machine, each run pinned to ``threads`` cores;
``--ray [ADDRESS]``: every run a Ray task (``num_cpus = threads``) whose dependencies are the upstream
tasks, on a local Ray instance or an existing cluster (the sweep root must then be on a shared
filesystem).  The tables come from the MLflow runs: ``zoo compare --experiment NAME``.  ``zoo sweep bundle``
ships the finished study's teacher and best DGL student per width into a registry (:mod:`zoo.train.bundle`).

A study longer than the life of one machine (a working session here is 3 hours, and the next session may
get a new machine) goes in width-sized pieces, each finished on one machine and recorded in the repository:

    "results": "results/<name>"     ``zoo sweep archive`` copies each finished width's run records there
                                    (summary.json, log.jsonl, final/{config,metadata,manifest}.json, no
                                    weights); a run recorded there counts as done, and ``zoo compare
                                    --runs-dir`` reads the tables from it
    "teacher": {"entry": "N@V"}     the teacher shipped by ``zoo sweep bundle``: students take D-bar from that
                                    registry entry (checksummed) instead of the teacher run's directory

``zoo sweep run --widths 1/2,1/4`` limits a session to the widths it can finish.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from zoo.integrity import read_json
from zoo.train.runlock import LOCK_FILE, is_locked, lock_run
from zoo.errors import ZooError
from zoo.registry.model import split_ref

TEACHER = "teacher"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Run:
    """One ``zoo train`` invocation of a sweep and what it waits for."""

    name: str                              # e.g. "1_2/dgl-s0"
    out: str                               # run directory
    argv: tuple[str, ...]                  # zoo train arguments without --resume / --stage1-from
    needs: Optional[str] = None            # a file that must exist before the run can start
    fork_from: Optional[str] = None        # --stage1-from this run directory on a fresh start
    after: tuple[str, ...] = ()            # names of the runs it depends on (for Ray)
    threads: int = 1
    width: str = "1"                       # ch_mul: the unit that is archived and bundled whole
    record: Optional[str] = None           # where ``zoo sweep archive`` keeps this run's record
    kimg: float = 0.0                      # its length in the sweep file (T + S): a teacher short of it grows


@dataclass
class Sweep:
    name: str
    root: Path
    runs: list[Run] = field(default_factory=list)
    data: Optional[Path] = None
    data_build: tuple[str, ...] = ()
    results: Optional[Path] = None         # the committed records of finished widths
    teacher_entry: Optional[str] = None    # registry entry NAME@VERSION of the shipped teacher

    def by_name(self) -> dict[str, Run]:
        return {r.name: r for r in self.runs}

    def widths(self) -> list[str]:
        return list(dict.fromkeys(r.width for r in self.runs))

    def only(self, widths: Optional[list[str]]) -> "Sweep":
        """The same sweep limited to ``widths`` ("1" is the teacher), which must be the sweep's."""
        if not widths:
            return self
        unknown = [w for w in widths if w not in self.widths()]
        if unknown:
            raise ZooError(f"sweep {self.name}: no width {', '.join(unknown)} (its widths: {', '.join(self.widths())})")
        return dataclasses.replace(self, runs=[r for r in self.runs if r.width in widths])


def _width_dir(ch_mul: str) -> str:
    return str(ch_mul).replace("/", "_")


def load_sweep(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Sweep:
    """Expand a sweep file into its runs (no side effects)."""
    path = Path(path)
    try:
        sweep_json = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ZooError(f"sweep file {path}: {exc}") from None
    if not isinstance(sweep_json, dict):
        raise ZooError(f"sweep file {path}: expected a JSON object")
    try:
        config, preset, experiment = sweep_json["config"], sweep_json.get("preset", "study"), sweep_json["experiment"]
        root = Path(os.path.expanduser(str(root or sweep_json["root"])))
        teacher, students = sweep_json["teacher"], sweep_json["students"]
        widths, seeds = [str(w) for w in students["ch_mul"]], [int(s) for s in students["seeds"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ZooError(f"sweep file {path}: missing or bad field {exc}") from None
    threads = int(sweep_json.get("threads", 1))
    # the teacher runs alone (every student waits for it unless D-bar is a shipped entry), so it may take
    # every core: "teacher": {"threads": 2}
    teacher_threads = int(teacher.get("threads", threads))
    if min(threads, teacher_threads) < 1:
        raise ZooError(f"sweep file {path}: threads must be >= 1")
    results = None
    if sweep_json.get("results") is not None:
        from zoo.integrity import check_relpath

        results = path.parent.resolve() / check_relpath(sweep_json["results"], "results (relative to the sweep file)")
    teacher_entry = teacher.get("entry")
    if teacher_entry is not None:
        try:
            if not isinstance(teacher_entry, str):  # split_ref would take 2 for the name "2"
                raise ZooError(f"got {teacher_entry!r:.80}")
            split_ref(teacher_entry)
        except ZooError as exc:
            raise ZooError(f"sweep file {path}: teacher.entry must be a registry entry NAME[@VERSION] ({exc})") from None
    data = sweep_json.get("data") or {}
    data_path = (root / data["path"]) if data.get("path") else None
    sweep_name = str(sweep_json.get("name", path.stem))
    if not _NAME.fullmatch(sweep_name):  # it names directories (runs/<name>, logs/<name>)
        raise ZooError(f"sweep file {path}: name must be letters, digits, '.', '_' or '-', "
                       f"got {sweep_name!r:.80}")
    runs_dir = root / "runs" / sweep_name  # two sweeps of one configuration never share a run directory
    common = ["--config", config, "--preset", preset, "--tracking-uri", f"sqlite:///{root / 'mlruns.db'}",
              "--experiment", experiment, "--no-progress"]
    if data_path is not None:
        common += ["--data", str(data_path)]
    elif data.get("spec"):  # e.g. "random:32" (smoke tests)
        common += ["--data", str(data["spec"])]
    for item in sweep_json.get("arch", []):  # architecture overrides for every run (tests, experiments)
        common += ["--arch", str(item)]
    for item in sweep_json.get("set", []):  # training overrides for every run, the teacher included
        common += ["--set", str(item)]

    def record(name: str) -> Optional[str]:
        return str(results / name) if results is not None else None

    teacher_out, teacher_kimg = runs_dir / TEACHER, float(teacher["stage1_kimg"])
    runs = [Run(TEACHER, str(teacher_out), tuple(common + [
        "--ch-mul", "1", "--stage1-kimg", f"{teacher_kimg:g}", "--stage2-kimg", "0",
        "--seed", str(int(teacher.get("seed", 0))), "--out", str(teacher_out)]), threads=teacher_threads,
        record=record(TEACHER), kimg=teacher_kimg)]
    student_t, student_s = float(students["stage1_kimg"]), float(students["stage2_kimg"])
    schedule = ["--stage1-kimg", f"{student_t:g}", "--stage2-kimg", f"{student_s:g}"]
    teacher_final = teacher_out / "final"
    # D-bar: the shipped entry once there is one (no dependency on this machine's teacher run), else the run's
    teacher_arg = teacher_entry or str(teacher_final)
    teacher_needs = None if teacher_entry else str(teacher_final / "config.json")
    teacher_after = () if teacher_entry else (TEACHER,)
    for w in widths:
        for seed in seeds:
            base = common + schedule + ["--ch-mul", w, "--seed", str(seed)]
            for item in students.get("set", []):  # student-only overrides (the teacher's settings stay fixed)
                base += ["--set", str(item)]
            dgl_name, dgl_out = f"{_width_dir(w)}/dgl-s{seed}", runs_dir / _width_dir(w) / f"dgl-s{seed}"
            lam_args = ["--lambda", f"{float(students['lambda']):g}"] if "lambda" in students else []
            runs.append(Run(dgl_name, str(dgl_out), tuple(base + lam_args + ["--teacher", teacher_arg,
                                                                        "--out", str(dgl_out)]),
                            needs=teacher_needs, after=teacher_after, threads=threads, width=w,
                            record=record(dgl_name), kimg=student_t + student_s))
            forked = [("baseline", ["--baseline"])]
            for variant in sweep_json.get("variants", []):
                if w in [str(x) for x in variant.get("ch_mul", widths)] and seed in variant.get("seeds", seeds):
                    extra = ["--teacher", teacher_arg]
                    if "lambda" in variant:
                        extra += ["--lambda", f"{float(variant['lambda']):g}"]
                    if "dgl_interval" in variant:
                        extra += ["--dgl-interval", str(int(variant["dgl_interval"]))]
                    for item in variant.get("set", []):  # stage-II settings, e.g. stage2_student_adv=false
                        extra += ["--set", str(item)]
                    forked.append((variant["name"], extra))
            for method, extra in forked:
                out = runs_dir / _width_dir(w) / f"{method}-s{seed}"
                name = f"{_width_dir(w)}/{method}-s{seed}"
                runs.append(Run(name, str(out), tuple(base + extra + ["--out", str(out)]),
                                needs=str(dgl_out / "state_stage1" / "counters.json"), fork_from=str(dgl_out),
                                after=(dgl_name,), threads=threads, width=w, record=record(name),
                                kimg=student_t + student_s))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ZooError(f"sweep file {path}: two runs share a name (variant names must be unique)")
    return Sweep(name=sweep_name, root=root, runs=runs, data=data_path,
                 data_build=tuple(str(a) for a in data.get("build", [])), results=results,
                 teacher_entry=teacher_entry)


# ------------------------------------------------------------------------------------------ one run

def run_status(run: Run) -> dict[str, Any]:
    """'done' (finished here, or recorded by ``zoo sweep archive``: then ``archived`` is True), 'running' (a
    process holds the run), 'partial' (a resumable state), 'ready' (can start), or 'waiting' (a dependency
    is missing)."""
    out = Path(run.out)
    for where, archived in ((out, False), (Path(run.record) if run.record else None, True)):
        if where is not None and (where / "summary.json").is_file() and (where / "final" / "config.json").is_file():
            info = read_json(where / "summary.json")  # a regular file of bounded size (records come from git)
            if not archived and _lengthened(run, info) and (out / "state").is_dir():
                break  # a teacher the sweep file now asks more kimg of: it continues from its last state
            _check_schedule(run, info, where)
            return {"status": "done", "archived": archived, "kimg": info.get("kimg"),
                    "train_seconds": info.get("train_seconds"), "cpu_seconds": info.get("cpu_seconds")}
    saved = {"kimg": 0.0, "train_seconds": 0.0, "cpu_seconds": 0.0}
    for state in (out / "state", out / ".state.old"):
        counters = state / "counters.json"
        if counters.is_file():
            c = json.loads(counters.read_text())
            saved = {"kimg": c.get("nimg", 0) / 1000, "train_seconds": c.get("train_seconds"),
                     "cpu_seconds": c.get("cpu_seconds")}
            break
    if is_locked(out):
        return {"status": "running", **saved}
    if saved["kimg"] or (out / "state").is_dir() or (out / ".state.old").is_dir():
        return {"status": "partial", **saved}
    if run.needs and not Path(run.needs).exists():
        return {"status": "waiting", "kimg": 0.0, "train_seconds": 0.0, "cpu_seconds": 0.0}
    return {"status": "ready", "kimg": 0.0, "train_seconds": 0.0, "cpu_seconds": 0.0}


def _check_schedule(run: Run, summary: dict[str, Any], where: Path) -> None:
    """A finished student of another T + S than the sweep file's is not this sweep's run: counting it as done
    would mix two schedules in one table (the comparison pairs by schedule, the runner does not)."""
    if run.name == TEACHER or not run.kimg:
        return
    t, s = summary.get("T_kimg"), summary.get("S_kimg")
    if isinstance(t, (int, float)) and isinstance(s, (int, float)) and abs(t + s - run.kimg) > 1e-9:
        raise ZooError(f"run {run.name}: {where} finished with T + S = {t:g} + {s:g} kimg, the sweep file now gives "
                       f"{run.kimg:g}; move that directory aside (or restore the schedule) and run again")


def _lengthened(run: Run, summary: dict[str, Any]) -> bool:
    """The teacher run finished short of the T its sweep file now gives (``zoo train`` lengthens a teacher
    on --resume; a student's T and S are fixed, since its Baseline forks at T)."""
    kimg = summary.get("kimg")
    return run.name == TEACHER and isinstance(kimg, (int, float)) and kimg < run.kimg - 1e-9


def command(run: Run) -> list[str]:
    """The ``zoo train`` command that starts or continues ``run`` now (no side effects)."""
    argv = [sys.executable, "-m", "zoo.cli", "train", *run.argv]
    if run_status(run)["status"] == "partial":
        return argv + ["--resume"]
    if run.fork_from:
        argv += ["--stage1-from", run.fork_from]
    return argv


def execute(run: Run, log_dir: str | os.PathLike) -> int:
    """Start or resume one run to its end; returns the exit status of ``zoo train``."""
    status = run_status(run)["status"]
    if status == "done":
        return 0
    out = Path(run.out)
    if status == "ready" and out.exists():
        # a run that died before its first snapshot left only logs and images: it restarts from 0 either
        # way, and `zoo train` refuses a non-empty --out.  Only under the run's lock, so never a live run.
        with lock_run(out):
            for child in out.iterdir():
                if child.name != LOCK_FILE:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    log = Path(log_dir) / (run.name.replace("/", "__") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(run.threads), "MKL_NUM_THREADS": str(run.threads)}
    with open(log, "a") as fh:
        fh.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command(run))}\n")
        fh.flush()
        return subprocess.run(command(run), stdout=fh, stderr=subprocess.STDOUT, env=env).returncode


# ------------------------------------------------------------------------------------------ records

# what ``zoo sweep archive`` keeps of a finished run: everything ``zoo compare --runs-dir`` reads, no weights
RECORD_FILES = ("summary.json", "log.jsonl", "final/config.json", "final/metadata.json", "final/manifest.json")
# beside them, ``zoo sweep bundle`` keeps each whole bench table it measured ({"config", "bench"}), which
# holds the shipped teacher's same-run latency that no entry's metadata can take once published
LATENCY_DIR = "latency"


def archive(sweep: Sweep, say=print) -> list[str]:
    """Copy the records of every width whose runs are all finished into ``sweep.results`` (each run's
    record appears whole or not at all); returns the names of the runs archived now.  A width with an
    unfinished run is left out: its finished runs cannot be paired (a Baseline forks from its DGL run's
    stage-I state, which only this machine has)."""
    from zoo.integrity import fsync_tree, staging_dir

    if sweep.results is None:
        raise ZooError(f"sweep {sweep.name}: the sweep file names no \"results\" directory to archive into")
    archived = []
    for width in sweep.widths():
        runs = [r for r in sweep.runs if r.width == width]
        status = {r.name: run_status(r) for r in runs}
        todo = [r for r in runs if status[r.name]["status"] == "done" and not Path(str(r.record)).is_dir()]
        unfinished = [r.name for r in runs if status[r.name]["status"] != "done"]
        if todo and unfinished:
            say(f"width {width}: not archived, {len(unfinished)} of {len(runs)} runs unfinished "
                f"({', '.join(unfinished)})")
            continue
        for run in todo:
            with staging_dir(str(run.record)) as tmp:
                for rel in RECORD_FILES:
                    if (Path(run.out) / rel).is_file():
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(Path(run.out) / rel, tmp / rel)
                fsync_tree(tmp)
            archived.append(run.name)
        if todo:
            say(f"width {width}: archived {len(todo)} run(s) into {sweep.results}")
    return archived


# ------------------------------------------------------------------------------------------ executors

def start_order(runs: list[Run]) -> list[Run]:
    """The order in which free workers take ready runs: every run that others fork from or wait for (the
    teacher, each DGL run) before the runs that depend on it, otherwise as listed.  The runs with dependents
    are also the long ones (a DGL run's stage II evaluates the full-width D_bar), so starting a Baseline
    while a DGL run is still ready leaves a worker idle at the end of the width."""
    upstream = {dep for run in runs for dep in run.after}
    return sorted(runs, key=lambda run: run.name not in upstream)


def run_local(sweep: Sweep, workers: int, poll_s: float = 5.0, say=print,
              cores: Optional[int] = None) -> dict[str, int]:
    """Run the sweep with up to ``workers`` concurrent ``zoo train`` processes on this machine, whose
    threads together fit ``cores`` (default: this machine's; a run wider than that still runs, alone)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    cores = cores or os.cpu_count() or 1

    pending, failed, results = {r.name: r for r in start_order(sweep.runs)}, set(), {}
    by_name = sweep.by_name()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        running: dict[Any, str] = {}
        while pending or running:
            for name, run in list(pending.items()):
                if len(running) >= workers:
                    break
                if running and sum(by_name[n].threads for n in running.values()) + run.threads > cores:
                    continue  # a narrower run further down may fit
                if any(dep in failed for dep in run.after):
                    failed.add(name)
                    results[name] = -1
                    del pending[name]
                    say(f"skip {name}: {', '.join(d for d in run.after if d in failed)} failed")
                    continue
                if run_status(run)["status"] in ("ready", "partial", "done"):  # not 'running' elsewhere
                    say(f"start {name}")
                    running[pool.submit(execute, run, sweep.root / "logs" / sweep.name)] = name
                    del pending[name]
            elsewhere = [n for n, r in pending.items() if run_status(r)["status"] == "running"]
            if not running and not elsewhere:
                if pending:  # nothing can run and nothing runs: a dependency never appeared
                    blocked = ", ".join(f"{n} (needs {by_name[n].needs})" for n in pending)
                    raise ZooError(f"sweep {sweep.name}: stuck, waiting for {blocked}")
                break
            if not running:  # only runs held by another process: wait for them
                time.sleep(poll_s)
                continue
            done, _ = wait(list(running), timeout=poll_s, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                results[name] = code = future.result()
                say(f"{'done' if code == 0 else f'FAILED ({code})'} {name}")
                if code != 0:
                    failed.add(name)
    return results


def run_ray(sweep: Sweep, address: str | None) -> dict[str, int]:
    """Run the sweep as Ray tasks: one per run, ``num_cpus = threads``, dependencies as object refs."""
    try:
        import ray
    except ImportError:
        raise ZooError("--ray needs Ray: pip install 'dglgan-zoo[ray]'") from None
    ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False)

    @ray.remote
    def ray_execute(run_fields: dict, log_dir: str, *upstream: int) -> int:
        if any(code != 0 for code in upstream):
            return -1
        return execute(Run(**run_fields), log_dir)

    refs: dict[str, Any] = {}
    for run in sweep.runs:  # load_sweep lists every run after the runs it needs
        upstream = [refs[name] for name in run.after if name in refs]  # --widths may leave the teacher out
        refs[run.name] = ray_execute.options(num_cpus=run.threads).remote(
            asdict(run), str(sweep.root / "logs" / sweep.name), *upstream)
    return dict(zip(refs, ray.get(list(refs.values()))))


# ------------------------------------------------------------------------------------------ CLI

def status_table(sweep: Sweep) -> tuple[list[dict[str, Any]], float]:
    """Each run's status, and the CPU-hours behind the sweep so far: the processes' own CPU time where
    the run recorded it (cpu_seconds), else its training wall time x threads."""
    rows, cpu_seconds = [], 0.0
    for run in sweep.runs:
        st = run_status(run)
        cpu_seconds += st.get("cpu_seconds") or (st.get("train_seconds") or 0.0) * run.threads
        rows.append({"run": run.name, **st})
    return rows, cpu_seconds / 3600


def build_data(sweep: Sweep) -> None:
    if sweep.data is None or sweep.data.exists() or not sweep.data_build:
        return
    code = subprocess.run([sys.executable, "-m", "zoo.cli", "data", "build", *sweep.data_build,
                           "--out", str(sweep.data), "--quiet"]).returncode
    if code != 0:
        raise ZooError(f"building the sweep's dataset {sweep.data} failed (exit status {code})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["run", "status", "plan", "archive", "bundle"],
                        help="run: start/resume every run; status: progress and CPU-hours; plan: the commands; "
                             "archive: record finished widths in the sweep's results directory; "
                             "bundle: publish the finished sweep's teacher and best DGL student per width into a "
                             "registry (train/bundle.py)")
    parser.add_argument("sweep", help="sweep file (JSON), e.g. studies/stylegan2-fashion-mnist.json")
    parser.add_argument("--root", default=None, help="where runs, logs and mlruns.db live (default: the file's root)")
    parser.add_argument("--workers", type=int, default=None,
                        help="concurrent runs on this machine (default: CPU cores // threads per run)")
    parser.add_argument("--widths", default=None, metavar="W,W",
                        help="only these widths, e.g. 1/2,1/4 (1 = the teacher): what one session can finish")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run on Ray: a local instance (no ADDRESS) or a cluster (ADDRESS, e.g. ray://host:10001)")
    bundle = parser.add_argument_group("bundle")
    bundle.add_argument("--into", default=None, metavar="DIR",
                        help="registry directory to bundle into (default: the package's zoo/weights/registry)")
    bundle.add_argument("--budget-mb", type=float, default=None,
                        help="refuse if the registry would exceed this many MB (default 80)")
    bundle.add_argument("--dry-run", action="store_true", help="build, verify and size the bundle; write nothing")
    bundle.add_argument("--no-bench", action="store_true", help="do not measure latency (no latency rows)")


def parse_widths(text: Optional[str]) -> Optional[list[str]]:
    return [w.strip() for w in text.split(",") if w.strip()] if text else None


def run(args) -> int:
    if args.action == "bundle":
        from zoo.train.bundle import run as run_bundle

        return run_bundle(args)
    sweep = load_sweep(args.sweep, args.root).only(parse_widths(args.widths))
    if args.action == "archive":
        archive(sweep)
        return 0
    if args.action == "plan":
        for r in sweep.runs:
            print(f"{r.name:<24} {' '.join(command(r) if run_status(r)['status'] != 'waiting' else r.argv)}")
        return 0
    if args.action == "status":
        rows, cpu_hours = status_table(sweep)
        for row in rows:
            status = "archived" if row.get("archived") else row["status"]
            cpu = f"{row['cpu_seconds'] / 3600:.2f}" if row.get("cpu_seconds") is not None else "-"
            print(f"{row['run']:<24} {status:<8} {row['kimg'] or 0:>8.1f} kimg  cpu {cpu:>5} h  "
                  f"wall {(row['train_seconds'] or 0) / 3600:.2f} h")
        print(f"{sum(r['status'] == 'done' for r in rows)}/{len(rows)} done; {cpu_hours:.2f} CPU-hours of training "
              "so far (process CPU time; wall time x threads for runs that did not record it)")
        return 0
    if args.workers is not None and args.workers < 1:
        raise ZooError("--workers must be >= 1")
    build_data(sweep)
    if args.ray is not None:
        results = run_ray(sweep, args.ray or None)
    else:
        threads = min(r.threads for r in sweep.runs)  # run_local keeps the running threads within the cores
        results = run_local(sweep, args.workers or max(1, (os.cpu_count() or 1) // threads))
    bad = {k: v for k, v in results.items() if v != 0}
    if bad:
        print(f"zoo sweep: {len(bad)} run(s) failed: {', '.join(bad)} (logs in {sweep.root / 'logs' / sweep.name})",
              file=sys.stderr)
        return 1
    return 0
