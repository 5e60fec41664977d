"""Training-step throughput on CPU (issue 9, target 3), ours vs NVlabs stylegan2-ada-pytorch, one run.

The 64-px config (``stylegan2-emoji``: channel_base 8192, channel_max 128, 2 mapping layers), batch
16.  One step = the generator phase (non-saturating loss through D, backward, Adam step) plus the
discriminator phase (fakes generated without autograd, logistic loss on fakes and reals, backward,
Adam step); no R1 / path-length regularisation and no augmentation, as in the notes' measurement
(NVlabs there: 11.1 / 32.0 / 73.0 img/s at widths 1, 1/2, 1/4).  For students, ours is also timed
with DGL-GAN's stage-II term: the generator loss adds the frozen full-width teacher discriminator's
non-saturating loss (one more forward/backward through a full-width D).  The same step function
drives both implementations; NVlabs is timed only when ``GANZOO_NVLABS_PATH`` is set.

This times the networks, not the training loop (``test_train_throughput.py`` times ``zoo train``).
"""
from __future__ import annotations

import os
from fractions import Fraction
from statistics import median

import pytest
import torch
import torch.nn.functional as F

BATCH = 16
ROUNDS = int(os.environ.get("GANZOO_BENCH_ROUNDS", "5"))
WIDTHS = ("1", "1/2", "1/4", "1/8")
NAME = "stylegan2-emoji"
# Competitive targets (reported with the CPU by ``make bench``, never failing it; not run in CI): img/s
# relative to NVlabs' plain step at the same width.  They depend on the CPU: on the Xeon of
# docs/performance.md stage I measured 1.5-1.9x NVlabs and stage II 1.14-1.24x / 0.79-0.91x / 0.71x; on an
# AMD EPYC (issue 18) stage I 1.30-1.66x, stage II 0.93 / 0.69 / 0.51x, lazy 1.22-1.26x.  Regression gates
# against the project's own paths are test_training_step_gates below.  Stage I (ours, plain step) measured
# 1.5-1.9x NVlabs.  Stage II adds a full-width teacher-D forward + input-gradient backward per G step
# (~33 GMAC per 16 images at 64 px, already near this CPU's MAC rate): measured 1.24x NVlabs at 1/2,
# but 0.89x at 1/4 and 0.72x at 1/8, where that fixed cost exceeds what a narrow student saves --
# issue 9's target 3 is NOT met there (docs/performance.md); the gates guard the measured level.
#
# The lazy form (``dgl_interval`` k = 4: the teacher term on every 4th G step, weighted 4 lambda; see
# docs/training.md) divides that cost by 4; it is timed over k steps per call.  Target 1.0x NVlabs at every
# student width (expected from the per-step costs above: ~1.2-1.4x).
NVLABS_TARGET_PLAIN = 1.0
NVLABS_TARGET_DGL = {"1/2": 1.0, "1/4": 1.0, "1/8": 1.0}
NVLABS_TARGET_LAZY_DGL = 1.0
DGL_LAMBDA = 0.1
LAZY_INTERVAL = 4


class Step:
    """``dgl_interval`` non-saturating GAN steps (G phase + D phase) for any G(z, c) / D(img, c) pair; with
    a teacher D, its term is added on the first of them with weight lambda * dgl_interval (as train.loop)."""

    def __init__(self, G, D, teacher_D=None, dgl_interval=1):
        self.G, self.D, self.teacher_D = G.train(), D.train(), teacher_D
        self.dgl_interval = dgl_interval
        self.images = BATCH * dgl_interval  # images per call
        self.opt_G = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
        if teacher_D is not None:
            teacher_D.requires_grad_(False)
        g = torch.Generator().manual_seed(0)
        self.real = torch.rand(BATCH, 3, 64, 64, generator=g) * 2 - 1
        self.z_dim = G.z_dim

    def __call__(self):
        for i in range(self.dgl_interval):
            self.step(with_teacher=self.teacher_D is not None and i == 0)

    def step(self, with_teacher: bool):
        G, D = self.G, self.D
        # generator phase
        G.requires_grad_(True)
        D.requires_grad_(False)
        img = G(torch.randn(BATCH, self.z_dim), None)
        loss = F.softplus(-D(img, None)).mean()
        if with_teacher:
            loss = loss + DGL_LAMBDA * self.dgl_interval * F.softplus(-self.teacher_D(img, None)).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        # discriminator phase
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            fake = G(torch.randn(BATCH, self.z_dim), None)
        loss = F.softplus(D(fake, None)).mean() + F.softplus(-D(self.real, None)).mean()
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()


def _nvlabs_pair(networks, ch_mul: str):
    m = Fraction(ch_mul)
    kw = dict(channel_base=int(8192 * m), channel_max=int(128 * m), num_fp16_res=0, conv_clamp=None)
    G = networks.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), synthesis_kwargs=kw)
    D = networks.Discriminator(c_dim=0, img_resolution=64, img_channels=3, epilogue_kwargs=dict(mbstd_group_size=4),
                               **kw)
    return G, D


