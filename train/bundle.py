"""``zoo sweep bundle STUDY.json``: a finished study's teacher and DGL students into a registry, all or nothing.

What is shipped (one entry per width, under the study's configuration name):

* the teacher (ch_mul 1): ``G_ema`` and ``D`` (the frozen critic D̄ a user needs to compress further);
* per student width, the EMA generator of one DGL run: the seed with the lowest final KID among that
  width's ``<w>/dgl-s<seed>`` runs (the selection is recorded in the metadata).  Baselines and variants are
  not shipped; they are the study's controls.

Each entry goes through :func:`zoo.registry.publish.publish` (the one publishing path) with extra metadata:
``latency`` rows measured by ``zoo bench`` (eager, and ONNX Runtime when installed) on this machine,
``metrics_info`` (the basis of every metric), and a ``bundle`` block (role, study and run, the data and
its licence from the dataset's ``dataset.json``, the teacher entry a student was compressed from, the
seed selection, the MLflow run id); and a ``MODEL_CARD.md`` (:func:`zoo.registry.card.entry_card`).

All or nothing: every entry is published into a staging registry beside the target (same file system),
verified and measured against the size budget; only then are the new entry directories moved into the
target and its ``index.json`` replaced in one rename, under the target's lock.  A failure before that
rename leaves the target as it was.  Running the command again when every entry's generator is already
the target's latest version of that width does nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from zoo.errors import ZooError
from zoo.integrity import read_json

SELECTION_METRIC = "kid"  # lower is better
SELECTION_RULE = "lowest final KID among this width's DGL-GAN seeds (Baselines are not shipped)"
# The package's bundled registry: 46 MB with both v1 teachers and the StyleGAN2 students; BigGAN's v2 teacher
# (G_ema + D, 20 MB) and its three students (~5 MB) need more, and v1 stays (published versions are immutable:
# the v1 records and anyone pinning @1 load it).  Still tens of MB, not hundreds.
DEFAULT_BUDGET_MB = 80.0
_DGL_RUN = re.compile(r"^(?P<width>[^/]+)/dgl-s(?P<seed>\d+)$")


@dataclass(frozen=True)
class Shipment:
    """One entry to publish: a finished run of the sweep and why it was chosen."""

    role: str                      # "teacher" | "student"
    run: str                       # the sweep's run name, e.g. "1_2/dgl-s1"
    out: Path                      # run directory (summary.json, final/)
    ch_mul: str
    summary: dict[str, Any]
    selection: Optional[dict[str, Any]] = None

    @property
    def checkpoint(self) -> Path:
        return self.out / "final"


@dataclass
class BundleResult:
    into: Path
    published: list[dict[str, Any]] = field(default_factory=list)  # name, ch_mul, version, size_bytes, run
    unchanged: list[str] = field(default_factory=list)
    total_bytes: int = 0
    dry_run: bool = False
    latency_record: Optional[Path] = None  # the bench table kept with the study's records


def _summary(run) -> dict[str, Any]:
    summary = read_json(Path(run.out) / "summary.json")
    if not isinstance(summary, dict):
        raise ZooError(f"{run.out}/summary.json: not a JSON object")
    return summary


def _finished_here(run) -> bool:
    """Finished on this machine, weights included (an archived record has no weights to ship)."""
    from zoo.checkpoint import WEIGHT_FILES
    from zoo.train.sweep import run_status

    st = run_status(run)
    return st["status"] == "done" and not st["archived"] and (Path(run.out) / "final" / WEIGHT_FILES["G_ema"]).is_file()


@dataclass(frozen=True)
class ShippedTeacher:
    """The teacher's registry entry, already in the target registry (``teacher.entry`` of the sweep file)."""

    name: str
    ch_mul: str
    version: str
    generator_sha256: str
    d_sha256: str
    path: Path                    # its entry directory in the target registry (timed beside the students)

    def ref(self) -> dict[str, Any]:
        return {"name": self.name, "ch_mul": self.ch_mul, "version": self.version,
                "generator_sha256": self.generator_sha256}


