#!/usr/bin/env python3
"""GPU latency of StyleGAN2 FFHQ-1024 at every width, batch 48, as the paper's Table 2 measures it -> docs/gpu.md.

On a CUDA machine (about 5-10 minutes on one H100; ``--budget-s`` bounds it):

    python scripts/gpu_table.py                      # writes docs/gpu.md and docs/gpu.json
    python scripts/gpu_table.py --out /tmp/gpu.md    # anywhere else

For each back-end in turn, the four widths (ch_mul 1, 1/2, 1/4, 1/8; random weights: speed does not
depend on them) are built, warmed up and timed in alternating rounds in this one process
(``export.bench.measure_interleaved``: CUDA events, synchronised after each call), so the speedups of
each width over the full-width model are same-run ratios:

* ``eager fp16``: the export graph (``export.graph.build_graph``: mapping + truncation in fp32, synthesis
  in fp16, constant noise) in eager PyTorch;
* ``compile fp16 + CUDA graphs``: the same graph under ``torch.compile(mode="reduce-overhead")``
  (Inductor, static shapes, CUDA graphs); compilation happens in the warm-up calls;
* ``TensorRT fp16``: ``zoo export --backend tensorrt --dtype fp16`` (torch-tensorrt, static batch 48),
  only where ``torch_tensorrt`` is installed.

The markdown shows ms per batch of 48, images/s and the speedups beside the paper's V100 figures
(Table 2: 1.49 / 0.67 / 0.43 / 0.34 s per batch of 48, i.e. 2.22x / 3.47x / 4.38x), with the GPU, driver,
torch / CUDA / TensorRT versions and the command.  A JSON with every figure is written beside it.  The
file is rewritten after each back-end, so whatever finished survives a time-out.

``--dry-run`` runs the same code path on the CPU at a tiny size (8 px, batch 2, fp32, one thread, 1 warm-up
and 2 timed calls, ``torch.compile(backend="eager")``: Dynamo without Inductor, so no C++ compiler) and writes into a
temporary directory unless ``--out`` is given: what the CPU test (tests/test_gpu_script.py) runs.  Its
figures say nothing about a GPU, and the file says so.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAME = "stylegan2-ffhq"
WIDTHS = ("1", "1/2", "1/4", "1/8")
# DGL-GAN Table 2 (section 4.1): StyleGAN2 FFHQ-1024 on a V100, batch 48, seconds per batch
PAPER_V100_S = {"1": 1.49, "1/2": 0.67, "1/4": 0.43, "1/8": 0.34}
BACKENDS = ("eager", "compile", "tensorrt")


def label(backend: str, dtype: str = "fp16", device: str = "cuda") -> str:
    return {"eager": f"eager {dtype}",
            "compile": f"torch.compile {dtype}" + (" + CUDA graphs" if device.startswith("cuda") else ""),
            "tensorrt": f"TensorRT {dtype}"}[backend]


_GENERATORS: dict = {}


def generator(w: str, resolution: int):
    """The width-``w`` generator (random weights, seed 0), built once per process: every back-end times
    the same weights, and building the full-width model is a good part of a dry run."""
    from zoo.families import family_of
    from zoo.models import build_generator

    if (w, resolution) not in _GENERATORS:
        import torch

        torch.manual_seed(0)
        G = build_generator(NAME, ch_mul=w, resolution=resolution).eval()
        _GENERATORS[(w, resolution)] = family_of(G).prepare(G)
    return _GENERATORS[(w, resolution)]


def paper_speedups() -> dict[str, float]:
    from zoo.models import CATALOG

    return dict(zip(WIDTHS, CATALOG[NAME].paper["speedup_v100_b48"]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="markdown file to write (default docs/gpu.md; --dry-run: a temporary directory)")
    p.add_argument("--dry-run", action="store_true", help="the same code path on the CPU at a tiny size")
    p.add_argument("--device", help="cuda (default) or cpu (implied by --dry-run)")
    p.add_argument("--resolution", type=int, help="default 1024 (--dry-run: 8)")
    p.add_argument("--batch", type=int, help="default 48 (--dry-run: 2)")
    p.add_argument("--dtype", help="fp16 (default) or fp32 (--dry-run: fp32)")
    p.add_argument("--warmup", type=int, help="untimed calls per model (default 3; the compiled model compiles "
                                              "and records its CUDA graph there; --dry-run: 1)")
    p.add_argument("--iters", type=int, help="timed rounds (default 20; --dry-run: 2)")
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma list of eager, compile, tensorrt")
    p.add_argument("--compile-backend", help="torch.compile backend (default inductor; --dry-run: eager)")
    p.add_argument("--budget-s", type=float, default=540.0,
                   help="stop starting new back-ends after this many seconds (default 540)")
    args = p.parse_args(argv)
    dry = args.dry_run
    args.device = args.device or ("cpu" if dry else "cuda")
    args.resolution = args.resolution or (8 if dry else 1024)
    args.batch = args.batch or (2 if dry else 48)
    args.dtype = args.dtype or ("fp32" if dry else "fp16")
    args.warmup = 1 if args.warmup is None and dry else (3 if args.warmup is None else args.warmup)
    args.iters = 2 if args.iters is None and dry else (20 if args.iters is None else args.iters)
    args.compile_backend = args.compile_backend or ("eager" if dry else "inductor")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bad = [b for b in args.backends if b not in BACKENDS]
    if bad:
        p.error(f"unknown back-end(s) {bad}; choose from {', '.join(BACKENDS)}")
    if args.out is None:
        args.out = str(Path(tempfile.mkdtemp(prefix="ganzoo-gpu-dry-")) / "gpu.md") if dry else str(ROOT / "docs" / "gpu.md")
    return args


def environment(device: str) -> dict:
    import torch

    env = {"torch": torch.__version__, "python": platform.python_version(), "host": platform.node(),
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            env["driver"] = "unknown"
    else:
        from zoo.environment import hardware

        hw = hardware("cpu")
        env["gpu"] = f"none (CPU dry run: {hw['cpu_model']}, {torch.get_num_threads()} threads)"
    for pkg in ("tensorrt", "torch_tensorrt"):
        try:
            from importlib.metadata import version

            env[pkg] = version(pkg.replace("_", "-"))
        except Exception:  # noqa: BLE001 - not installed
            env[pkg] = None
    return env


def tensorrt_available(device: str) -> str | None:
    """None when TensorRT can run here, else why not."""
    if not device.startswith("cuda"):
        return "needs CUDA"
    try:
        import tensorrt  # noqa: F401
        import torch_tensorrt  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means: not here
        return f"not installed ({type(e).__name__}: {e})"[:200]
    return None


def build_calls(backend: str, args, workdir: Path) -> tuple[dict, dict]:
    """{ch_mul: call} of one back-end at every width, and facts about how they were built."""
    import torch

    from zoo.export.graph import build_graph, fixed_inputs, input_specs
    from zoo.export.options import torch_dtype

    dtype = torch_dtype(args.dtype)
    calls, facts = {}, {"build_s": {}}
    for w in WIDTHS:
        t0 = time.perf_counter()
        G = generator(w, args.resolution)
        feeds = list(fixed_inputs(input_specs(G), args.batch, G.c_dim, args.device).values())
        if backend == "tensorrt":
            from zoo.export.exporter import export_generator
            from zoo.runtime.base import BatchRange
            from zoo.runtime.tensorrt import TrtGenerator

            path, meta = export_generator(G, workdir / f"trt-{w.replace('/', '_')}", backend="tensorrt",
                                          dtype=args.dtype, batch=BatchRange.static(args.batch), device=args.device)
            gen = TrtGenerator(path, device=args.device)
            feed_dict = fixed_inputs(input_specs(G), args.batch, G.c_dim, args.device)
            calls[w] = (lambda g=gen, f=feed_dict: g._run(f))
            facts.setdefault("verification", {})[w] = meta.get("verification")
        else:
            graph = build_graph(G, dtype, dtype).to(args.device)
            if backend == "eager":
                calls[w] = (lambda g=graph, f=feeds: g(*f))
            else:
                mode = "reduce-overhead" if args.device.startswith("cuda") else None
                compiled = torch.compile(graph, backend=args.compile_backend, mode=mode, dynamic=False)
                facts.update(compile_backend=args.compile_backend, compile_mode=mode)

                def call(c=compiled, f=feeds):
                    if hasattr(torch, "compiler") and hasattr(torch.compiler, "cudagraph_mark_step_begin"):
                        torch.compiler.cudagraph_mark_step_begin()  # outputs of earlier replays are not kept
                    return c(*f)
                calls[w] = call
        facts["build_s"][w] = round(time.perf_counter() - t0, 2)
    return calls, facts


def measure_backend(backend: str, args, workdir: Path) -> dict:
    import torch

    from zoo.export.bench import measure_interleaved

    t0 = time.perf_counter()
    calls, facts = build_calls(backend, args, workdir)
    results = measure_interleaved(calls, args.batch, warmup=args.warmup, iters=args.iters, device=args.device)
    rows = {}
    for w in WIDTHS:
        r = results[w]
        rows[w] = {"median_ms": r["median_ms"], "min_ms": r["min_ms"], "p90_ms": r["p90_ms"],
                   "images_per_s": r["images_per_s"], "peak_mem_mb": r.get("peak_mem_mb"),
                   "speedup": results["1"]["median_ms"] / r["median_ms"]}
    del calls
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {"status": "ok", "rows": rows, "seconds": round(time.perf_counter() - t0, 1), **facts}


def _fmt(x, spec):
    return "—" if x is None else format(x, spec)


def render(report: dict) -> str:
    a, env, paper = report["settings"], report["environment"], report["paper_v100"]
    dry = a["dry_run"]
    cuda = a["device"].startswith("cuda")
    timer = "CUDA events" if cuda else "time.perf_counter"
    lines = ["# StyleGAN2 FFHQ-1024 on a GPU: latency and speedup by width", ""]
    if dry:
        lines += ["> **CPU dry run** of `scripts/gpu_table.py` at a tiny size: these figures exercise the code path and",
                  "> say nothing about GPU speed.", ""]
    lines += [f"GPU: **{env['gpu']}**" + (f" (compute capability {env['capability']}, driver {env['driver']}, "
                                           f"CUDA {env['cuda']})" if "cuda" in env else ""),
              f"torch {env['torch']}, TensorRT {env.get('tensorrt') or 'not installed'}, "
              f"torch-tensorrt {env.get('torch_tensorrt') or 'not installed'}; {env['date']}.",
              "",
              f"`{NAME}` (config F) at {a['resolution']} px, batch {a['batch']}, {a['dtype']}, random weights, constant "
              f"noise; {a['warmup']} warm-up calls, then {a['iters']} alternating rounds of the four widths per back-end "
              f"({timer}); ms per batch (median), speedup = full-width median / this width's, measured in the same "
              "rounds.  Paper: DGL-GAN Table 2, V100, batch 48 (1.49 / 0.67 / 0.43 / 0.34 s per batch).",
              "",
              f"Command: `{report['command']}`", ""]
    header = "| ch_mul |"
    sep = "|---|"
    for b in a["backends"]:
        header += f" {label(b, a['dtype'], a['device'])} ms | img/s | speedup |"
        sep += "---|---|---|"
    header += " paper V100 speedup |"
    sep += "---|"
    lines += [header, sep]
    for w in WIDTHS:
        row = f"| {w} |"
        for b in a["backends"]:
            res = report["backends"].get(b, {})
            r = res.get("rows", {}).get(w) if res.get("status") == "ok" else None
            row += (f" {_fmt(r and r['median_ms'], '.1f')} | {_fmt(r and r['images_per_s'], '.0f')} |"
                    f" {_fmt(r and r['speedup'], '.2f')}{'x' if r else ''} |")
        row += f" {paper[w]:.2f}x |"
        lines.append(row)
    lines.append("")
    for b in a["backends"]:
        res = report["backends"].get(b, {"status": "not run"})
        if res.get("status") != "ok":
            lines.append(f"* {label(b, a['dtype'], a['device'])}: {res['status']}" + (f" — {res['reason']}" if res.get("reason") else ""))
        else:
            extra = f", compile backend {res['compile_backend']}, mode {res['compile_mode']}" if b == "compile" else ""
            lines.append(f"* {label(b, a['dtype'], a['device'])}: built and timed in {res['seconds']} s{extra}.")
    lines.append("")
    return "\n".join(lines)


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report))
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_table: torch sees no CUDA device; use --dry-run for the CPU check", file=sys.stderr)
        return 2
    if args.device == "cpu":
        torch.set_num_threads(1)  # a dry run checks the code path; one thread is immune to spin-waiting on a shared box
    start = time.perf_counter()
    out = Path(args.out)
    report = {"format": "ganzoo-gpu-table/1", "model": NAME,
              "command": "python scripts/gpu_table.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
              "settings": {"dry_run": args.dry_run, "device": args.device, "resolution": args.resolution,
                           "batch": args.batch, "dtype": args.dtype, "warmup": args.warmup, "iters": args.iters,
                           "backends": args.backends},
              "environment": environment(args.device), "paper_v100": paper_speedups(),
              "paper_v100_s": PAPER_V100_S, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="ganzoo-gpu-") as tmp:
        for b in args.backends:
            elapsed = time.perf_counter() - start
            if b == "tensorrt" and (why := tensorrt_available(args.device)):
                report["backends"][b] = {"status": "skipped", "reason": why}
            elif elapsed > args.budget_s:
                report["backends"][b] = {"status": "skipped", "reason": f"time budget ({args.budget_s:.0f} s) spent"}
            else:
                print(f"[gpu_table] {label(b, args.dtype, args.device)} ...", flush=True)
                try:
                    report["backends"][b] = measure_backend(b, args, Path(tmp))
                except Exception as e:  # noqa: BLE001 - record it and go on with the next back-end
                    report["backends"][b] = {"status": "failed", "reason": f"{type(e).__name__}: {e}"[:500]}
                    if args.dry_run:
                        raise
            write(report, out)
            print(f"[gpu_table] {label(b, args.dtype, args.device)}: {report['backends'][b]['status']}", flush=True)
    write(report, out)
    print(render(report))
    print(f"[gpu_table] wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