def _steps(networks):
    from zoo.models import build_discriminator, build_generator

    torch.manual_seed(0)
    teacher_D = build_discriminator(NAME, ch_mul="1")
    steps = {}
    for w in WIDTHS:
        steps[("ours", w)] = Step(build_generator(NAME, ch_mul=w), build_discriminator(NAME, ch_mul=w))
        if w != "1":
            steps[("ours+dgl", w)] = Step(build_generator(NAME, ch_mul=w), build_discriminator(NAME, ch_mul=w),
                                          teacher_D)
            steps[("ours+lazy-dgl", w)] = Step(build_generator(NAME, ch_mul=w), build_discriminator(NAME, ch_mul=w),
                                               teacher_D, dgl_interval=LAZY_INTERVAL)
        if networks is not None:
            steps[("nvlabs", w)] = Step(*_nvlabs_pair(networks, w))
    return steps


def _measure(benchmark, interleaved_ms, networks):
    steps = _steps(networks)
    times = {}
    benchmark.pedantic(lambda: times.update(interleaved_ms(steps, rounds=ROUNDS)), rounds=1, iterations=1)
    img_s = {f"{impl} {w}": round(steps[impl, w].images * 1000 / median(t), 2) for (impl, w), t in times.items()}
    benchmark.extra_info.update(config=f"{NAME} 64px", batch=BATCH, rounds=ROUNDS, img_per_s=img_s)
    print("\n  img/s: " + ", ".join(f"{k}: {v}" for k, v in img_s.items()))
    return img_s


def test_training_step_by_width(benchmark, interleaved_ms):
    """Ours alone: narrower students train faster; the stage-II term costs about the same at every width
    (it is the full-width teacher's forward + input backward), and the lazy form a fraction of it."""
    img_s = _measure(benchmark, interleaved_ms, None)
    for wide, narrow in zip(WIDTHS, WIDTHS[1:3]):
        assert img_s[f"ours {narrow}"] > 1.3 * img_s[f"ours {wide}"], f"{narrow} is not clearly faster than {wide}"

    def overhead(variant: str, w: str) -> float:  # seconds per 16 images added by the teacher term
        return BATCH / img_s[f"{variant} {w}"] - BATCH / img_s[f"ours {w}"]

    dgl = {w: overhead("ours+dgl", w) for w in WIDTHS[1:]}
    benchmark.extra_info.update(dgl_overhead_s=dgl)
    assert max(dgl.values()) < 2.5 * min(dgl.values()), f"teacher-term cost varies with the student's width: {dgl}"
    for w in WIDTHS[1:]:
        assert overhead("ours+lazy-dgl", w) < 0.6 * dgl[w], f"the lazy teacher term saves too little at {w}"


def test_training_step_vs_nvlabs(benchmark, interleaved_ms, nvlabs, report_targets):
    """Target 3: ours (plain, and with DGL's stage-II term for students) against NVlabs' plain step; a
    competitive target, reported with the CPU (``conftest.report_targets``), not a gate."""
    img_s = _measure(benchmark, interleaved_ms, nvlabs)
    plain = {w: round(img_s[f"ours {w}"] / img_s[f"nvlabs {w}"], 2) for w in WIDTHS}
    dgl = {w: round(img_s[f"ours+dgl {w}"] / img_s[f"nvlabs {w}"], 2) for w in WIDTHS[1:]}
    lazy = {w: round(img_s[f"ours+lazy-dgl {w}"] / img_s[f"nvlabs {w}"], 2) for w in WIDTHS[1:]}
    benchmark.extra_info.update(plain_over_nvlabs=plain, dgl_over_nvlabs=dgl, lazy_dgl_over_nvlabs=lazy)
    print(f"  ours/NVlabs: {plain}; ours+dgl/NVlabs: {dgl}; ours+lazy-dgl (k={LAZY_INTERVAL})/NVlabs: {lazy}")
    report_targets(benchmark, {
        **{f"plain step img/s / NVlabs at ch_mul {w}": (r, NVLABS_TARGET_PLAIN) for w, r in plain.items()},
        **{f"stage-II step img/s / NVlabs at ch_mul {w}": (r, NVLABS_TARGET_DGL[w]) for w, r in dgl.items()},
        **{f"lazy stage-II (k={LAZY_INTERVAL}) img/s / NVlabs at ch_mul {w}": (r, NVLABS_TARGET_LAZY_DGL)
           for w, r in lazy.items()}})


