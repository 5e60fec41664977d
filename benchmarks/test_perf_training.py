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

import torch
import torch.nn.functional as F

BATCH = 16
ROUNDS = int(os.environ.get("GANZOO_BENCH_ROUNDS", "5"))
WIDTHS = ("1", "1/2", "1/4", "1/8")
NAME = "stylegan2-emoji"
# Gates on img/s relative to NVlabs' plain step at the same width.  Stage I (ours, plain step) measured
# 1.5-1.9x NVlabs.  Stage II adds a full-width teacher-D forward + input-gradient backward per G step
# (~33 GMAC per 16 images at 64 px, already near this CPU's MAC rate): measured 1.24x NVlabs at 1/2,
# but 0.89x at 1/4 and 0.72x at 1/8, where that fixed cost exceeds what a narrow student saves --
# issue 9's target 3 is NOT met there (docs/performance.md); the gates guard the measured level.
#
# The lazy form (``dgl_interval`` k = 4: the teacher term on every 4th G step, weighted 4 lambda; see
# docs/training.md) divides that cost by 4; it is timed over k steps per call.  Gate 1.0x NVlabs at every
# student width (expected from the per-step costs above: ~1.2-1.4x).
NVLABS_GATE_PLAIN = 1.0
NVLABS_GATE_DGL = {"1/2": 1.0, "1/4": 0.7, "1/8": 0.55}
NVLABS_GATE_LAZY_DGL = 1.0
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


def test_training_step_vs_nvlabs(benchmark, interleaved_ms, nvlabs):
    """Target 3: ours (plain, and with DGL's stage-II term for students) against NVlabs' plain step."""
    img_s = _measure(benchmark, interleaved_ms, nvlabs)
    plain = {w: round(img_s[f"ours {w}"] / img_s[f"nvlabs {w}"], 2) for w in WIDTHS}
    dgl = {w: round(img_s[f"ours+dgl {w}"] / img_s[f"nvlabs {w}"], 2) for w in WIDTHS[1:]}
    lazy = {w: round(img_s[f"ours+lazy-dgl {w}"] / img_s[f"nvlabs {w}"], 2) for w in WIDTHS[1:]}
    benchmark.extra_info.update(plain_over_nvlabs=plain, dgl_over_nvlabs=dgl, lazy_dgl_over_nvlabs=lazy,
                                gates={"plain": NVLABS_GATE_PLAIN, "dgl": NVLABS_GATE_DGL,
                                       "lazy_dgl": NVLABS_GATE_LAZY_DGL})
    print(f"  ours/NVlabs: {plain}; ours+dgl/NVlabs: {dgl}; ours+lazy-dgl (k={LAZY_INTERVAL})/NVlabs: {lazy}")
    for w, r in plain.items():
        assert r >= NVLABS_GATE_PLAIN, f"ch_mul {w}: plain step at {r:.2f}x of NVlabs' img/s"
    for w, r in dgl.items():
        assert r >= NVLABS_GATE_DGL[w], f"ch_mul {w}: stage-II step at {r:.2f}x of NVlabs' img/s"
    for w, r in lazy.items():
        assert r >= NVLABS_GATE_LAZY_DGL, f"ch_mul {w}: lazy stage-II step at {r:.2f}x of NVlabs' img/s"
