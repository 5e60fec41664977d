"""Inference latency gates: student vs teacher speedup and ONNX Runtime vs eager, measured in one run.

StyleGAN2 config F widths at 128 px (``stylegan2-ffhq`` with ``resolution=128``: the 512-channel
blocks and the width rule of the paper's model, at a size a 2-core CPU times in seconds).  All
widths and back-ends are timed in alternating rounds in one process (:func:`export.bench.measure_interleaved`)
and gated on ratios of the minimum over rounds, never on absolute times.  Bands
are generous because CI's 2 cores are shared; absolute numbers land in the benchmark JSON's
``extra_info`` (report only).

    make bench                                     # or: pytest benchmarks/test_latency.py --benchmark-only
    GANZOO_BENCH_DEVICE=cuda pytest benchmarks/test_latency.py --benchmark-only
"""
from __future__ import annotations

import os

import pytest
import torch

DEVICE = os.environ.get("GANZOO_BENCH_DEVICE", "cpu")
# one thread by default (restored afterwards): two threads on two cores shared with other jobs spin-wait
# on each other and make single calls up to 10x slower at random, which ruins ratios; override with
# GANZOO_LATENCY_THREADS (GANZOO_BENCH_THREADS, which conftest.py pins for the other benchmarks, is not used)
THREADS = int(os.environ.get("GANZOO_LATENCY_THREADS", "1"))
NAME, RESOLUTION, BATCH = "stylegan2-ffhq", 128, 2
WARMUP, ROUNDS = 1, 5
# minimum speedup (min over rounds) of each width over the full-width teacher (measured here: ~3.8x / 12x / 33x)
SPEEDUP_GATES = {"1/2": 2.0, "1/4": 4.0, "1/8": 8.0}
# ONNX Runtime may be at most this much slower than eager PyTorch (it is usually faster on CPU)
ORT_MAX_SLOWDOWN = 1.5


@pytest.fixture(scope="module")
def timings(tmp_path_factory, eager_and_onnx_calls):
    """(measurement, call) per (ch_mul, backend): every width and back-end timed in alternating rounds
    in this one process (:func:`export.bench.measure_interleaved`)."""
    from export.bench import measure_interleaved

    previous = torch.get_num_threads()
    if DEVICE == "cpu":
        torch.set_num_threads(THREADS)
    calls = eager_and_onnx_calls(NAME, ["1", *SPEEDUP_GATES], BATCH, tmp_path_factory, THREADS, device=DEVICE,
                                 onnx=DEVICE == "cpu", resolution=RESOLUTION)
    results = measure_interleaved(calls, BATCH, WARMUP, ROUNDS, DEVICE)
    yield {key: (results[key], calls[key]) for key in calls}
    torch.set_num_threads(previous)


def _record(benchmark, fn, **info):
    """Put the same-run figures in the benchmark JSON and let pytest-benchmark time the candidate too."""
    benchmark.extra_info.update(info)
    with torch.inference_mode():
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("backend", ["eager", "onnx"])
@pytest.mark.parametrize("ch_mul", list(SPEEDUP_GATES))
def test_student_speedup_over_teacher(benchmark, timings, ch_mul, backend):
    if (ch_mul, backend) not in timings:
        pytest.skip(f"{backend} is measured on CPU only")
    (teacher, _), (student, call) = timings[("1", backend)], timings[(ch_mul, backend)]
    speedup = teacher["min_ms"] / student["min_ms"]
    _record(benchmark, call, ch_mul=ch_mul, backend=backend, device=DEVICE, batch=BATCH,
            resolution=RESOLUTION, teacher_min_ms=teacher["min_ms"], student_min_ms=student["min_ms"],
            teacher_median_ms=teacher["median_ms"], student_median_ms=student["median_ms"], speedup=speedup,
            threads=THREADS)
    assert speedup >= SPEEDUP_GATES[ch_mul], (
        f"ch_mul {ch_mul} ({backend}) is only {speedup:.2f}x faster than the teacher "
        f"(min {student['min_ms']:.1f} vs {teacher['min_ms']:.1f} ms); gate {SPEEDUP_GATES[ch_mul]}x")


@pytest.mark.parametrize("ch_mul", ["1", *SPEEDUP_GATES])
def test_onnx_runtime_not_slower_than_eager(benchmark, timings, ch_mul):
    if (ch_mul, "onnx") not in timings:
        pytest.skip("ONNX Runtime is measured on CPU only")
    (eager, _), (ort, call) = timings[(ch_mul, "eager")], timings[(ch_mul, "onnx")]
    ratio = ort["min_ms"] / eager["min_ms"]
    _record(benchmark, call, ch_mul=ch_mul, eager_min_ms=eager["min_ms"], onnx_min_ms=ort["min_ms"],
            onnx_over_eager=ratio, threads=THREADS)
    assert ratio <= ORT_MAX_SLOWDOWN, (
        f"ONNX Runtime takes {ratio:.2f}x eager's time at ch_mul {ch_mul}; gate {ORT_MAX_SLOWDOWN}x")
