"""``zoo bench``: generator latency per back-end, batch size and width, with same-run speedups.

    zoo bench stylegan2-ffhq --ch-mul 1,1/2,1/4,1/8 --backend eager,onnx --batch 1,8 --iters 5
    zoo bench runs/teacher runs/student-1_4 --backend onnx --batch 1,8,48 --device cuda --json

For every (model, back-end, batch): ``warmup`` untimed calls (allocations, compilation), then
``iters`` timed calls on fixed inputs, each synchronised (``time.perf_counter`` on CPU, CUDA events
on GPU).  All models and back-ends are prepared first and then timed in alternating rounds, so load
from other processes on a shared machine falls on every variant alike.  Reported: min / median / p90 / p99 / mean ms per call, images/s (batch / median), peak
memory (CPU: peak RSS growth during the measurement; CUDA: ``max_memory_allocated``), the thread
counts, and the speedup of each width relative to the full-width (``ch_mul`` 1) model **measured in
the same run** (plus, per width, each back-end relative to eager).  The result is a latency table
(:func:`run_bench`) that the registry stores as ``metadata["latency"]`` (:func:`latency_for` picks
the rows of one width).

Every row is a :class:`zoo.latency.LatencyRow` (``to_dict``) and carries the ``fingerprint`` of the
hardware it was measured on (``zoo.environment.hardware(device)``), which is what latency budgets
(``zoo.load(..., max_latency_ms=...)``, ``zoo serve``) match rows by.  ``zoo bench NAME --calibrate``
measures every published width of registry entry NAME on this machine into the local calibration cache
(``$GANZOO_HOME/latency/``, see :mod:`zoo.latency`) for entries that hold no rows for it.

Absolute CPU figures depend heavily on the memory allocator (see docs/export.md): the MALLOC_* and
LD_PRELOAD variables seen by the process are recorded with every table.
"""
from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from zoo.backends import BENCH_BACKENDS, EAGER, check_backend
from zoo.environment import hardware
from zoo.errors import ZooError
from zoo.export.artifact import (device_info, is_artifact, load_export, now, read_export_json, resolve_source,
                                 software_versions)
from zoo.export.graph import build_graph, fixed_inputs, input_specs
from zoo.export.options import check_dtype, parse_batch_list, torch_dtype
from zoo.latency import LatencyRow, latency_for  # noqa: F401 - latency_for: a bench table's rows, re-exported
from zoo.runtime.base import BatchRange

FORMAT = "ganzoo-latency/1"
ENV_PREFIXES = ("MALLOC_", "LD_PRELOAD", "OMP_", "MKL_", "KMP_", "ORT_", "PYTORCH_CUDA_ALLOC_CONF",
                "CUDA_VISIBLE_DEVICES", "TORCHINDUCTOR_")


# ------------------------------------------------------------------------------------------ timing

def allocator_env() -> dict[str, str]:
    """Environment variables that change CPU/GPU timings (allocator, threads), as this process sees them."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}


def _rss_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def summarize(times_ms: list[float], batch: int) -> dict[str, float]:
    t = np.asarray(times_ms, dtype=np.float64)
    median = float(np.median(t))
    return {"min_ms": float(t.min()), "median_ms": median, "p90_ms": float(np.percentile(t, 90)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()), "std_ms": float(t.std()),
            "images_per_s": batch * 1000.0 / median if median > 0 else float("nan")}


class _PeakMemory:
    """Peak memory growth while a block runs: CUDA max_memory_allocated, or the process's peak RSS."""

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda")
        self.device = device

    def __enter__(self):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _rss_kb("VmRSS")
            self.hwm_ok = _reset_peak_rss()
            self.start_maxrss = _maxrss_kb()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.result = {"peak_mem_mb": peak / 2**20, "peak_mem_delta_mb": (peak - self.base) / 2**20,
                           "mem_kind": "cuda max_memory_allocated (torch allocator; ONNX Runtime/TensorRT "
                                       "memory not seen)"}
        else:
            peak = _rss_kb("VmHWM") if self.hwm_ok else None
            if peak is not None and self.base is not None:
                self.result = {"peak_mem_delta_mb": max(0, peak - self.base) / 1024,
                               "mem_kind": "peak RSS growth during warm-up (VmHWM - RSS before)"}
            else:
                self.result = {"peak_mem_delta_mb": max(0, _maxrss_kb() - self.start_maxrss) / 1024,
                               "mem_kind": "growth of the process's max RSS during warm-up (lower bound)"}
        return False