def shipped_teacher(index: dict[str, Any], entry: str, registry: Path) -> ShippedTeacher:
    """Find ``NAME[@VERSION]`` (ch_mul 1) in a registry index; ZooError if it is not there or has no D."""
    from zoo.checkpoint import WEIGHT_FILES
    from zoo.integrity import check_relpath
    from zoo.registry.model import resolve, split_ref

    name, version = split_ref(entry)
    try:  # the registry's own lookup: versions, aliases and 'latest' as `zoo train --teacher` reads them
        ref = resolve(index, name, 1, version, where="the target registry")
    except ZooError as exc:
        raise ZooError(f"teacher.entry {entry!r}: the target registry has no such version ({exc})") from None
    d = ref.files.get(WEIGHT_FILES["D"])
    if d is None:
        raise ZooError(f"teacher.entry {entry!r}: {ref} in the target registry has no discriminator")
    return ShippedTeacher(name, ref.ch_mul, ref.version, ref.metadata["registry"]["generator_sha256"], d["sha256"],
                          registry / check_relpath(ref.path, "registry entry path"))


def plan_bundle(sweep, teacher: Optional[ShippedTeacher] = None,
                widths: Optional[list[str]] = None) -> list[Shipment]:
    """The teacher (when it was trained on this machine) and, per student width (all of them, or
    ``widths``), the chosen DGL seed; no side effects.  ZooError if a width's DGL runs are not all finished
    here, a KID is missing, the KIDs of one width were computed on different bases, or a student was
    compressed from another discriminator than the teacher's (``teacher``: the shipped teacher entry,
    when the teacher run is not on this machine)."""
    from zoo.checkpoint import WEIGHT_FILES
    from zoo.integrity import sha256_file
    from zoo.metrics import MetricValue
    from zoo.train.sweep import TEACHER

    runs = sweep.by_name()
    shipments = []
    if _finished_here(runs[TEACHER]):
        t_run = runs[TEACHER]
        t_summary = _summary(t_run)
        shipments.append(Shipment("teacher", t_run.name, Path(t_run.out), str(t_summary.get("ch_mul", "1")),
                                  t_summary))
        teacher_d = sha256_file(Path(t_run.out) / "final" / WEIGHT_FILES["D"])
    elif teacher is not None:
        teacher_d = teacher.d_sha256
    else:
        raise ZooError(f"run {TEACHER} is not finished on this machine and the sweep file names no shipped "
                       "teacher (teacher.entry); bundle a finished sweep (`zoo sweep status` shows progress)")
    chosen = [w for w in sweep.widths() if w != "1" and (widths is None or w in widths)]
    by_width: dict[str, list[tuple[int, Any]]] = {}
    for run in sweep.runs:
        m = _DGL_RUN.match(run.name)
        if m and run.width in chosen:
            by_width.setdefault(run.width, []).append((int(m["seed"]), run))
    unfinished = [r.name for seeds in by_width.values() for _, r in seeds if not _finished_here(r)]
    if unfinished:
        raise ZooError(f"sweep {sweep.name}: DGL runs not finished on this machine: {', '.join(unfinished)} "
                       "(--widths names the widths to bundle)")
    for width, seeds in by_width.items():
        candidates: dict[int, tuple[Any, dict[str, Any], Any]] = {}
        for seed, run in sorted(seeds):
            summary = _summary(run)
            kid = (summary.get("metrics") or {}).get(SELECTION_METRIC)
            if not isinstance(kid, (int, float)):
                raise ZooError(f"run {run.name}: no final {SELECTION_METRIC} in summary.json; the seed to ship is "
                               f"chosen by it (train with metrics including {SELECTION_METRIC})")
            used = (summary.get("teacher") or {}).get("discriminator_sha256")
            if used != teacher_d:
                raise ZooError(f"run {run.name} was compressed against discriminator {str(used)[:12]}, not the "
                               f"sweep's teacher's ({teacher_d[:12]})")
            candidates[seed] = (run, summary, MetricValue.from_info(SELECTION_METRIC, kid, summary.get("metrics_info")))
        bases = {mv.data_and_n for _, _, mv in candidates.values()}
        if len(bases) > 1:
            raise ZooError(f"width {width}: the seeds' {SELECTION_METRIC} values were computed on different data "
                           f"or n ({sorted(map(str, bases))}); they cannot pick a seed")
        best = min(candidates, key=lambda s: (candidates[s][2].value, s))
        run, summary, _ = candidates[best]
        selection = {"metric": SELECTION_METRIC, "rule": SELECTION_RULE, "chosen_seed": best,
                     "candidates": {str(s): mv.value for s, (_, _, mv) in candidates.items()}}
        shipments.append(Shipment("student", run.name, Path(run.out), str(summary["ch_mul"]), summary, selection))
    return shipments


