"""BigGAN: exact paper sizes and MACs, BigGAN-PyTorch state-dict layout, conditioning, SN/BN buffer semantics."""
import hashlib
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from zoo.checkpoint import load_checkpoint, save_checkpoint
from zoo.models import build_discriminator, build_generator, config_from_dict, get_config
from zoo.models.biggan import Config, executed_macs, frozen_spectral_norm, paper_macs, truncated_z

WIDTHS = ["1", "1/2", "1/3", "1/4"]
G_PARAMS = [70_433_988, 18_383_460, 8_543_300, 5_031_348]  # DGL-GAN Table 4 (70.33 there is a slip for 70.43)
D_PARAMS = [87_982_370, 22_383_698, 10_120_802, 5_789_978]
PAPER_MACS_G = [432.98, 211.35, 139.76, 104.39]
# sha256[:16] of "key:shape" lines of BigGAN-PyTorch's own G / D (G_ch = D_ch = 96, 128 px, attention 64,
# shared 128, hier), computed from ajbrock/BigGAN-PyTorch@9845943 BigGAN.py: the layout its G.pth/D.pth use.
REF_FINGERPRINT = {"G": "c70a72ab8bc904ae", "D": "869315ab31a9ae67"}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def fingerprint(module):
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def on_meta(build, *args, **kwargs):
    """Build without allocating or initialising weights (fast exact counts at 128 px full width)."""
    with torch.device("meta"):
        return build(*args, **kwargs)


@pytest.mark.parametrize("i", range(4))
def test_paper_parameter_counts_and_macs(i):
    G = on_meta(build_generator, "biggan-imagenet", ch_mul=WIDTHS[i])
    D = on_meta(build_discriminator, "biggan-imagenet", ch_mul=WIDTHS[i])
    assert n_params(G) == G_PARAMS[i]
    assert n_params(D) == D_PARAMS[i]
    cfg = get_config("biggan-imagenet", WIDTHS[i])
    assert round(paper_macs(cfg) / 1e9, 2) == PAPER_MACS_G[i]


def test_paper_macs_exact_and_executed_macs():
    cfg = get_config("biggan-imagenet")
    assert paper_macs(cfg) == 432_983_814_528
    # real per-image work is ~20x smaller: the DGL counter's attention term is C*R^6/32, not C*R^4/8
    assert executed_macs(cfg) == 21_121_524_480
    assert executed_macs(cfg.replace(ch_mul="1/2")) == 5_417_496_960
    assert executed_macs(cfg, "D") == 10_836_642_816
    with pytest.raises(ValueError, match="net"):
        executed_macs(cfg, "E")


def test_state_dict_layout_is_biggan_pytorch():
    G = on_meta(build_generator, "biggan-imagenet")
    D = on_meta(build_discriminator, "biggan-imagenet")
    assert fingerprint(G) == REF_FINGERPRINT["G"]
    assert fingerprint(D) == REF_FINGERPRINT["D"]
    sd = G.state_dict()
    assert sd["linear.weight"].shape == (16 * 96 * 16, 20)
    assert sd["blocks.0.0.conv1.weight"].shape == (16 * 96, 16 * 96, 3, 3)
    assert sd["blocks.3.1.theta.weight"].shape == (24, 192, 1, 1)  # attention after the 64-px block
    assert sd["blocks.0.0.bn1.gain.u0"].shape == (1, 16 * 96) and sd["blocks.0.0.bn1.stored_var"].shape == (1536,)
    assert {"output_layer.0.stored_mean", "output_layer.2.sv0", "shared.weight"} <= set(sd)
    assert {"embed.weight", "embed.u0", "linear.bias", "blocks.0.1.gamma"} <= set(D.state_dict())
    # u/sv and BN statistics are buffers, not parameters
    assert not any(k.endswith(("u0", "sv0", "stored_mean", "stored_var")) for k, _ in G.named_parameters())


def test_width_scaling_and_bad_widths():
    cfg = get_config("biggan-emoji", "1/3")
    assert (cfg.g_ch, cfg.d_ch, cfg.ch_mul) == (16, 16, "1/3")
    assert get_config("biggan-imagenet", 0.5) == get_config("biggan-imagenet", "1/2")
    with pytest.raises(ValueError, match="ch_mul=1/5 is not a supported width"):
        build_generator("biggan-imagenet", ch_mul="1/5")
    with pytest.raises(ValueError, match="whole number of channels"):
        Config(G_ch=96, ch_mul="1/5")
    with pytest.raises(ValueError, match="biggan-imagenet"):
        build_generator("biggan-cifar")


