"""StyleGAN2: exact paper sizes, shapes, fused == non-fused, truncation, conditioning, noise modes."""
import pytest
import torch

from zoo.models import build_discriminator, build_generator, get_config
from zoo.models.stylegan2 import Config, paper_macs


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# Parameters of G (mapping included) from the DGL-GAN paper's Table 2/3, exact integers of the DGL rule.
G_PARAMS = {
    "stylegan2-ffhq": [30_370_060, 11_064_988, 5_392_036, 3_550_456],
    "stylegan2-church": [30_034_338, 10_931_682, 5_334_018, 3_523_602],
}
PAPER_MACS = {  # G MACs in the paper's convention, to 0.01 G
    "stylegan2-ffhq": [142.02, 35.61, 8.97, 2.28],
    "stylegan2-church": [83.78, 20.99, 5.28, 1.34],  # paper prints 83.79; its own counter gives 83.785
}
WIDTHS = ["1", "1/2", "1/4", "1/8"]


@pytest.mark.parametrize("name", list(G_PARAMS))
@pytest.mark.parametrize("i", range(4))
def test_paper_parameter_counts_and_macs(name, i):
    G = build_generator(name, ch_mul=WIDTHS[i])
    assert n_params(G) == G_PARAMS[name][i]
    assert round(paper_macs(get_config(name, WIDTHS[i])) / 1e9, 2) == pytest.approx(PAPER_MACS[name][i], abs=0.0051)


def test_discriminator_widths_scale_every_layer():
    counts = [n_params(build_discriminator("stylegan2-ffhq", ch_mul=w)) for w in WIDTHS]
    assert counts[0] == 29_012_513  # NVlabs config-F D at 1024
    assert counts[1] == 7_256_081 and counts[2] == 1_815_497 and counts[3] == 454_613


def test_ch_mul_forms_are_equivalent():
    a = get_config("stylegan2-emoji", 0.5)
    assert a == get_config("stylegan2-emoji", "1/2") == get_config("stylegan2-emoji", __import__("fractions").Fraction(1, 2))
    assert a.g_widths() == {4: 64, 8: 64, 16: 64, 32: 64, 64: 64}
    assert a.const_width() == 128  # the learned constant keeps its full width (DGL rule)


@pytest.mark.parametrize("bad", ["1/3", 0, -0.5, 2, "abc", "1/0", True])
def test_bad_ch_mul_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="ch_mul"):
        build_generator("stylegan2-ffhq", ch_mul=bad)


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="stylegan2-ffhq"):
        build_generator("stylegan3-ffhq")


def test_ch_mul_that_does_not_divide_widths():
    with pytest.raises(ValueError, match="whole number of channels"):
        Config(resolution=16, channel_base=64, channel_max=16, ch_mul="1/3")


TINY = dict(resolution=16, channel_base=256, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2)


@pytest.fixture
def tiny_G():
    return build_generator("stylegan2-emoji", ch_mul="1/2", **TINY).eval()


def test_shapes_and_range(tiny_G):
    img = tiny_G(torch.randn(3, 32))
    assert img.shape == (3, 3, 16, 16)
    assert torch.isfinite(img).all()
    # images live in about [-1, 1] after tanh-free synthesis; with random init they are O(1)
    assert img.abs().max() < 50


def test_fused_and_non_fused_modconv_agree(tiny_G):
    z = torch.randn(4, 32)
    a = tiny_G(z, fused_modconv=False)
    b = tiny_G(z, fused_modconv=True)
    assert (a - b).abs().max() < 1e-5


def test_fused_and_non_fused_gradients_agree(tiny_G):
    z = torch.randn(2, 32)
    grads = []
    for fused in (False, True):
        tiny_G.zero_grad()
        tiny_G(z, fused_modconv=fused).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in tiny_G.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_const_noise_is_deterministic_and_random_noise_is_not(tiny_G):
    for layer in tiny_G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    z = torch.randn(2, 32)
    # bit-exact: the same call twice in one process (same kernels, same input); 'const' adds no randomness
    assert torch.equal(tiny_G(z, noise_mode="const"), tiny_G(z, noise_mode="const"))
    assert not torch.equal(tiny_G(z, noise_mode="random"), tiny_G(z, noise_mode="random"))
    assert not torch.equal(tiny_G(z, noise_mode="none"), tiny_G(z, noise_mode="const"))
    with pytest.raises(ValueError, match="noise_mode"):
        tiny_G(z, noise_mode="bogus")


def test_truncation_psi_zero_returns_w_avg_image(tiny_G):
    tiny_G.mapping.w_avg.normal_()
    imgs = tiny_G(torch.randn(4, 32), truncation_psi=0.0)
    assert (imgs - imgs[:1]).abs().max() < 1e-6
    ws = tiny_G.mapping.w_avg.expand(1, tiny_G.num_ws, -1)
    assert (imgs[:1] - tiny_G.synthesis(ws)).abs().max() < 1e-5