# The weights ganzoo trains are released under the project's own licence (pyproject.toml), as an SPDX id in
# the Hub's lowercase spelling; the data's terms are stated beside it in every card.
WEIGHTS_LICENSE = "apache-2.0"


def data_record(summary: dict[str, Any], fallback: Path | None) -> dict[str, Any]:
    """The run's data with its licence, from the dataset's dataset.json (the builder records the licence
    there); the file's content hash must be the run's."""
    data = summary.get("data") or {}
    for path in [data.get("path"), fallback]:
        if path and (Path(path) / "dataset.json").is_file():
            manifest = read_json(Path(path) / "dataset.json")
            break
    else:
        raise ZooError(f"the run's dataset ({data.get('path') or data.get('name')}) has no dataset.json to read its "
                       "licence from; bundle runs trained on a built or imported dataset")
    if manifest.get("sha256") != data.get("sha256"):
        raise ZooError(f"{path}/dataset.json (sha256 {manifest.get('sha256')}) is not the data the run was trained on "
                       f"(sha256 {data.get('sha256')})")
    licence = (manifest.get("source") or {}).get("licence")
    if not licence:
        raise ZooError(f"{path}/dataset.json records no licence (source.licence); refusing to ship weights "
                       "trained on data of unknown terms")
    return {"name": manifest.get("name"), "sha256": manifest["sha256"], "count": manifest.get("count"),
            "resolution": manifest.get("resolution"), "licence": licence,
            "source": (manifest.get("source") or {}).get("kind"), "build": manifest.get("build")}