@pytest.mark.parametrize("changes, match", [
    (dict(resolution=48), "resolution"),
    (dict(G_attn="32_24"), "G_attn"),
    (dict(D_attn="x"), "attention spec"),
    (dict(dim_z=100), "dim_z"),
    (dict(img_channels=2), "img_channels"),
])
def test_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        Config(**changes)


def test_architecture_tables():
    cfg = get_config("biggan-emoji")
    assert [(b.in_channels, b.out_channels, b.resolution, b.attention) for b in cfg.g_blocks()] == [
        (192, 192, 8, False), (192, 192, 16, True), (192, 192, 32, False)]
    assert [(b.in_channels, b.out_channels, b.resolution, b.attention) for b in cfg.d_blocks()] == [
        (3, 192, 16, True), (192, 192, 8, False), (192, 192, 8, False), (192, 192, 8, False)]
    assert (cfg.num_z_chunks, cfg.z_chunk_size, cfg.cond_dim) == (4, 30, 158)
    cfg64 = Config(resolution=64, G_ch=8, D_ch=8, G_attn="32", D_attn="0")
    assert [b.out_channels for b in cfg64.g_blocks()] == [128, 64, 32, 16] and cfg64.z_chunk_size == 24
    assert [b.resolution for b in cfg64.d_blocks()] == [32, 16, 8, 4, 4]


# --------------------------------------------------------------------------------------------- forward

@pytest.fixture(scope="module")
def emoji():
    torch.manual_seed(1)
    G = build_generator("biggan-emoji", ch_mul="1/4").eval()
    D = build_discriminator("biggan-emoji", ch_mul="1/4").eval()
    return G, D


def test_generator_interface_shapes_and_range(emoji):
    G, D = emoji
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (120, 9, 32, 3)
    z = torch.randn(5, 120)
    with torch.no_grad():
        img = G(z, torch.tensor([0, 1, 2, 3, 8]))
        logits = D(img, torch.tensor([0, 1, 2, 3, 8]))
    assert img.shape == (5, 3, 32, 32) and img.abs().max() <= 1 and img.std() > 0.01
    assert logits.shape == (5, 1) and torch.isfinite(logits).all()


@pytest.mark.parametrize("res, attn", [(64, "32"), (128, "64")])
def test_other_resolutions_forward(res, attn):
    G = build_generator(Config(resolution=res, n_classes=3, G_ch=8, D_ch=8, G_attn=attn, D_attn=attn)).eval()
    D = build_discriminator(G.config)
    c = torch.tensor([0, 2])
    img = G(torch.randn(2, 120), c)
    assert img.shape == (2, 3, res, res) and img.abs().max() <= 1
    assert D(img, c).shape == (2, 1)


def test_class_conditioning(emoji):
    G, D = emoji
    z = torch.randn(4, 120)
    idx = torch.tensor([0, 3, 5, 8])
    onehot = torch.nn.functional.one_hot(idx, 9).float()
    with torch.no_grad():
        a, b = G(z, idx), G(z, onehot)
        other = G(z, (idx + 1) % 9)
        # Bit-exact on purpose, and guaranteed on any CPU: a one-hot row times the embedding is one product
        # by 1 plus exact zeros, so both calls feed identical bits through the same kernels (same process,
        # same shapes, 64-byte-aligned buffers) and get identical bits out.
        assert torch.equal(a, b)  # one-hot selects the embedding row exactly
        assert (a - other).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changes with its class
        assert torch.equal(D(a, idx), D(a, onehot))
        assert not torch.allclose(D(a, idx), D(a, (idx + 1) % 9))
        mix = G(z, 0.5 * onehot + 0.5 * torch.nn.functional.one_hot((idx + 1) % 9, 9).float())
        y = 0.5 * (G.shared(idx) + G.shared((idx + 1) % 9))
        assert torch.allclose(mix, G.synthesize(z, y), atol=1e-6)  # soft labels = embedding interpolation
        assert torch.equal(G.synthesize(z, G.shared(idx)), a)  # BigGAN-PyTorch's G(z, G.shared(y))


