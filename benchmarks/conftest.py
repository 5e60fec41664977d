"""Shared set-up for ``benchmarks/`` (run with ``make bench``; never part of the default test run).

* The intra-op thread count is pinned (``GANZOO_BENCH_THREADS``, default 2: the figures in
  docs/performance.md are 2-thread figures) and, with the allocator variables the process runs with,
  written into every benchmark's ``extra_info`` and the pytest header.  CPU timings are only
  comparable under the same allocator settings, so pytest re-executes itself once with the tuned
  glibc malloc settings of ``zoo.launch`` (as ``zoo`` commands do) unless any MALLOC_* variable is
  already set or ``GANZOO_NO_MALLOC_TUNING=1``.
* ``nvlabs`` gives NVlabs stylegan2-ada-pytorch's ``training.networks`` module from the checkout named
  by ``GANZOO_NVLABS_PATH`` (never vendored here), or skips the test with a message.
* fixture ``interleaved_ms`` times several callables round-robin, so that load from other processes
  hits all of them alike and the ratios between them stay meaningful; fixture ``peak_rss_mb``
  measures the peak resident memory of a snippet in a fresh interpreter.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

THREADS = int(os.environ.get("GANZOO_BENCH_THREADS", "2"))
NVLABS_ENV = "GANZOO_NVLABS_PATH"


def _settings() -> dict:
    from zoo.launch import allocator_settings

    return {"threads": THREADS, "allocator": allocator_settings() or "glibc default (untuned)"}


def pytest_configure(config):
    from zoo.launch import ensure_malloc_tuning, tuning_applies

    if tuning_applies():
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:  # give the re-executed pytest the real stdout/stderr back
            capture.stop_global_capturing()
        ensure_malloc_tuning()


def pytest_report_header(config):
    s = _settings()
    return f"ganzoo benchmarks: {s['threads']} threads, allocator {s['allocator']}"


@pytest.fixture(scope="session", autouse=True)
def _pin_threads():
    import torch

    torch.set_num_threads(THREADS)
    yield


@pytest.fixture(autouse=True)
def _record_settings(request):
    if "benchmark" in request.fixturenames:
        request.getfixturevalue("benchmark").extra_info.update(_settings())
    yield


@pytest.fixture(scope="session")
def nvlabs():
    """NVlabs stylegan2-ada-pytorch ``training.networks`` (from $GANZOO_NVLABS_PATH), else skip."""
    path = os.environ.get(NVLABS_ENV)
    if not path:
        pytest.skip(f"set {NVLABS_ENV} to a checkout of github.com/NVlabs/stylegan2-ada-pytorch to compare with it")
    if not (Path(path) / "training" / "networks.py").is_file():
        pytest.fail(f"{NVLABS_ENV}={path} is not a stylegan2-ada-pytorch checkout (no training/networks.py)")
    # appended, not prepended: the checkout's top-level train.py would otherwise shadow our `train` package
    if path not in sys.path:
        sys.path.append(path)
    import training.networks as networks

    return networks


def interleaved_ms(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Milliseconds per call of each callable, called round-robin ``rounds`` times after ``warmup``."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1000)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_rss_mb(code: str, timeout: float = 900) -> dict:
    """Run ``code`` in a fresh interpreter (same environment, pinned threads); it may set a variable
    ``baseline_kb`` (VmRSS before the measured part).  Returns peak RSS (VmHWM) and its growth, in MB."""
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads({THREADS})
        def _kb(field):
            for line in open("/proc/self/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        baseline_kb = 0
    """) + textwrap.dedent(code) + textwrap.dedent("""
        print("PEAK", _kb("VmHWM"), baseline_kb)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode:
        raise RuntimeError(f"memory probe failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PEAK")][-1]
    peak_kb, base_kb = map(int, line.split()[1:])
    return {"peak_mb": peak_kb / 1024, "growth_mb": (peak_kb - base_kb) / 1024}


def eager_and_onnx_calls(name: str, widths, batch: int, tmp_path_factory, threads: int,
                         device: str = "cpu", onnx: bool = True, **overrides) -> dict:
    """{(ch_mul, "eager" | "onnx"): call} for each width of ``name``: the export graph
    (``export.graph.build_graph``) in eager PyTorch and, when ``onnx``, its verified ONNX export in ONNX
    Runtime with ``threads`` intra-op threads (exported into fresh ``tmp_path_factory`` directories), both
    fed the same fixed inputs."""
    import torch

    from export.exporter import export_generator
    from export.graph import build_graph, fixed_inputs, input_specs
    from export.onnx import OnnxGenerator
    from zoo.models import build_generator

    calls = {}
    for ch_mul in widths:
        torch.manual_seed(0)
        G = build_generator(name, ch_mul=ch_mul, **overrides).eval()
        feeds = fixed_inputs(input_specs(G), batch, G.c_dim, device)
        graph = build_graph(G).to(device)
        calls[(ch_mul, "eager")] = (lambda g=graph, f=feeds: g(*f.values()))
        if onnx:
            out = tmp_path_factory.mktemp("onnx") / ch_mul.replace("/", "_")
            path, _ = export_generator(G, out, backend="onnx")
            ort = OnnxGenerator(path, threads=threads)
            calls[(ch_mul, "onnx")] = (lambda o=ort, f=feeds: o._run(f))
    return calls


@pytest.fixture(name="interleaved_ms")
def _interleaved_ms_fixture():
    return interleaved_ms


@pytest.fixture(name="eager_and_onnx_calls", scope="session")
def _eager_and_onnx_calls_fixture():
    return eager_and_onnx_calls


@pytest.fixture(name="peak_rss_mb")
def _peak_rss_mb_fixture():
    return peak_rss_mb