# ---------------------------------------------------------------------------------------------------
# CI regression gate (``make bench-ci``): the training step against its own reference paths, one thread.
# ours plain step (stage I / the Baseline) and stage II (+ the full-width teacher D's term, k = 1) at 1/4
# and 1/8, each call preceded by the backward form of the reference kernel (conftest.reference_kernel),
# gated on (a) each step in reference-kernel units and (b) stage II over the plain step of the same width
# (the cost of the teacher term).  Thresholds: worst of >= 5 runs at each ISA, margin stated (docs/performance.md).
GATE_THREADS = int(os.environ.get("GANZOO_LATENCY_THREADS", "1"))
GATE_ROUNDS = int(os.environ.get("GANZOO_GATE_ROUNDS_TRAIN", "6"))
GATE_WIDTHS = ("1/4", "1/8")
# Figures: ranges over the 12 gate runs of test_latency.py's note (6 at the own ISA, AMD EPYC AVX-512; 5 with
# ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2; 1 with the oneDNN cap alone), 1 thread; the backward form
# of the reference kernel took 4.4-5.4 ms (own ISA) / 6.8-7.5 ms (AVX2), the plain step at 1/4 244-277 ms
# (own ISA) -- training figures move more between runs (up to 20 %) than inference ones:
#   plain step in reference units   1/4: 45.3-59.6   1/8: 16.9-25.1   -> ceiling = highest x 1.35
#   stage II in reference units     1/4: 116-142     1/8: 86.3-108    -> ceiling = highest x 1.35
#   stage II / plain step           1/4: 2.26-2.85   1/8: 4.02-6.07   -> ceiling = highest x 1.30
# (stage II / plain depends on the ISA: the full-width teacher D is compute-bound, the 1/8 student is not.)
TRAIN_REF_UNIT_GATES = {("plain", "1/4"): 80.5, ("plain", "1/8"): 33.9, ("dgl", "1/4"): 192.0, ("dgl", "1/8"): 146.0}
TRAIN_DGL_OVER_PLAIN_GATES = {"1/4": 3.7, "1/8": 7.9}
TRAIN_MARGIN = {"ref_units": 0.35, "dgl_over_plain": 0.30}


@pytest.fixture(scope="module")
def gate_steps(gate_times):
    from zoo.models import build_discriminator, build_generator

    previous = torch.get_num_threads()
    torch.set_num_threads(GATE_THREADS)
    try:
        torch.manual_seed(0)
        teacher_D = build_discriminator(NAME, ch_mul="1")
        steps = {}
        for w in GATE_WIDTHS:
            steps[("plain", w)] = Step(build_generator(NAME, ch_mul=w), build_discriminator(NAME, ch_mul=w))
            steps[("dgl", w)] = Step(build_generator(NAME, ch_mul=w), build_discriminator(NAME, ch_mul=w), teacher_D)
        yield gate_times(steps, GATE_ROUNDS, backward=True), steps
    finally:
        torch.set_num_threads(previous)


@pytest.mark.ci_gate
@pytest.mark.parametrize("ch_mul", GATE_WIDTHS)
def test_training_step_gates(benchmark, gate_steps, ch_mul):
    """CI gate: the plain and stage-II steps at ``ch_mul`` in reference-kernel units, and stage II / plain."""
    results, steps = gate_steps
    plain, dgl = results[("plain", ch_mul)], results[("dgl", ch_mul)]
    dgl_over_plain = dgl["min_ms"] / plain["min_ms"]
    benchmark.extra_info.update(
        config=f"{NAME} 64px", batch=BATCH, threads=GATE_THREADS, rounds=GATE_ROUNDS, ch_mul=ch_mul,
        reference_min_ms=results["reference_min_ms"], plain_min_ms=plain["min_ms"], dgl_min_ms=dgl["min_ms"],
        plain_ref_units=plain["ref_units"], dgl_ref_units=dgl["ref_units"], dgl_over_plain=dgl_over_plain,
        gates={"plain_ref_units": TRAIN_REF_UNIT_GATES[("plain", ch_mul)],
               "dgl_ref_units": TRAIN_REF_UNIT_GATES[("dgl", ch_mul)],
               "dgl_over_plain": TRAIN_DGL_OVER_PLAIN_GATES[ch_mul]}, margin=TRAIN_MARGIN)
    benchmark.pedantic(steps[("plain", ch_mul)], rounds=1, iterations=1, warmup_rounds=0)
    print(f"\n  {ch_mul}: plain {plain['min_ms']:.0f} ms = {plain['ref_units']:.1f} ref, stage II {dgl['min_ms']:.0f} ms"
          f" = {dgl['ref_units']:.1f} ref, stage II / plain {dgl_over_plain:.2f}")
    failures = [f"{kind} step takes {results[(kind, ch_mul)]['ref_units']:.1f} reference units "
                f"({results[(kind, ch_mul)]['min_ms']:.0f} ms / {results['reference_min_ms']:.2f} ms), "
                f"gate {TRAIN_REF_UNIT_GATES[(kind, ch_mul)]}"
                for kind in ("plain", "dgl") if results[(kind, ch_mul)]["ref_units"] > TRAIN_REF_UNIT_GATES[(kind, ch_mul)]]
    if dgl_over_plain > TRAIN_DGL_OVER_PLAIN_GATES[ch_mul]:
        failures.append(f"stage II takes {dgl_over_plain:.2f}x the plain step, gate {TRAIN_DGL_OVER_PLAIN_GATES[ch_mul]}x")
    assert not failures, f"ch_mul {ch_mul}: " + "; ".join(failures)
