"""Eager generator inference on CPU (issue 9, targets 1, 2 and BigGAN's part of 4), as same-run ratios.

* StyleGAN2 church-256 (config F, 256 px), batch 2, constant noise, ``torch.inference_mode``, prepared
  for inference (``zoo.models.stylegan2_fast.prepare``, as ``zoo.load`` does), every width: ms per
  batch, speedup over the full-width model, and that speedup as a percentage of the executed-MAC ratio
  (fvcore MACs of the module as built: 45.33 / 11.41 / 2.89 / 0.74 G per image).
  With ``GANZOO_NVLABS_PATH`` set, NVlabs stylegan2-ada-pytorch's Generator at the same architecture
  (``channel_base=32768*m``, ``channel_max=512*m``, fp32, no conv clamp) is timed in the same rounds.
* BigGAN-128 (biggan-imagenet), batch 2, every width: recorded, with a sanity gate only.

Timings are medians of round-robin calls (``interleaved_ms``), so load from other processes hits
every model alike.  Figures: ``extra_info`` of the benchmark JSON and docs/performance.md.

    make bench          # or: python -m zoo.launch .venv/bin/python -m pytest benchmarks/test_perf_inference.py --benchmark-only
"""
from __future__ import annotations

import os
from fractions import Fraction

import torch

BATCH = 2
ROUNDS = int(os.environ.get("GANZOO_BENCH_ROUNDS", "5"))
SG2_WIDTHS = ("1", "1/2", "1/4", "1/8")
# Regression gates, well below the figures measured on the reference 2-core machine (docs/performance.md:
# 3.6x / 11.0x / 25.3x with the tuned allocator; 17x at 1/8 in a run disturbed by other load) so that a
# loaded CI box passes; issue 9's targets (3.6x / 12x / 30x) are not all met and are reported in
# extra_info, not gated.
SPEEDUP_GATES = {"1/2": 2.6, "1/4": 7.0, "1/8": 15.0}
SPEEDUP_TARGETS = {"1/2": 3.6, "1/4": 12.0, "1/8": 30.0}
# Competitive target, not a gate: ours at least as fast as NVlabs at the same width (ratio of medians).
# Measured 1.15-1.42x at full width, 1.5-2.5x narrower on the Xeon of docs/performance.md; 1.17-1.23x at
# full width on an AMD EPYC (issue 18).  How far ahead depends on the CPU, so a missed target is reported
# (with the CPU, in extra_info and as a warning), never a failure; CI does not run this (no NVlabs there).
NVLABS_TARGET = 1.0
BIGGAN_WIDTHS = ("1", "1/2", "1/3", "1/4")


def _nvlabs_generator(networks, ch_mul: str):
    m = Fraction(ch_mul)
    return networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
                              mapping_kwargs=dict(num_layers=8),
                              synthesis_kwargs=dict(channel_base=int(32768 * m), channel_max=int(512 * m),
                                                    num_fp16_res=0, conv_clamp=None)).eval()


def _executed_macs(G) -> int:
    from zoo.export.stats import fvcore_macs

    return fvcore_macs(G)


