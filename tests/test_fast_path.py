"""StyleGAN2's CPU inference fast path (``zoo.models.stylegan2_fast.prepare``) against the paper's forward.

The plain model has one forward, whatever the mode; ``prepare(G)`` gives the same images (within the
float32 tolerance of tests/test_perf_numerics.py, against the same plain transcription of NVlabs' maths),
is idempotent, leaves the state dict alone, and is never what training, autograd or tracing runs.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo.models.stylegan2 as sg2
import zoo.models.stylegan2_fast as fast
from test_perf_numerics import CONFIGS, TOL, generator_ref, inputs, make_pair, rel_err, synthesis_ref
from zoo.models.stylegan2_fast import PreparedSynthesisNetwork, prepare


def prepared(name: str = "plain"):
    G, _ = make_pair(name)
    return prepare(G.eval())


def table_of(G):
    return G.synthesis.__dict__.get("_modulation_table")


@pytest.fixture
def no_table(monkeypatch):
    """Building a modulation table fails the test: the fast path must not run."""
    def refuse(self, net):
        raise AssertionError("a ModulationTable was built")
    monkeypatch.setattr(fast.ModulationTable, "__init__", refuse)


# ------------------------------------------------------------------------------------ same images

@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("noise_mode", ["const", "none", "random"])
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_prepare_gives_the_images_of_the_plain_forward(name, noise_mode, context):
    G = make_pair(name)[0].eval()
    P = prepared(name)
    z, c = inputs(G)
    with context():
        torch.manual_seed(1)
        plain = G(z, c, truncation_psi=0.7, noise_mode=noise_mode)
        torch.manual_seed(1)
        fast_out = P(z, c, truncation_psi=0.7, noise_mode=noise_mode)
        ref = generator_ref(G, z, c, psi=0.7, noise_mode=noise_mode, noise_seed=1)
    assert table_of(P) is not None and table_of(G) is None  # the fast path ran, and only where prepared
    assert rel_err(fast_out, plain) <= TOL and rel_err(fast_out, ref) <= TOL


def test_prepared_synthesis_and_mapping_can_still_be_called_apart():
    P = prepared("cond-grey")
    z, c = inputs(P)
    with torch.inference_mode():
        ws = P.mapping(z, c, truncation_psi=0.5)
        assert torch.equal(P.synthesis(ws), P(z, c, truncation_psi=0.5))
        with pytest.raises(ValueError, match="noise_mode"):
            P.synthesis(ws, noise_mode="loud")
        with pytest.raises(ValueError, match=r"ws must be"):
            P.synthesis(ws[:, :-1])


@pytest.mark.parametrize("budget", [0, 2 ** 30])
def test_offset_budget(monkeypatch, budget):
    """Const-noise maps beyond the table's memory budget are built per layer: same output either way."""
    monkeypatch.setattr(fast, "OFFSET_CACHE_BYTES", budget)
    P = prepared()
    z, c = inputs(P)
    with torch.no_grad():
        cached = any(o is not None for o in P.synthesis.modulation_table().offsets["const"])
        assert cached == (budget > 0)
        assert rel_err(P(z, c), generator_ref(P, z, c)) <= TOL


def test_table_follows_parameter_changes():
    """The table is rebuilt when weights change in place, are reloaded, or change dtype."""
    P = prepared()
    z, c = inputs(P)
    with torch.inference_mode():
        P(z, c)
        table = P.synthesis.modulation_table()
        assert P.synthesis.modulation_table() is table  # unchanged parameters: reused
    with torch.no_grad():
        for p in P.synthesis.parameters():
            p.mul_(1.1)
        P.synthesis.b4.conv1.noise_const.add_(1.0)
    with torch.inference_mode():
        assert P.synthesis.modulation_table() is not table
        assert rel_err(P(z, c), generator_ref(P, z, c)) <= TOL
    copied = copy.deepcopy(P)
    assert type(copied.synthesis) is PreparedSynthesisNetwork and table_of(copied) is None  # a cache, not state
    P.load_state_dict(make_pair("plain")[0].state_dict())
    with torch.no_grad():
        assert rel_err(P(z, c), generator_ref(P, z, c)) <= TOL
    synthesis = P.synthesis.double()  # (the mapping casts z to float32 by design)
    assert table_of(P) is None  # .to() dropped the table and its float32 tensors
    with torch.no_grad():
        ws = P.mapping(z, c).double()
        out = synthesis(ws)
        assert out.dtype == torch.float64 and rel_err(out, synthesis_ref(synthesis, ws)) <= TOL


# ------------------------------------------------------------------------------ one plain forward