# Pause before each timed CPU call when several functions alternate: ONNX Runtime's and OpenMP's worker
# threads keep spinning after a run, so without a pause each back-end would be timed while the previous
# one's threads still burn the cores (the measurement behind 0.1 s: docs/export.md, `zoo bench`).
SETTLE_S = 0.1


def measure_interleaved(fns: dict[Any, Callable[[], Any]], batch: int, warmup: int = 2, iters: int = 10,
                        device: str = "cpu", on_call: Callable[[], None] | None = None) -> dict[Any, dict]:
    """Time several functions (each one generator call of ``batch`` images) in alternating rounds.

    Each function first gets ``warmup`` untimed calls (its peak memory is measured there), then every
    round times each function once (A B C A B C ...), so load from other processes falls on all of them
    alike: the fair way to measure ratios on a shared machine.  CPU: ``time.perf_counter``, after a
    :data:`SETTLE_S` pause when several functions alternate; CUDA: CUDA events, synchronised after each
    call."""
    if iters < 1 or warmup < 0:
        raise ZooError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    cuda = str(device).startswith("cuda")
    times: dict[Any, list[float]] = {k: [] for k in fns}
    memory: dict[Any, dict] = {}
    with torch.inference_mode():
        for key, fn in fns.items():
            with _PeakMemory(device) as mem:
                for _ in range(warmup):
                    fn()
                    if on_call:
                        on_call()
            memory[key] = mem.result
        for _ in range(iters):
            for key, fn in fns.items():
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    end.record()
                    end.synchronize()
                    times[key].append(start.elapsed_time(end))
                else:
                    if len(fns) > 1:
                        time.sleep(SETTLE_S)
                    t0 = time.perf_counter()
                    fn()
                    times[key].append((time.perf_counter() - t0) * 1000.0)
                if on_call:
                    on_call()
    return {k: {"batch": batch, "warmup": warmup, "iters": iters, **summarize(times[k], batch), **memory[k]}
            for k in fns}


def measure(fn: Callable[[], Any], batch: int, warmup: int = 2, iters: int = 10, device: str = "cpu") -> dict:
    """Time one function: :func:`measure_interleaved` with a single entry."""
    return measure_interleaved({0: fn}, batch, warmup, iters, device)[0]


def _maxrss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ------------------------------------------------------------------------------------------ models

def _expand_sources(sources: list[str], ch_muls: list[str], version: str | None) -> list[tuple[str, str]]:
    """(source, ch_mul) pairs: directories as they are, names once per width."""
    pairs = []
    for source in sources:
        if Path(source).is_dir():
            pairs.append((source, ""))
        else:
            pairs.extend((source, w) for w in ch_muls)
    return pairs


def _runner(G, backend: str, dtype: str, device: str, threads: int, batch: BatchRange, workdir: Path,
            source: dict) -> tuple[Callable[[dict], Any], dict]:
    """A function feeds -> images for one back-end, and facts about it for the table."""
    if backend == EAGER:
        from zoo.families import family_of

        # eager is timed as zoo.load and the server run it: with the family's inference preparation
        graph = build_graph(family_of(G).prepare(G.eval()), torch_dtype(dtype)).to(device)
        names = [s.name for s in input_specs(G)]
        return (lambda feeds: graph(*[feeds[n] for n in names])), {"runtime": "PyTorch eager"}
    if backend == "compile":
        from zoo.export.compile import compile_at_load

        graph = compile_at_load(build_graph(G, torch_dtype(dtype)).to(device))
        names = [s.name for s in input_specs(G)]
        return (lambda feeds: graph(*[feeds[n] for n in names])), {
            "runtime": "torch.compile(dynamic=True), Inductor; compiled during warm-up"}
    from zoo.export.exporter import export_generator

    out = workdir / f"{backend}-{len(list(workdir.iterdir()))}"
    path, meta = export_generator(G, out, backend=backend, dtype=dtype, batch=batch, device=device, source=source)
    kwargs = {"threads": threads} if backend == "onnx" else {}
    gen = load_export(path, device=device, **kwargs)
    facts = {"runtime": backend, "verification_max_abs": meta["verification"]["max_abs"]}
    if backend == "onnx":
        facts["providers"] = gen.providers
    return gen._run, facts