def test_truncation_cutoff_only_affects_early_ws(tiny_G):
    tiny_G.mapping.w_avg.normal_()
    z = torch.randn(2, 32)
    ws = tiny_G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    full = tiny_G.mapping(z)
    assert torch.allclose(ws[:, 2:], full[:, 2:])
    assert not torch.allclose(ws[:, :2], full[:, :2])


def test_mapping_and_synthesis_compose_for_style_mixing(tiny_G):
    z = torch.randn(2, 32)
    ws = tiny_G.mapping(z)
    assert ws.shape == (2, tiny_G.num_ws, 32)
    # bit-exact: G(z) is synthesis(mapping(z)), the same ops on the same bits in this process
    assert torch.equal(tiny_G.synthesis(ws), tiny_G(z))
    mixed = ws.clone()
    mixed[:, 3:] = ws.flip(0)[:, 3:]
    assert not torch.equal(tiny_G.synthesis(mixed), tiny_G(z))


def test_w_avg_tracks_only_when_asked(tiny_G):
    before = tiny_G.mapping.w_avg.clone()
    tiny_G(torch.randn(4, 32))
    assert torch.equal(before, tiny_G.mapping.w_avg)  # untouched, not recomputed: exact
    tiny_G(torch.randn(4, 32), update_emas=True)
    assert not torch.equal(before, tiny_G.mapping.w_avg)


def test_conditional_generator_and_discriminator():
    cfg = Config(**TINY, c_dim=5, ch_mul="1/2")
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    z = torch.randn(4, 32).repeat(2, 1)
    c = torch.eye(5)[[0, 1, 2, 3, 4, 4, 4, 4]]
    img = G(z, c)
    assert not torch.allclose(img[:4], img[4:])  # same z, different class -> different image
    logits = D(img, c)
    assert logits.shape == (8, 1)
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)


def test_discriminator_on_tiny_and_greyscale():
    cfg = Config(**{**TINY, "resolution": 32}, img_channels=1)
    D = build_discriminator(cfg)
    out = D(torch.randn(4, 1, 32, 32))
    assert out.shape == (4, 1)
    with pytest.raises(ValueError, match="expects images"):
        D(torch.randn(4, 3, 32, 32))


def test_r1_double_backward_works():
    cfg = Config(**TINY)
    D = build_discriminator(cfg)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    grad.square().sum().backward()
    # every conv/fc weight gets a gradient through the penalty (biases of the last layers cannot)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters() if p.ndim > 1)


def test_explicit_width_table_overrides_rule():
    cfg = Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=1,
                 g_channels={4: 24, 8: 12, 16: 6}, d_channels={4: 8, 8: 8, 16: 4})
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert G.synthesis.b4.const.shape[0] == 24 and G.synthesis.b16.conv1.weight.shape[:2] == (6, 6)
    assert D.b16.fromrgb.weight.shape[0] == 4 and D.b4.fc.out_features == 8
    assert G(torch.randn(2, 16)).shape == (2, 3, 16, 16)


def test_config_json_round_trip():
    cfg = Config(resolution=16, g_channels={4: 24, 8: 12, 16: 6}, ch_mul=0.5)
    again = Config.from_dict(cfg.to_dict())
    assert again == cfg and again.ch_mul == "1/2"


def test_conv_weights_keep_the_layout_onednn_reads_through_reload_and_save(tmp_path):
    """The up-convs' weights are stored so that their transposed view is channels-last, D's conv weights
    channels-last (no layout copy per call); that survives load_state_dict and .to(), and what is saved
    is a plain contiguous tensor that loads back to the same outputs."""
    from zoo.checkpoint import state_dict_for_save
    from zoo.models.stylegan2 import Conv2dLayer, SynthesisLayer

    cl = torch.channels_last
    torch.manual_seed(0)
    G, D = build_generator("stylegan2-emoji", ch_mul="1/2").eval(), build_discriminator("stylegan2-emoji", ch_mul="1/2")

    def check(G, D):
        layers = [m for m in G.modules() if isinstance(m, SynthesisLayer)]
        assert any(m.up == 2 for m in layers) and any(m.up == 1 for m in layers)
        for m in layers:
            if m.up == 2:
                assert m.weight.transpose(0, 1).is_contiguous(memory_format=cl) and not m.weight.is_contiguous()
            else:  # plain (see SynthesisLayer: channels-last cost peak memory at 1024 px)
                assert m.weight.is_contiguous(), m
        convs = [m for m in D.modules() if isinstance(m, Conv2dLayer) and m.kernel_size == 3]
        assert convs and all(m.weight.is_contiguous(memory_format=cl) for m in convs)

    check(G, D)
    saved = state_dict_for_save(G)
    assert all(t.is_contiguous() for t in saved.values())
    torch.manual_seed(1)
    G2, D2 = build_generator("stylegan2-emoji", ch_mul="1/2").eval(), build_discriminator("stylegan2-emoji", ch_mul="1/2")
    G2.load_state_dict(saved)
    D2.load_state_dict(state_dict_for_save(D))
    G2, D2 = G2.to(torch.float64).to(torch.float32), D2.to("cpu")
    check(G2, D2)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(G2(z), G(z))