def test_the_plain_model_has_one_forward():
    """Eval mode without autograd runs exactly the computation of training mode with autograd."""
    assert not hasattr(sg2, "ModulationTable")
    assert "_apply" not in vars(sg2.SynthesisNetwork) and "__getstate__" not in vars(sg2.SynthesisNetwork)
    G = make_pair("clamp")[0]
    z, c = inputs(G)
    with torch.enable_grad():
        trained = G.train()(z, c, truncation_psi=0.7)
    with torch.inference_mode():
        inferred = G.eval()(z, c, truncation_psi=0.7)
    assert type(G.synthesis) is sg2.SynthesisNetwork and table_of(G) is None
    assert torch.equal(inferred, trained.detach())


# ---------------------------------------------------------------------------------- idempotent

def test_prepare_is_idempotent_and_keeps_the_state():
    G = make_pair("cond-grey")[0].eval()
    before = G.state_dict()
    P = prepare(G)
    assert P is G and isinstance(P, sg2.Generator) and type(P.synthesis) is PreparedSynthesisNetwork
    after = P.state_dict()
    assert list(after) == list(before)
    assert all(after[k].data_ptr() == before[k].data_ptr() and torch.equal(after[k], before[k]) for k in before)
    z, c = inputs(P)
    with torch.inference_mode():
        first = P(z, c)
        table = table_of(P)
        assert prepare(P) is P and type(P.synthesis) is PreparedSynthesisNetwork
        assert torch.equal(P(z, c), first) and table_of(P) is table


def test_prepare_refuses_what_it_cannot_prepare():
    with pytest.raises(TypeError, match="StyleGAN2 Generator"):
        prepare(nn.Linear(2, 2))

    class Custom(sg2.SynthesisNetwork):
        def forward(self, ws, noise_mode="const", fused_modconv=None):
            return super().forward(ws, noise_mode, fused_modconv)

    G = make_pair("plain")[0]
    G.synthesis.__class__ = Custom
    with pytest.raises(TypeError, match="Custom"):
        prepare(G)


def test_saved_checkpoint_is_unchanged_by_prepare(tmp_path):
    from safetensors import safe_open

    from zoo.checkpoint import WEIGHT_FILES, load_checkpoint, save_checkpoint

    G = make_pair("plain")[0].eval()
    P = prepare(copy.deepcopy(G))
    with torch.inference_mode():
        P(*inputs(P))  # a table exists when it is saved
    saved = []
    for net, name in ((G, "plain"), (P, "prepared")):
        directory = save_checkpoint(tmp_path / name, config=net.config, G_ema=net, name="stylegan2-emoji")
        with safe_open(str(Path(directory) / WEIGHT_FILES["G_ema"]), "pt") as f:  # (its header's key order varies)
            saved.append((f.metadata(), {k: f.get_tensor(k) for k in f.keys()}))
    (meta_a, a), (meta_b, b) = saved
    assert meta_a == meta_b and list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    loaded = load_checkpoint(directory, load_D=False).G_ema
    assert type(loaded.synthesis) is sg2.SynthesisNetwork  # loading never prepares by itself


# ------------------------------------------------------------------- training never sees the fast path

@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autograd_and_training_mode_run_the_paper_forward(mode, no_table):
    """A prepared G with autograd (or in training mode) computes the plain forward and its gradients,
    bit for bit."""
    G, P = make_pair("clamp")[0], prepare(make_pair("clamp")[0])
    z, c = inputs(G)
    outs, grads = [], []
    for net in (G, P):
        net.train(mode == "train")
        out = net(z, c, truncation_psi=0.7)
        outs.append(out.detach())
        grads.append(torch.autograd.grad(out.square().sum(), list(net.parameters())))
    P.train()
    with torch.no_grad():
        outs.append(P(z, c, truncation_psi=0.7))  # training mode without autograd: the plain forward too
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_tracing_keeps_the_per_layer_form(no_table):
    """Traced, compiled and exported graphs read the parameters themselves (no table constants)."""
    P = prepared()
    ws = P.mapping(*inputs(P)).detach()
    with torch.no_grad():
        traced = torch.jit.trace(P.synthesis, (ws,), check_trace=False)
        assert torch.equal(traced(ws), sg2.SynthesisNetwork.forward(P.synthesis, ws))


def test_a_training_run_never_builds_the_table(tmp_path, no_table):
    """A tiny run (steps, monitor scores, image grids, snapshots) with table building made to fail."""
    from train_helpers import run_tiny

    run_tiny(tmp_path / "run", method="baseline", T=0.016, S=0.0, image_ticks=1)


# -------------------------------------------------------------------------------- who applies it

def test_the_family_and_zoo_sample_apply_prepare():
    from zoo.families import get_family
    from zoo.sample import resolve_generator

    assert get_family("stylegan2").prepare is prepare
    G = resolve_generator("stylegan2-emoji", "1/8")
    assert not G.training and type(G.synthesis) is PreparedSynthesisNetwork
