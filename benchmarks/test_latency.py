"""Inference latency gates (CI: ``make bench-ci``): same-run ratios only, never absolute times.

StyleGAN2 config F widths at 128 px (``stylegan2-ffhq`` with ``resolution=128``: the 512-channel
blocks and the width rule of the paper's model, at a size a 2-core CPU times in seconds), batch 1,
eager PyTorch and its ONNX Runtime export.  On CPU every width and back-end is timed in round-robin
rounds in one process, each call preceded by the fixed reference kernel
(``conftest.reference_kernel``: a plain-PyTorch conv / transposed conv / blur block), and gated on

* **student vs teacher**: min(teacher) / min(student) >= a floor per width (eager and ONNX);
* **reference units**: min(model) / min(reference kernel) <= a ceiling per width (eager).  Ratios between
  widths cannot see a slowdown that hits every width alike (a slower shared op, lost allocator
  tuning); this can, and it holds across CPUs far better than milliseconds do;
* **ONNX Runtime vs eager**: min(ORT) / min(eager) <= a ceiling per width.

Every threshold is set from the figures of 12 runs of the gates on the reference machine (6 at its own
instruction set, 5 with ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``: an AVX2-only x86-64 CPU as
far as oneDNN and ATen are concerned, 1 with the oneDNN cap alone), with the margin stated next to it; the figures are
in docs/performance.md ("Regression gates in CI").  Absolute numbers and the CPU land in the benchmark
JSON's ``extra_info`` (report only).

    make bench-ci                                  # the CI gates (this file + the training gate)
    GANZOO_BENCH_DEVICE=cuda pytest benchmarks/test_latency.py --benchmark-only   # GPU: speedups recorded, not gated
"""
from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.ci_gate

DEVICE = os.environ.get("GANZOO_BENCH_DEVICE", "cpu")
# one thread by default (restored afterwards): two threads on two cores shared with other jobs spin-wait
# on each other and make single calls up to 10x slower at random, which ruins ratios; override with
# GANZOO_LATENCY_THREADS (GANZOO_BENCH_THREADS, which conftest.py pins for the other benchmarks, is not
# used).  The thresholds below are 1-thread figures.
THREADS = int(os.environ.get("GANZOO_LATENCY_THREADS", "1"))
NAME, RESOLUTION, BATCH = "stylegan2-ffhq", 128, 1
WIDTHS = ("1", "1/2", "1/4", "1/8")
WARMUP = 1
ROUNDS = int(os.environ.get("GANZOO_GATE_ROUNDS", "15"))

# Thresholds.  Figures: 12 runs of the gates on the reference machine (AMD EPYC, AVX-512, 2 cores, 1 thread,
# 2026-12-06; docs/performance.md, "Regression gates in CI"): 6 at its own ISA, 5 with
# ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 (an AVX2-only x86-64 CPU as far as oneDNN and ATen are
# concerned) and one with ONEDNN_MAX_CPU_ISA=AVX2 alone; "a-b" is the range over all of them.  At one ISA a
# figure moved up to 10 % between runs; across ISAs the 1/8 eager speedup moved 31-34x -> 40-42x and 1/8
# in reference units 9.6-10.5 -> 7.7-8.0.  Margins are wider than both because a CPU not measured here can
# differ more (issue 18: another machine's width speedups were 3-29 % below this one's).
#
# min(teacher) / min(student), eager (3.62-3.93 / 12.0-13.7 / 31.2-42.4) and ONNX Runtime
# (3.46-3.75 / 11.6-12.7 / 33.5-37.4): floor = lowest x 0.7 (30 % margin)
SPEEDUP_GATES = {"1/2": 2.5, "1/4": 8.4, "1/8": 21.8}
ONNX_SPEEDUP_GATES = {"1/2": 2.4, "1/4": 8.1, "1/8": 23.4}
# min(eager) / min(reference kernel): 1 310-328, 1/2 80.0-88.6, 1/4 23.7-26.2, 1/8 7.68-10.5;
# ceiling = highest x 1.35 (35 % margin).  A slowdown of 1.4x or more that hits every width fails here.
REF_UNIT_GATES = {"1": 443.0, "1/2": 120.0, "1/4": 35.4, "1/8": 14.2}
# min(ONNX Runtime) / min(eager) at the same width: 0.89-1.09 at the own ISA (the AVX2 runs, 0.54-0.66,
# cap only oneDNN/ATen, not ONNX Runtime's MLAS kernels, so they say nothing here); the Xeon of
# docs/performance.md measured up to 1.32 (2 threads, church-256).  Ceiling = 1.32 x 1.25.
ORT_OVER_EAGER_GATES = {"1": 1.65, "1/2": 1.65, "1/4": 1.65, "1/8": 1.65}
MARGINS = {"speedup": 0.30, "ref_units": 0.35, "ort_over_eager": 0.25}


@pytest.fixture(scope="module")
def timings(tmp_path_factory, eager_and_onnx_calls, gate_times):
    """{(ch_mul, backend): {"min_ms", "median_ms", "ref_units"}, "reference_min_ms": ...} plus the calls."""
    from zoo.export.bench import measure_interleaved

    previous = torch.get_num_threads()
    if DEVICE == "cpu":
        torch.set_num_threads(THREADS)
    try:
        calls = eager_and_onnx_calls(NAME, WIDTHS, BATCH, tmp_path_factory, THREADS, device=DEVICE,
                                     onnx=DEVICE == "cpu", resolution=RESOLUTION)
        if DEVICE == "cpu":
            with torch.inference_mode():
                results = gate_times(calls, ROUNDS, warmup=WARMUP, settle_s=0.1 if THREADS > 1 else 0.0)
        else:
            results = measure_interleaved(calls, BATCH, WARMUP, ROUNDS, DEVICE)
        yield results, calls
    finally:
        torch.set_num_threads(previous)


