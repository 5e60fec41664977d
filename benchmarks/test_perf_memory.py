"""Peak resident memory (issue 9, target 5): G inference at 1024 px batch 1, and a training step.

Each figure comes from a fresh interpreter (``peak_rss_mb``): VmHWM after the measured work, and its
growth over the RSS just before it (model already built), in MB.  Gates: no regression over the
figures recorded in docs/performance.md (growth within 1.25x of them), and, when
``GANZOO_NVLABS_PATH`` is set, no more than NVlabs stylegan2-ada-pytorch needs for the same work.
Allocator settings change these numbers (they are recorded in extra_info), so compare like with like.
"""
from __future__ import annotations

import os

import pytest

# growth in MB measured on the reference machine with the tuned allocator (docs/performance.md):
# inference 656-729 MB; training step 1190-1220 MB (one run 1476).  The training figure recorded
# earlier (1060 MB) did not reproduce later on the same machine: the code of that commit measured
# 1252-1283 MB in the same session as the current 1190-1220, so the baseline moved, not the code.
BASELINE_GROWTH_MB = {"inference_1024": 700.0, "train_step_64": 1220.0}
REGRESSION_FACTOR = 1.25
# The same code's peak is bimodal between fresh processes (1024-px inference: ~730 or ~1090-1185 MB, for
# this code and for the previous commit alike; NVlabs' too), so each figure is the lowest of REPEATS runs.
REPEATS = 3
NVLABS_FACTOR = 1.1

OURS_INFERENCE = """
from zoo.models import build_generator
from zoo.models.stylegan2_fast import prepare
G = prepare(build_generator("stylegan2-ffhq", ch_mul="1").eval())
z = torch.randn(1, 512)
baseline_kb = _kb("VmRSS")
with torch.inference_mode():
    G(z, noise_mode="const")
"""
NVLABS_INFERENCE = """
import sys
sys.path.insert(0, {path!r})
import training.networks as networks
G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                       mapping_kwargs=dict(num_layers=8),
                       synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=0,
                                             conv_clamp=None)).eval()
z = torch.randn(1, 512)
baseline_kb = _kb("VmRSS")
with torch.inference_mode():
    G(z, None, noise_mode="const")
"""
TRAIN_STEP = """
import sys
sys.path.insert(0, "benchmarks")
{setup}
from test_perf_training import Step
step = Step(G, D)
baseline_kb = _kb("VmRSS")
step()
"""
OURS_PAIR = """
from zoo.models import build_discriminator, build_generator
G, D = build_generator("stylegan2-emoji"), build_discriminator("stylegan2-emoji")
"""
NVLABS_PAIR = """
sys.path.insert(0, {path!r})
import training.networks as networks
from test_perf_training import _nvlabs_pair
G, D = _nvlabs_pair(networks, "1")
"""


def _nvlabs_path():
    return os.environ.get("GANZOO_NVLABS_PATH")


def _lowest_of(peak_rss_mb, code: str, repeats: int = REPEATS) -> dict:
    """The run with the least growth of ``repeats`` fresh processes, and every run's growth."""
    runs = [peak_rss_mb(code) for _ in range(repeats)]
    return {**min(runs, key=lambda r: r["growth_mb"]), "all_growth_mb": [round(r["growth_mb"], 1) for r in runs]}


@pytest.mark.parametrize("case", ["inference_1024", "train_step_64"])
def test_peak_memory(benchmark, peak_rss_mb, case):
    ours_code = OURS_INFERENCE if case == "inference_1024" else TRAIN_STEP.format(setup=OURS_PAIR)
    result = {}
    benchmark.pedantic(lambda: result.update(ours=_lowest_of(peak_rss_mb, ours_code)), rounds=1, iterations=1)
    path = _nvlabs_path()
    if path:
        nv_code = (NVLABS_INFERENCE if case == "inference_1024"
                   else TRAIN_STEP.format(setup=NVLABS_PAIR.format(path=path))).format(path=path)
        result["nvlabs"] = _lowest_of(peak_rss_mb, nv_code)
    benchmark.extra_info.update(case=case, **result, baseline_growth_mb=BASELINE_GROWTH_MB[case])
    print(f"\n  {case}: {result}")
    ours = result["ours"]
    assert ours["growth_mb"] <= REGRESSION_FACTOR * BASELINE_GROWTH_MB[case], "peak memory regressed"
    if "nvlabs" in result:
        assert ours["growth_mb"] <= NVLABS_FACTOR * result["nvlabs"]["growth_mb"], "more memory than NVlabs"