def measure_latency(shipments: list[Shipment], backends: tuple[str, ...], batches: tuple[int, ...] = (1, 8),
                    iters: int = 10, say: Callable[[str], None] = print,
                    teacher: Optional[Path] = None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """({run name: latency rows}, the whole bench table) from one ``zoo bench`` run over every width (so
    speedups are same-run); ``teacher``: the shipped teacher's checkpoint, timed too when it is not one of
    the shipments (its rows are in the table only: a published entry's metadata never changes)."""
    from zoo.export.bench import latency_for, run_bench

    sources = [str(s.checkpoint) for s in shipments] + ([str(teacher)] if teacher is not None else [])
    table = run_bench(sources, backends=list(backends), batches=list(batches), iters=iters, progress=False)
    say(f"latency measured on {table['hardware']['fingerprint']} ({', '.join(backends)}; batch "
        f"{', '.join(map(str, batches))})")
    return {s.run: latency_for(table, s.ch_mul) for s in shipments}, table


def record_latency(results: Path, config: str, table: dict[str, Any]) -> Path:
    """Keep a bundle's whole bench table beside the study's run records (``latency/<date>-<cpu>.json``):
    the shipped teacher's rows from a students-only bundle live only here, and `zoo compare --runs-dir`
    reads them (``zoo.train.compare.latency_tables``)."""
    from zoo.integrity import write_json
    from zoo.train.sweep import LATENCY_DIR

    fingerprint = str((table.get("hardware") or {}).get("fingerprint") or "unknown")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", fingerprint).strip("-")[:60]
    stamp = re.sub(r"[^0-9T]", "", str(table.get("date") or ""))[:15] or "undated"
    path = results / LATENCY_DIR / f"{stamp}-{slug}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"config": config, "bench": table})
    return path


def default_backends() -> tuple[str, ...]:
    """eager, plus ONNX Runtime when it and the exporter are installed."""
    import importlib.util

    have_onnx = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
    return ("eager", "onnx") if have_onnx else ("eager",)


def _latest(index: dict[str, Any], name: str, ch: str) -> Optional[dict[str, Any]]:
    from zoo.registry.model import sorted_versions

    versions = ((index.get("models") or {}).get(name) or {}).get(ch, {}).get("versions") or {}
    if not versions:
        return None
    latest = sorted_versions(versions)[-1]
    return {**versions[latest], "version": latest}


def _entry_bytes(record: dict[str, Any]) -> int:
    return sum(f["size"] for f in record["files"].values())


def bundle(sweep_file: str | os.PathLike, into: str | os.PathLike | None = None, *, root=None,
           budget_mb: float = DEFAULT_BUDGET_MB, dry_run: bool = False, bench: bool = True,
           backends: tuple[str, ...] | None = None, bench_iters: int = 10, widths: Optional[list[str]] = None,
           say: Callable[[str], None] = print) -> BundleResult:
    """Publish a finished sweep's teacher and DGL students into ``into`` (default: the package's bundled
    registry), all or nothing; see the module docstring."""
    from zoo.checkpoint import WEIGHT_FILES
    from zoo.integrity import file_lock, fsync_dir, sha256_file
    from zoo.registry.api import bundled_registry
    from zoo.registry.card import entry_card
    from zoo.registry.local import LOCK_FILE, LocalStore
    from zoo.registry.model import INDEX_FILE, ch_key
    from zoo.registry.publish import publish
    from zoo.train.sweep import load_sweep

    sweep = load_sweep(sweep_file, root)
    into = Path(into or bundled_registry()).expanduser().resolve()
    result = BundleResult(into=into, dry_run=dry_run)
    index_path = into / INDEX_FILE
    before = index_path.read_bytes() if index_path.is_file() else None
    existing = LocalStore(into, read_only=True).read_index()
    shipped = shipped_teacher(existing, sweep.teacher_entry, into) if sweep.teacher_entry else None
    shipments = plan_bundle(sweep, shipped, widths)
    if not shipments:
        raise ZooError(f"sweep {sweep.name}: nothing finished on this machine to bundle")
    name = shipments[0].summary.get("config") or Path(sweep_file).stem

    # unchanged: the target's latest version of that width holds this very generator
    todo, teacher_ref = [], shipped.ref() if shipped else None
    for s in shipments:
        latest = _latest(existing, name, ch_key(s.ch_mul))
        digest = sha256_file(s.checkpoint / WEIGHT_FILES["G_ema"])
        if latest and latest["metadata"].get("registry", {}).get("generator_sha256") == digest:
            result.unchanged.append(f"{name} ch_mul={ch_key(s.ch_mul)} v{latest['version']} ({s.run})")
            if s.role == "teacher":
                teacher_ref = {"name": name, "ch_mul": ch_key(s.ch_mul), "version": latest["version"],
                               "generator_sha256": digest}
        else:
            todo.append(s)
    if not todo:
        say(f"{into}: already holds every entry of {sweep.name} ({len(result.unchanged)}); nothing to do")
        return result

    data = data_record(shipments[0].summary, sweep.data)
    latency, bench_table = {}, None
    if bench:
        has_teacher = any(s.role == "teacher" for s in shipments)
        latency, bench_table = measure_latency(shipments, backends or default_backends(), iters=bench_iters, say=say,
                                  teacher=None if has_teacher or shipped is None else shipped.path)

    created = [d for d in [into.parent, *into.parent.parents] if not d.exists()]  # removed again on failure
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}.bundle-", dir=into.parent))
    committed = False
    try:
        if before is not None:
            (staging / INDEX_FILE).write_bytes(before)  # version numbers continue the target's
        refs = []
        for s in todo:
            mlflow = s.summary.get("mlflow") or {}
            info = s.summary.get("metrics_info")
            block = {"role": s.role, "study": sweep.name, "run": s.run, "seed": s.summary.get("seed"), "data": data,
                     "mlflow_run_id": mlflow.get("run_id"), "teacher": teacher_ref if s.role == "student" else None,
                     "selection": s.selection}
            extra = {"bundle": block, "license": WEIGHTS_LICENSE, "latency": latency.get(s.run, []),
                     **({"metrics_info": info} if isinstance(info, dict) else {})}
            ref = publish(s.out, name=name, ch_mul=s.ch_mul, registry=str(staging), include_D=s.role == "teacher",
                          include_G_raw=False, mlflow_uri="", extra_metadata=extra, card=entry_card)
            if s.role == "teacher":
                teacher_ref = {"name": ref.name, "ch_mul": ref.ch_mul, "version": ref.version,
                               "generator_sha256": ref.metadata["registry"]["generator_sha256"]}
            refs.append((s, ref))
        store = LocalStore(staging)
        problems = [f"{ref}: {p}" for _, ref in refs for p in store.verify(ref)]
        if problems:
            raise ZooError(f"the staged bundle failed verification: {'; '.join(problems)}")

        index = store.read_index()
        sizes = [(f"{n} ch_mul={ch} v{v}", _entry_bytes(rec)) for n, widths in index["models"].items()
                 for ch, slot in widths.items() for v, rec in slot["versions"].items()]
        result.total_bytes = sum(b for _, b in sizes) + (staging / INDEX_FILE).stat().st_size
        table = "\n".join(f"  {label:<40} {b / 1e6:8.2f} MB" for label, b in sizes)
        say(f"{into} after bundling: {result.total_bytes / 1e6:.2f} MB in {len(sizes)} entries "
            f"(budget {budget_mb:g} MB)\n{table}")
        if result.total_bytes > budget_mb * 1e6:
            raise ZooError(f"the bundle would make {into} {result.total_bytes / 1e6:.2f} MB, over the "
                           f"{budget_mb:g} MB budget (--budget-mb); nothing was written\n{table}")
        result.published = [{"name": ref.name, "ch_mul": ref.ch_mul, "version": ref.version, "run": s.run,
                             "role": s.role, "size_bytes": _entry_bytes(ref.record)} for s, ref in refs]
        if dry_run:
            say("dry run: nothing was written")
            return result

        into.mkdir(exist_ok=True)
        with file_lock(into / LOCK_FILE):
            now = index_path.read_bytes() if index_path.is_file() else None
            if now != before:
                raise ZooError(f"{into}/{INDEX_FILE} changed while bundling (another publisher?); run the command "
                               "again")
            moved: list[tuple[Path, Path]] = []
            try:
                for _, ref in refs:
                    src, dst = staging / ref.path, into / ref.path
                    if dst.exists():  # left by a publisher that died before updating the index: never listed
                        shutil.rmtree(dst)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    moved.append((dst, src))
                    fsync_dir(dst.parent)
                # the commit point: one rename makes every new entry visible at once
                os.replace(staging / INDEX_FILE, index_path)
                fsync_dir(into)
            except BaseException:
                for dst, src in reversed(moved):  # the target's index never listed them: put them back
                    os.replace(dst, src)
                raise
        committed = True
        for row in result.published:
            say(f"bundled {row['name']} ch_mul={row['ch_mul']} v{row['version']} ({row['role']}, {row['run']}, "
                f"{row['size_bytes'] / 1e6:.2f} MB)")
        if bench_table is not None and sweep.results is not None:
            result.latency_record = record_latency(sweep.results, name, bench_table)
            say(f"latency table (every width timed, the shipped teacher included) -> {result.latency_record}")
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not committed and not into.exists():
            for d in created:  # innermost first; only what this call made, and only while empty
                if d.exists() and not any(d.iterdir()):
                    d.rmdir()


def run(args) -> int:
    """``zoo sweep bundle``: the sweep CLI's entry point for this action."""
    from zoo.train.sweep import parse_widths

    budget_mb = DEFAULT_BUDGET_MB if args.budget_mb is None else args.budget_mb
    result = bundle(args.sweep, args.into, root=args.root, budget_mb=budget_mb, dry_run=args.dry_run,
                    bench=not args.no_bench, widths=parse_widths(args.widths))
    for line in result.unchanged:
        print(f"unchanged {line}")
    return 0