def _stylegan2_table(request, with_nvlabs: bool, interleaved_ms):
    from zoo.models import build_generator
    from zoo.models.stylegan2_fast import prepare

    networks = request.getfixturevalue("nvlabs") if with_nvlabs else None
    torch.manual_seed(0)
    z = torch.randn(BATCH, 512)
    calls, macs = {}, {}
    for w in SG2_WIDTHS:
        G = prepare(build_generator("stylegan2-church", ch_mul=w).eval())  # the inference fast path, as zoo.load
        macs[w] = _executed_macs(G)
        calls[("ours", w)] = (lambda G=G: G(z, noise_mode="const"))
        if networks is not None:
            NV = _nvlabs_generator(networks, w)
            calls[("nvlabs", w)] = (lambda NV=NV: NV(z, None, noise_mode="const"))
    with torch.inference_mode():
        times = interleaved_ms(calls, rounds=ROUNDS)
    from statistics import median

    ms = {k: median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    table = {}
    for impl in ("ours", "nvlabs"):
        if (impl, "1") not in ms:
            continue
        for w in SG2_WIDTHS:
            speedup = ms[(impl, "1")] / ms[(impl, w)]
            mac_ratio = macs["1"] / macs[w]
            # min-over-rounds figures too: on a shared machine noise only ever adds time
            table[f"{impl} {w}"] = {"ms": round(ms[(impl, w)], 2), "speedup": round(speedup, 2),
                                    "pct_of_mac_limit": round(100 * speedup / mac_ratio, 1),
                                    "min_ms": round(best[(impl, w)], 2),
                                    "speedup_of_min": round(best[(impl, "1")] / best[(impl, w)], 2)}
    return ms, table, macs


def _check_speedups(ms):
    for w, gate in SPEEDUP_GATES.items():
        speedup = ms[("ours", "1")] / ms[("ours", w)]
        assert speedup >= gate, f"ch_mul {w}: {speedup:.2f}x over full width, gate {gate}x"


def test_stylegan2_width_speedups(benchmark, interleaved_ms, request):
    """Target 2 (speedup of each width over the full-width model), ours only (no NVlabs needed)."""
    result = {}
    benchmark.pedantic(lambda: result.update(zip(("ms", "table", "macs"),
                                                  _stylegan2_table(request, False, interleaved_ms))),
                       rounds=1, iterations=1)
    benchmark.extra_info.update(config="stylegan2-church 256px", batch=BATCH, rounds=ROUNDS,
                                table=result["table"], executed_macs_per_image=result["macs"],
                                targets=SPEEDUP_TARGETS, gates=SPEEDUP_GATES)
    print("\n" + "\n".join(f"  {k}: {v}" for k, v in result["table"].items()))
    _check_speedups(result["ms"])


def test_stylegan2_vs_nvlabs(benchmark, interleaved_ms, request, nvlabs, report_targets):
    """Target 1 (at least as fast as NVlabs at full width) and target 2 side by side with NVlabs: a
    competitive target, reported with the CPU (``conftest.report_targets``), not a gate."""
    result = {}
    benchmark.pedantic(lambda: result.update(zip(("ms", "table", "macs"),
                                                  _stylegan2_table(request, True, interleaved_ms))),
                       rounds=1, iterations=1)
    ms = result["ms"]
    ratios = {w: round(ms[("nvlabs", w)] / ms[("ours", w)], 2) for w in SG2_WIDTHS}
    benchmark.extra_info.update(config="stylegan2-church 256px", batch=BATCH, rounds=ROUNDS,
                                table=result["table"], ours_over_nvlabs=ratios)
    print("\n" + "\n".join(f"  {k}: {v}" for k, v in result["table"].items()) + f"\n  NVlabs/ours: {ratios}")
    report_targets(benchmark, {f"NVlabs time / ours at ch_mul {w}": (ratios[w], NVLABS_TARGET) for w in SG2_WIDTHS})


def test_biggan_width_timings(benchmark, interleaved_ms):
    """BigGAN-128 eager at each width (recorded; gate: narrower widths are not slower)."""
    from statistics import median

    from zoo.models import build_generator

    torch.manual_seed(0)
    calls = {}
    for w in BIGGAN_WIDTHS:
        G = build_generator("biggan-imagenet", ch_mul=w).eval()
        z, c = torch.randn(BATCH, G.z_dim), torch.arange(BATCH)
        calls[w] = (lambda G=G, z=z, c=c: G(z, c))
    times = {}

    def measure():
        with torch.inference_mode():
            times.update(interleaved_ms(calls, rounds=ROUNDS))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ms = {w: median(v) for w, v in times.items()}
    table = {w: {"ms": round(ms[w], 2), "speedup": round(ms["1"] / ms[w], 2)} for w in BIGGAN_WIDTHS}
    benchmark.extra_info.update(config="biggan-imagenet 128px", batch=BATCH, rounds=ROUNDS, table=table)
    print("\n" + "\n".join(f"  biggan {k}: {v}" for k, v in table.items()))
    for wide, narrow in zip(BIGGAN_WIDTHS, BIGGAN_WIDTHS[1:]):
        assert ms[narrow] < 1.1 * ms[wide], f"BigGAN ch_mul {narrow} is slower than {wide}"


# ONNX Runtime over eager (target 4 asks >= 1.5x): measured 0.8-0.9x at church-256 b2, 2 threads (ORT is
# the slower one: its ConvTranspose is ~35 % of its time at 1/8, plus NCHWc reorders around every conv);
# the gate guards against a regression of that level, the target is reported in extra_info.
ORT_OVER_EAGER_GATE = 0.6
ORT_OVER_EAGER_TARGET = 1.5


def test_onnx_runtime_vs_eager(benchmark, tmp_path_factory, eager_and_onnx_calls):
    """Target 4: ONNX Runtime (CPU provider, 2 intra-op threads) vs eager, church-256 b2, every width.
    Timed with ``export.bench.measure_interleaved`` (a settle pause before each call: ORT's threads spin
    20-50 ms after a run and would otherwise slow the next eager call ~2x)."""
    import pytest

    pytest.importorskip("onnxruntime")
    from zoo.export.bench import measure_interleaved

    threads = torch.get_num_threads()
    calls = eager_and_onnx_calls("stylegan2-church", SG2_WIDTHS, BATCH, tmp_path_factory, threads)
    results = {}
    benchmark.pedantic(lambda: results.update(measure_interleaved(calls, BATCH, warmup=1, iters=ROUNDS)),
                       rounds=1, iterations=1)
    ratio = {w: round(results[(w, "eager")]["median_ms"] / results[(w, "onnx")]["median_ms"], 2) for w in SG2_WIDTHS}
    table = {f"{b} {w}": round(results[(w, b)]["median_ms"], 2) for (w, b) in calls}
    benchmark.extra_info.update(config="stylegan2-church 256px", batch=BATCH, threads=threads, ms=table,
                                ort_speedup_over_eager=ratio, target=ORT_OVER_EAGER_TARGET,
                                gate=ORT_OVER_EAGER_GATE)
    print(f"\n  ms: {table}\n  ORT speedup over eager: {ratio} (target {ORT_OVER_EAGER_TARGET}x)")
    for w, r in ratio.items():
        assert r >= ORT_OVER_EAGER_GATE, f"ch_mul {w}: ONNX Runtime at {r:.2f}x of eager's speed"