@pytest.mark.parametrize("call, match", [
    (lambda G: G(torch.randn(2, 120)), "class-conditional"),
    (lambda G: G(torch.randn(2, 120), torch.zeros(2, 5)), "one-hot"),
    (lambda G: G(torch.randn(2, 120), torch.tensor([0, 1, 2])), "batch size"),
    (lambda G: G(torch.randn(2, 100), torch.tensor([0, 1])), r"z must be \[N, 120\]"),
    (lambda G: G(torch.randn(2, 120), torch.tensor([0, 1]), noise_mode="bogus"), "noise_mode"),
    (lambda G: G(torch.randn(2, 120), torch.tensor([0, 1]), truncation_cutoff=9), "truncation_cutoff"),
])
def test_bad_generator_inputs(emoji, call, match):
    with pytest.raises(ValueError, match=match):
        call(emoji[0])


def test_bad_discriminator_inputs(emoji):
    D = emoji[1]
    with pytest.raises(ValueError, match="expects images"):
        D(torch.randn(2, 1, 32, 32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class-conditional"):
        D(torch.randn(2, 3, 32, 32))


def test_truncation(emoji):
    G = emoji[0]
    z = torch.randn(3, 120)
    c = torch.tensor([4, 4, 4])
    with torch.no_grad():
        zero = G(z, c, truncation_psi=0.0)
        # Identical inputs in different *rows of one batch* need not give identical bits: a kernel may treat
        # a row in a vector tile and a row in the tail differently (AMD EPYC, AVX-512 oneDNN: rows differed by
        # 4.8e-7).  Images are in [-1, 1]; 1e-5 is ~20x that and far below any real truncation bug (>1e-2).
        torch.testing.assert_close(zero[1:], zero[:1].expand_as(zero[1:]), rtol=0, atol=1e-5)
        # The rest compare whole batches of identical shape whose inputs are identical bits (psi * z and
        # 0.5 * z are the same product, a zeroed chunk is zero either way): same process, same kernels, same
        # input -> bit-exact on any CPU, which is what these checks are about (truncation adds no other op).
        assert torch.equal(G(z, c, truncation_psi=0.5), G(0.5 * z, c))
        partial = G(z, c, truncation_psi=0.0, truncation_cutoff=1)  # only chunk 0 (the 4x4 input) zeroed
        assert torch.equal(partial, G(torch.cat([0 * z[:, :30], z[:, 30:]], 1), c))
        assert torch.equal(G(z, c, truncation_psi=0.3, truncation_cutoff=4), G(z, c, truncation_psi=0.3))
        assert torch.equal(G(z, c, noise_mode="random"), G(z, c))  # no noise inputs in BigGAN
        per_sample = G(z, c, truncation_psi=torch.tensor([1.0, 0.5, 0.0]))
        assert torch.equal(per_sample, G(z * torch.tensor([[1.0], [0.5], [0.0]]), c))
    t = truncated_z(1000, 120, threshold=0.5, generator=torch.Generator().manual_seed(0))
    assert t.shape == (1000, 120) and t.abs().max() <= 0.5


def test_eval_mode_freezes_buffers_and_train_mode_updates_them():
    G = build_generator("biggan-emoji", ch_mul="1/4", G_attn="0")
    D = build_discriminator("biggan-emoji", ch_mul="1/4", D_attn="0")
    z, c = torch.randn(4, 120), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():  # orthogonal init has every singular value 1 = the initial sv0; move away from it
        for p in list(G.parameters()) + list(D.parameters()):
            p.mul_(1.5)
    for net, x in ((G, None), (D, torch.randn(4, 3, 32, 32))):
        run = (lambda: net(z, c)) if x is None else (lambda: net(x, c))
        net.eval()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        out1, out2 = run(), run()
        assert torch.equal(out1, out2)  # same call twice in one process: bit-exact (eval mode is pure)
        after = net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        net.train()
        run()
        after = net.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        sn_keys = {k for k in before if k.endswith(("u0", "sv0"))}
        assert changed == sn_keys | {k for k in before if k.endswith(("stored_mean", "stored_var"))}


def test_spectral_norm_normalises_weights():
    G = build_generator("biggan-emoji", ch_mul="1/4").train()
    conv = G.blocks[0][0].conv1
    for _ in range(30):  # power iteration converges on the top singular value
        w = conv.sn_weight()
    sigma = torch.linalg.matrix_norm(w.detach().reshape(w.shape[0], -1), ord=2)
    assert sigma == pytest.approx(1.0, abs=1e-3)
    assert conv.sv0.item() == pytest.approx(torch.linalg.matrix_norm(conv.weight.detach().reshape(w.shape[0], -1),
                                                                      ord=2).item(), rel=1e-3)


def test_frozen_spectral_norm_is_exact_and_scoped(emoji):
    G, D = emoji
    z, c = torch.randn(2, 120), torch.tensor([1, 5])
    with torch.no_grad():
        ref, ref_d = G(z, c), D(ref_img := G(z, c), c)
        with frozen_spectral_norm(G), frozen_spectral_norm(D):
            assert G.linear.frozen_weight is not None
            # bit-exact: the frozen weight is the same W / sv0 computed once instead of per call
            assert torch.equal(G(z, c), ref) and torch.equal(D(ref_img, c), ref_d)
        assert G.linear.frozen_weight is None and D.embed.frozen_weight is None
    with pytest.raises(ValueError, match="eval"):
        with frozen_spectral_norm(build_generator("biggan-emoji", ch_mul="1/4")):
            pass


def test_gradients_reach_every_parameter():
    G = build_generator("biggan-emoji", ch_mul="1/4")
    D = build_discriminator("biggan-emoji", ch_mul="1/4")
    for m in G.modules():  # attention starts as the identity (gamma = 0); open it so its convs get gradients
        if hasattr(m, "gamma"):
            m.gamma.data.fill_(0.5)
    c = torch.tensor([0, 1, 2, 3])
    D(G(torch.randn(4, 120), c), c).mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_greyscale_and_flat_z():
    cfg = get_config("biggan-fashion-mnist", "1/4", hier=False, G_attn="0", D_attn="0")
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    img = G(torch.randn(2, 120), torch.tensor([3, 7]))
    assert img.shape == (2, 1, 32, 32)
    assert G.linear.in_features == 120 and G.blocks[0][0].bn1.gain.in_features == 128
    assert D(img, torch.tensor([3, 7])).shape == (2, 1)


# --------------------------------------------------------------------------------------------- persistence

def test_config_round_trip_rebuilds_identical_network():
    cfg = get_config("biggan-emoji", "1/2", G_attn="8_16", hier=True)
    data = cfg.to_dict()
    assert data["family"] == "biggan" and data["ch_mul"] == "1/2" and data["G_attn"] == "8_16"
    again = config_from_dict(data)
    assert again == cfg and Config.from_dict(data) == cfg
    a, b = on_meta(build_generator, cfg), on_meta(build_generator, again)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


def test_checkpoint_round_trip(tmp_path):
    G = build_generator("biggan-emoji", ch_mul="1/4").eval()
    D = build_discriminator("biggan-emoji", ch_mul="1/4").eval()
    with torch.no_grad():  # non-trivial buffers and gains, so the test would notice any that were dropped
        for m in (G, D):
            for k, v in m.state_dict().items():
                if v.is_floating_point() and not k.endswith("u0"):
                    v.mul_(1.1).add_(0.01)
    path = save_checkpoint(tmp_path / "ck", config=G.config, G_ema=G, D=D, name="biggan-emoji")
    ck = load_checkpoint(path)
    assert ck.config == G.config and ck.family == "biggan" and ck.ch_mul == "1/4"
    z, c = torch.randn(3, 120), torch.tensor([1, 2, 3])
    with torch.no_grad():  # bit-exact: the same weights (a lossless round trip) through the same kernels
        assert torch.equal(ck.G_ema(z, c), G(z, c))
        img = G(z, c)
        assert torch.equal(ck.D(img, c), D(img, c))


# --------------------------------------------------------------------------------------------- reference

def _fill_deterministic(module):
    """Every state tensor set from a sine pattern (independent of RNG and init), in state-dict order."""
    with torch.no_grad():
        for i, (k, v) in enumerate(module.state_dict().items()):
            pattern = torch.sin(torch.arange(v.numel(), dtype=torch.float64) * 0.37 + i).float().reshape(v.shape)
            if k.endswith("stored_var"):
                v.copy_(1 + 0.5 * pattern ** 2)
            elif k.endswith("sv0"):
                v.fill_(1.0)
            else:
                v.copy_(pattern / math.sqrt(max(1, v[0].numel() if v.ndim else 1)))


# Values produced by ajbrock/BigGAN-PyTorch@9845943 (BigGAN.Generator / Discriminator) for the same
# deterministic weights and inputs: G(z, G.shared(y)) in eval and train mode, D(x, y), and the first
# entries of blocks[0][0].conv1.u0 / bn1.stored_mean after the train-mode forward.
GOLDEN = {
    (32, 9, 12, "16", "0"): dict(
        g_eval=([0.35401046, 0.18888089, 0.43620920, 0.63142753], 0.46707132),
        g_train=([0.23102185, 0.26635259, -0.02417826, 0.89008749], 0.47559533),
        d=[-157.42015076, -28.64810181, 27.03170776],
        u0=[0.18433557, -0.13591413, 0.06797794], mean=[-0.87146205, -0.90208358, -0.81071098]),
    (64, 5, 8, "32", "32"): dict(
        g_eval=([0.04430926, 0.10563020, 0.10567381, 0.10559193], 0.30736721),
        g_train=([-0.18018830, 0.57784957, 0.85793900, 0.59945369], 0.48097885),
        d=[38.48855209, -72.92501068, 43.63005829],
        u0=[0.11458181, 0.10173950, -0.00749909], mean=[-0.87134737, -0.90213615, -0.81079048]),
}


@pytest.mark.parametrize("key", list(GOLDEN))
def test_matches_biggan_pytorch_golden_values(key):
    res, n_classes, ch, g_attn, d_attn = key
    cfg = Config(resolution=res, n_classes=n_classes, G_ch=ch, D_ch=ch, G_attn=g_attn, D_attn=d_attn)
    # in the reference's NCHW layout: channels-last (the default) differs by rounding, which train-mode
    # BN over 3 samples amplifies ~1e4x here (test_channels_last_default_equals_nchw_within_rounding)
    G = build_generator(cfg).to(memory_format=torch.contiguous_format)
    D = build_discriminator(cfg).to(memory_format=torch.contiguous_format)
    _fill_deterministic(G)
    _fill_deterministic(D)
    n = 3
    z = torch.sin(torch.arange(n * 120, dtype=torch.float64) * 0.71).float().reshape(n, 120)
    x = torch.cos(torch.arange(n * 3 * res * res, dtype=torch.float64) * 0.13).float().reshape(n, 3, res, res)
    y = torch.arange(n) % n_classes
    want = GOLDEN[key]
    close = dict(rel=1e-4, abs=1e-5)
    # Train-mode pixels only: BN over 3 samples amplifies float32 rounding ~1e4x, so kernels of another ISA
    # move them by up to 1.7e-4 (measured on AMD EPYC with ONEDNN_MAX_CPU_ISA=SSE41, ATEN_CPU_CAPABILITY=default,
    # MKL_ENABLE_INSTRUCTIONS=SSE4_2; 9e-5 with AVX2; 2.5e-5 with AVX-512).  abs 5e-4 covers that with a 3x
    # margin on values of ~0.1-0.9.  Every other golden value (eval mode, the train-mode mean, D, u0, BN
    # means) stays at rel 1e-4 / abs 1e-5, where all of those ISAs agree to <= 2e-5.
    close_train_pixels = dict(rel=1e-4, abs=5e-4)
    with torch.no_grad():
        for mode, train in (("g_eval", False), ("g_train", True)):
            G.train(train)
            img = G(z, y)
            assert img.flatten()[:4 * 997:997].tolist() == pytest.approx(
                want[mode][0], **(close_train_pixels if train else close))
            assert img.abs().mean().item() == pytest.approx(want[mode][1], **close)
        assert D.eval()(x, y).flatten().tolist() == pytest.approx(want["d"], **close)
    assert G.blocks[0][0].conv1.u0.flatten()[:3].tolist() == pytest.approx(want["u0"], **close)
    assert G.blocks[0][0].bn1.stored_mean[:3].tolist() == pytest.approx(want["mean"], **close)



@pytest.mark.skipif(not os.environ.get("BIGGAN_PYTORCH_DIR"),
                    reason="set BIGGAN_PYTORCH_DIR to a checkout of ajbrock/BigGAN-PyTorch to compare against it")
def test_bit_exact_against_biggan_pytorch():
    """Outputs, buffers and gradients equal the reference's bit for bit after loading its state dicts."""
    sys.path.insert(0, str(Path(os.environ["BIGGAN_PYTORCH_DIR"])))
    import BigGAN  # noqa: N813  (the reference's module)

    cfg = Config(resolution=32, n_classes=9, G_ch=48, D_ch=48, ch_mul="1/4", G_attn="16", D_attn="0",
                 num_SV_itrs=2)
    sn = dict(SN_eps=cfg.SN_eps, num_G_SV_itrs=2, num_D_SV_itrs=2)
    rG = BigGAN.Generator(G_ch=cfg.g_ch, dim_z=120, resolution=32, G_attn="16", n_classes=9, shared_dim=128,
                          hier=True, no_optim=True, **sn)
    rD = BigGAN.Discriminator(D_ch=cfg.d_ch, D_attn="0", resolution=32, n_classes=9, **sn)
    for p in rG.parameters():
        if p.ndim == 0:
            p.data.fill_(0.5)
    G, D = build_generator(cfg), build_discriminator(cfg)
    G.load_state_dict(rG.state_dict())
    D.load_state_dict(rD.state_dict())
    z, y = torch.randn(4, 120), torch.tensor([0, 3, 5, 8])
    with torch.no_grad():  # channels-last as built: equal within float rounding
        torch.testing.assert_close(D.eval()(G.eval()(z, y), y), rD.eval()(rG.eval()(z, rG.shared(y)), y),
                                   rtol=1e-5, atol=1e-4)
    G, D = G.to(memory_format=torch.contiguous_format), D.to(memory_format=torch.contiguous_format)
    for train in (True, False):
        for m in (rG, rD, G, D):
            m.train(train)
            m.zero_grad()
        ref, ours = rD(rG(z, rG.shared(y)), y), D(G(z, y), y)
        # bit-exactness is the point here: both run the same op sequence in NCHW in this process
        assert torch.equal(ref, ours)
        ref.sum().backward()
        ours.sum().backward()
        for a, b in ((rG, G), (rD, D)):
            assert all(torch.equal(x, a.state_dict()[k]) for k, x in b.state_dict().items())
            assert all(torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)
                       for p, q in zip(a.parameters(), b.parameters()) if p.grad is not None)


def test_channels_last_default_equals_nchw_within_rounding(tmp_path):
    """Both networks run channels-last as built; ``.to(memory_format=torch.contiguous_format)`` gives the
    NCHW (reference-identical) path; they agree within float rounding, in training mode too, G returns a
    contiguous NCHW image, and a saved checkpoint holds plain contiguous weights."""
    import copy

    torch.manual_seed(0)
    cfg = Config(resolution=32, n_classes=5, G_ch=16, D_ch=16, G_attn="16", D_attn="16")
    G, D = build_generator(cfg), build_discriminator(cfg)
    conv = G.blocks[0][0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    G0 = copy.deepcopy(G).to(memory_format=torch.contiguous_format)
    D0 = copy.deepcopy(D).to(memory_format=torch.contiguous_format)
    assert G0.blocks[0][0].conv1.weight.is_contiguous()
    z, y = torch.randn(3, cfg.dim_z), torch.tensor([0, 2, 4])
    for train in (False, True):
        for m in (G, D, G0, D0):
            m.train(train)
        img, img0 = G(z, y), G0(z, y)
        assert img.is_contiguous() and img0.is_contiguous()
        torch.testing.assert_close(img, img0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(D(img, y), D0(img0, y), rtol=1e-5, atol=1e-4)
    # the golden-value configuration in float64, train mode (ill-conditioned BN): still equal to ~1e-11
    cfg64 = Config(resolution=64, n_classes=5, G_ch=8, D_ch=8, G_attn="32", D_attn="32")
    G64 = build_generator(cfg64).double().train()
    G64_0 = copy.deepcopy(G64).to(memory_format=torch.contiguous_format)
    z64 = torch.randn(3, cfg64.dim_z, dtype=torch.float64)
    torch.testing.assert_close(G64(z64, y % 5), G64_0(z64, y % 5), rtol=1e-9, atol=1e-9)
    from safetensors.torch import load_file

    path = save_checkpoint(tmp_path / "ck", config=G.config, G_ema=G.eval(), D=D)
    assert all(t.is_contiguous() for f in path.glob("*.safetensors") for t in load_file(str(f)).values())
    ck = load_checkpoint(path)
    assert ck.G_ema.blocks[0][0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # exact: the loaded G_ema has the same weights in the same (channels-last) layout, so the same kernels
    torch.testing.assert_close(ck.G_ema(z, y), G(z, y), rtol=0, atol=0)