def _record(benchmark, fn, **info):
    """Put the same-run figures in the benchmark JSON and let pytest-benchmark time the candidate too."""
    benchmark.extra_info.update(info, config=f"{NAME} {RESOLUTION}px", batch=BATCH, threads=THREADS, rounds=ROUNDS,
                                device=DEVICE)
    with torch.inference_mode():
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("backend", ["eager", "onnx"])
@pytest.mark.parametrize("ch_mul", list(SPEEDUP_GATES))
def test_student_speedup_over_teacher(benchmark, timings, ch_mul, backend):
    results, calls = timings
    if (ch_mul, backend) not in calls:
        pytest.skip(f"{backend} is measured on CPU only")
    teacher, student = results[("1", backend)], results[(ch_mul, backend)]
    speedup = teacher["min_ms"] / student["min_ms"]
    gate = (SPEEDUP_GATES if backend == "eager" else ONNX_SPEEDUP_GATES)[ch_mul]
    _record(benchmark, calls[(ch_mul, backend)], ch_mul=ch_mul, backend=backend,
            teacher_min_ms=teacher["min_ms"], student_min_ms=student["min_ms"],
            teacher_median_ms=teacher["median_ms"], student_median_ms=student["median_ms"], speedup=speedup,
            gate=gate, margin=MARGINS["speedup"])
    if DEVICE != "cpu":
        return  # GPU: recorded only (launch-bound at this size; the GPU figures come from scripts/gpu_table.py)
    assert speedup >= gate, (
        f"ch_mul {ch_mul} ({backend}) is only {speedup:.2f}x faster than the teacher "
        f"(min {student['min_ms']:.1f} vs {teacher['min_ms']:.1f} ms); gate {gate}x")


@pytest.mark.parametrize("ch_mul", WIDTHS)
def test_latency_in_reference_units(benchmark, timings, ch_mul):
    results, calls = timings
    if DEVICE != "cpu":
        pytest.skip("reference-kernel units are a CPU gate")
    r = results[(ch_mul, "eager")]
    gate = REF_UNIT_GATES[ch_mul]
    _record(benchmark, calls[(ch_mul, "eager")], ch_mul=ch_mul, backend="eager", min_ms=r["min_ms"],
            median_ms=r["median_ms"], reference_min_ms=results["reference_min_ms"],
            reference_median_ms=results["reference_median_ms"], ref_units=r["ref_units"], gate=gate,
            margin=MARGINS["ref_units"])
    assert r["ref_units"] <= gate, (
        f"ch_mul {ch_mul} (eager) takes {r['ref_units']:.1f} reference-kernel units "
        f"({r['min_ms']:.1f} ms / {results['reference_min_ms']:.3f} ms); gate {gate}")


@pytest.mark.parametrize("ch_mul", WIDTHS)
def test_onnx_runtime_vs_eager(benchmark, timings, ch_mul):
    results, calls = timings
    if (ch_mul, "onnx") not in calls:
        pytest.skip("ONNX Runtime is measured on CPU only")
    eager, ort = results[(ch_mul, "eager")], results[(ch_mul, "onnx")]
    ratio = ort["min_ms"] / eager["min_ms"]
    gate = ORT_OVER_EAGER_GATES[ch_mul]
    _record(benchmark, calls[(ch_mul, "onnx")], ch_mul=ch_mul, eager_min_ms=eager["min_ms"],
            onnx_min_ms=ort["min_ms"], onnx_over_eager=ratio, gate=gate, margin=MARGINS["ort_over_eager"])
    assert ratio <= gate, f"ONNX Runtime takes {ratio:.2f}x eager's time at ch_mul {ch_mul}; gate {gate}x"


def test_gates_run_with_the_tuned_allocator(benchmark):
    """The thresholds are figures of processes with zoo's tuned glibc malloc (conftest re-executes pytest
    with it, as ``zoo`` commands do).  Timing cannot see lost tuning at this size (1 thread, batch 1: full
    width at 128 px measured the same with and without it, at 256 px 1.16x slower), so this checks that
    the re-exec happened: fails when this process runs glibc's default malloc although the tuning applies
    (glibc, no ``GANZOO_NO_MALLOC_TUNING``, no MALLOC_* of the user's, no preloaded allocator)."""
    from zoo.launch import allocator_settings, tuning_applies

    benchmark.extra_info.update(allocator=allocator_settings() or "glibc default")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # a record in the JSON, no timing
    assert not tuning_applies(), "the gates ran with glibc's default malloc: conftest's re-exec (zoo.launch) did not happen"


def test_batched_serving_vs_unbatched():
    """Placeholder for issue 18's serving gate: batched vs one-request-at-a-time ``zoo serve`` throughput
    at the same width, as a same-run ratio (skipped: see the message)."""
    pytest.skip("no CI gate for serving yet: zoo serve's dynamic batching (issue 17) is measured by "
                "benchmarks/test_serve_load.py, which takes minutes; a quick batched/unbatched ratio belongs there")