def _artifact_runner(path: str, device: str, threads: int):
    _, meta = read_export_json(path)
    kwargs = {"threads": threads} if meta["backend"] == "onnx" else {}
    return load_export(path, device=device, **kwargs), meta


# ------------------------------------------------------------------------------------------ main API

def run_bench(sources: list[str], backends: list[str] = (EAGER,), batches: list[int] = (1,),
              ch_muls: list[str] = ("1",), device: str = "cpu", dtype: str = "fp32", warmup: int = 2,
              iters: int = 10, threads: int | None = None, version: str | None = None,
              progress: bool = True, random_weights: bool = False,
              loaded: list[tuple[dict[str, Any], Any]] = ()) -> dict[str, Any]:
    """Measure every (model, back-end, batch) and return the latency table (see module docstring).

    ``loaded``: generators already in memory, as (model facts with at least ``model``, G) pairs, measured
    after ``sources`` (``--calibrate`` passes the verified registry entries this way)."""
    if not sources and not loaded:
        raise ZooError("give at least one checkpoint directory, zoo entry, configuration name or export artifact")
    for b in backends:
        check_backend(b, BENCH_BACKENDS)
    check_dtype(dtype)
    batches = [int(b) for b in batches]
    if not batches or min(batches) < 1:
        raise ZooError(f"bad batch sizes {batches}: need positive sizes")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ZooError("--device cuda was asked for but torch sees no CUDA device")
    if iters < 1 or warmup < 0:
        raise ZooError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    threads = int(threads or torch.get_num_threads())
    torch.set_num_threads(threads)
    if str(device).startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    ordered = sorted(batches)  # exports cover every size; TensorRT tunes for the middle one
    batch_range = BatchRange(ordered[0], ordered[len(ordered) // 2], max(ordered[-1], ordered[0] + 1))

    from tqdm import tqdm

    jobs = []
    for source in sources:
        jobs.extend([(source, None)] if is_artifact(source) else _expand_sources([source], list(ch_muls), version))
    jobs.extend((facts, G) for facts, G in loaded)
    runners = []  # (model facts, backend, dtype, fn(feeds), runtime facts, graph inputs, c_dim)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        for source, width in tqdm(jobs, desc="preparing", unit="model", disable=not progress, leave=False):
            if isinstance(source, dict):  # a generator already loaded (``loaded``)
                G = width
                model = {"ch_mul": G.config.ch_mul, "family": G.config.family, "resolution": int(G.img_resolution),
                         "params_G": sum(p.numel() for p in G.parameters()), **source}
                for backend in backends:
                    fn, facts = _runner(G, backend, dtype, device, threads, batch_range, Path(tmp), source)
                    runners.append((model, backend, dtype, fn, facts, input_specs(G), int(getattr(G, "c_dim", 0))))
                del G
                continue
            if width is None:  # an existing export artifact
                gen, meta = _artifact_runner(source, device, threads)
                model = {"model": meta.get("source", {}).get("name") or str(source), "ch_mul": meta["model"]["ch_mul"],
                         "family": meta["model"]["family"], "resolution": meta["model"]["img_resolution"]}
                runners.append((model, meta["backend"], meta["dtype"], gen._run,
                                {"runtime": meta["backend"], "artifact": str(source)}, gen.inputs, gen.c_dim))
                continue
            G, provenance = resolve_source(source, width or "1", version, device=device,
                                           random_weights=random_weights)
            model = {"model": provenance.get("name") or str(source), "ch_mul": G.config.ch_mul,
                     "family": G.config.family, "resolution": int(G.img_resolution),
                     "params_G": sum(p.numel() for p in G.parameters()), "source_kind": provenance["kind"]}
            for backend in backends:
                fn, facts = _runner(G, backend, dtype, device, threads, batch_range, Path(tmp), provenance)
                runners.append((model, backend, dtype, fn, facts, input_specs(G), int(getattr(G, "c_dim", 0))))
            del G
        bar = tqdm(total=len(batches) * len(runners) * (warmup + iters), desc="bench", unit="call",
                   disable=not progress, leave=False)
        for n in batches:
            fns = {}
            for i, (model, backend, dt, fn, facts, inputs, c_dim) in enumerate(runners):
                feeds = fixed_inputs(inputs, n, c_dim, device)
                fns[i] = (lambda fn=fn, feeds=feeds: fn(feeds))
            bar.set_postfix_str(f"batch {n}")
            results = measure_interleaved(fns, n, warmup, iters, device, on_call=lambda: bar.update(1))
            for i, (model, backend, dt, fn, facts, inputs, c_dim) in enumerate(runners):
                rows.append({**model, "backend": backend, "dtype": dt, **results[i], **facts, "_order": i})
        bar.close()
        rows.sort(key=lambda r: (r.pop("_order"), r["batch"]))
        del runners, fns
        gc.collect()
    _add_speedups(rows)
    fingerprint = hardware(device)["fingerprint"]
    rows = [_latency_row(r, fingerprint).to_dict() for r in rows]
    return {
        "format": FORMAT,
        "date": now(),
        "device": device_info(device),
        "hardware": hardware(device),
        "threads": {"torch": torch.get_num_threads(), "onnxruntime_intra_op": threads,
                    "onnxruntime_inter_op": 1},
        "env": allocator_env(),
        "versions": software_versions(),
        "settings": {"warmup": warmup, "iters": iters, "dtype": dtype,
                     "timer": "CUDA events" if str(device).startswith("cuda") else "time.perf_counter",
                     "order": "per batch size, every model/back-end timed once per round, in alternating rounds",
                     "noise_mode": "const", "fused_modconv": False,
                     "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if str(device).startswith("cuda") else None,
                     "inputs": "z from seeds 0..N-1, classes i % c_dim, psi cycling 1.0/0.7"},
        "rows": rows,
    }


def _latency_row(measured: dict[str, Any], fingerprint: str) -> LatencyRow:
    """One measured (model, back-end, dtype, batch) as the row every reader parses; the other figures
    (min/p90/p99 ms, memory, runtime facts, speedup_vs_eager) travel in ``extra``."""
    own = ("model", "ch_mul", "backend", "dtype", "batch", "median_ms", "speedup_vs_full")
    return LatencyRow(ms=measured["median_ms"], batch=measured["batch"], backend=measured["backend"],
                      dtype=measured["dtype"], fingerprint=fingerprint, speedup=measured["speedup_vs_full"],
                      model=measured["model"], ch_mul=measured["ch_mul"],
                      extra={k: v for k, v in measured.items() if k not in own})


def _add_speedups(rows: list[dict]) -> None:
    """speedup_vs_full: median of the ch_mul-1 row (same model, back-end, dtype, batch) / this row's;
    speedup_vs_eager: the eager row of the same model and width / this row's."""
    def key(r, **change):
        d = {"model": r["model"], "ch_mul": r["ch_mul"], "backend": r["backend"], "dtype": r["dtype"],
             "batch": r["batch"], **change}
        return tuple(sorted(d.items()))

    index = {key(r): r for r in rows}
    for r in rows:
        full = index.get(key(r, ch_mul="1"))
        r["speedup_vs_full"] = full["median_ms"] / r["median_ms"] if full else None
        eager = index.get(key(r, backend=EAGER))
        r["speedup_vs_eager"] = eager["median_ms"] / r["median_ms"] if eager else None


# ------------------------------------------------------------------------------------------ CLI

def add_arguments(parser) -> None:
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="checkpoint directory, zoo entry, configuration name (random weights) or export artifact")
    parser.add_argument("--backend", default="eager",
                        help=f"comma-separated back-ends: {', '.join(BENCH_BACKENDS)} (default eager)")
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes, e.g. 1,8,48 (default 1,8)")
    parser.add_argument("--ch-mul", default="1", help="comma-separated widths for entries/names, e.g. 1,1/2,1/4,1/8")
    parser.add_argument("--version", default=None, help="zoo entry version or alias")
    parser.add_argument("--random-weights", action="store_true",
                        help="configuration names build random weights even if a zoo entry has that name")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default="fp32", help="fp32 or fp16 (default fp32)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    parser.add_argument("--iters", type=int, default=10, help="timed calls per measurement (default 10)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and ONNX Runtime (default: torch's default, stated in the output)")
    parser.add_argument("--json", action="store_true", help="print the latency table as JSON")
    parser.add_argument("--out", default=None, help="also write the latency table (JSON) to this file")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure every published width of each registry entry (or each checkpoint directory) "
                             "on this machine into the local calibration cache ($GANZOO_HOME/latency/) that latency "
                             "budgets read, unless the entries or the cache already hold rows for this machine")
    parser.add_argument("--force", action="store_true", help="with --calibrate: measure again even if rows exist")
    parser.add_argument("--registry", default=None, help="with --calibrate: registry URI (default: the default chain)")


def format_table(table: dict[str, Any]) -> str:
    dev = table["device"]
    lines = [f"device: {dev['name']} ({dev['type']}), threads: torch {table['threads']['torch']}, "
             f"onnxruntime {table['threads']['onnxruntime_intra_op']}; timer: {table['settings']['timer']}; "
             f"{table['settings']['warmup']} warm-up + {table['settings']['iters']} timed calls",
             f"allocator/thread env: {table['env'] or 'none set'}", ""]
    header = (f"{'model':20s} {'ch_mul':>6s} {'backend':>11s} {'dtype':>5s} {'batch':>5s} {'min ms':>10s} "
              f"{'median ms':>10s} {'p90 ms':>10s} {'img/s':>9s} {'mem MB':>8s} {'vs full':>8s} {'vs eager':>8s}")
    lines += [header, "-" * len(header)]
    for r in table["rows"]:
        fmt = (lambda v: "-" if v is None else f"{v:.2f}x")
        lines.append(f"{r['model'][:20]:20s} {r['ch_mul']:>6s} {r['backend']:>11s} {r['dtype']:>5s} {r['batch']:>5d} "
                     f"{r['min_ms']:>10.1f} {r['median_ms']:>10.1f} {r['p90_ms']:>10.1f} {r['images_per_s']:>9.2f} "
                     f"{r.get('peak_mem_delta_mb', 0):>8.0f} {fmt(r['speedup_vs_full']):>8s} "
                     f"{fmt(r['speedup_vs_eager']):>8s}")
    return "\n".join(lines)


def _calibration_targets(source: str, version: str | None, registry) -> tuple[str, list[tuple[Any, Any]]]:
    """(name, [(Candidate, loader)]) for a registry entry name (every published width) or a checkpoint dir."""
    from zoo.latency import Candidate, candidates_from_registry

    path = Path(source)
    if path.is_dir():
        from zoo.checkpoint import load_checkpoint, read_config
        from zoo.integrity import read_json, read_manifest, sha256_file

        name, cfg = read_config(path)
        name = name or path.name
        sha = ((read_manifest(path) or {}).get("config.json") or {}).get("sha256") or sha256_file(path / "config.json")
        meta = read_json(path / "metadata.json") if (path / "metadata.json").is_file() else {}
        cand = Candidate(name, cfg.ch_mul, None, meta if isinstance(meta, dict) else {}, sha)
        return name, [(cand, lambda device: load_checkpoint(path, device=device, load_D=False).G_ema)]
    candidates = candidates_from_registry(source, version, registry)
    if not candidates:
        from zoo.registry import resolve

        resolve(source, 1, version, registry)  # the error that lists what exists
        raise ZooError(f"no width of {source} has version {version!r}")
    from zoo.registry import load_entry

    return source, [(c, lambda device, c=c: load_entry(c.model, c.ch_mul, c.version, device=device, load_D=False,
                                                           registry=registry).G_ema) for c in candidates]


def calibrate(sources: list[str], backends: list[str] = (EAGER,), batches: list[int] = (1, 8), device: str = "cpu",
              dtype: str = "fp32", warmup: int = 2, iters: int = 10, threads: int | None = None,
              version: str | None = None, registry=None, force: bool = False,
              progress: bool = True) -> tuple[dict[str, Any] | None, Path | None, list[str]]:
    """``zoo bench --calibrate``: measure the variants of ``sources`` here once into the calibration cache.

    A name is measured (all its widths together, so speedups are same-run ratios) unless every width
    already has a row for this machine, back-end, dtype and each batch, in its entry or in the cache
    (``force`` measures anyway).  Returns (table or None, cache file or None, what was skipped and why)."""
    from zoo.latency import parse_rows, read_calibration, record_calibration

    fingerprint = hardware(device)["fingerprint"]
    cached = read_calibration(fingerprint)
    loaded, skipped, keys = [], [], {}
    for source in sources:
        name, targets = _calibration_targets(source, version, registry)

        def covered(cand) -> bool:
            rows = parse_rows(cand.metadata.get("latency")) + (cached.get(cand.config_sha256) or {}).get("rows", [])
            return all(any(r.batch == n and r.matches(fingerprint, b, dtype) for r in rows)
                       for b in backends for n in batches)

        if not force and all(covered(c) for c, _ in targets):
            skipped.append(f"{name}: every width already has rows for {fingerprint} (use --force to measure again)")
            continue
        for cand, load in targets:
            keys[cand.config_sha256] = cand
            loaded.append(({"model": name, "version": cand.version, "config_sha256": cand.config_sha256,
                            "source_kind": "calibration"}, load(device)))
    if not loaded:
        return None, None, skipped
    table = run_bench([], backends, batches, device=device, dtype=dtype, warmup=warmup, iters=iters, threads=threads,
                      progress=progress, loaded=loaded)
    measured: dict[str, dict[str, Any]] = {}
    for row in table["rows"]:
        cand = keys[row["config_sha256"]]
        entry = measured.setdefault(cand.config_sha256, {"name": cand.model, "ch_mul": cand.ch_mul,
                                                         "version": cand.version, "rows": []})
        entry["rows"].append(LatencyRow.from_dict({**row, "device": table["device"]["name"], "date": table["date"]}))
    return table, record_calibration(fingerprint, measured), skipped


def run(args) -> int:
    from zoo.integrity import write_json

    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    if not backends:
        raise ZooError("bad --backend '': name at least one of " + ", ".join(BENCH_BACKENDS))
    for b in backends:
        check_backend(b, BENCH_BACKENDS)
    batches = parse_batch_list(args.batch)
    ch_muls = [w.strip() for w in args.ch_mul.split(",") if w.strip()]
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise ZooError(f"bad --device {args.device!r}: use cpu or cuda")
    if args.force and not args.calibrate or args.registry and not args.calibrate:
        raise ZooError("--force and --registry go with --calibrate")
    if args.calibrate:
        table, path, skipped = calibrate(args.sources, backends, batches, device=args.device, dtype=args.dtype,
                                         warmup=args.warmup, iters=args.iters, threads=args.threads,
                                         version=args.version, registry=args.registry, force=args.force,
                                         progress=not args.json)
        if args.out and table is not None:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            write_json(Path(args.out), table)
        if args.json:
            print(json.dumps({"calibration": str(path) if path else None, "skipped": skipped, "table": table},
                             indent=2))
        else:
            for line in skipped:
                print(f"skipped {line}")
            if table is not None:
                print(format_table(table))
                print(f"\ncalibration rows for {table['hardware']['fingerprint']} written to {path}")
        return 0
    table = run_bench(args.sources, backends, batches, ch_muls, device=args.device, dtype=args.dtype,
                      warmup=args.warmup, iters=args.iters, threads=args.threads, version=args.version,
                      progress=not args.json, random_weights=args.random_weights)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(args.out), table)
    print(json.dumps(table, indent=2) if args.json else format_table(table))
    return 0
