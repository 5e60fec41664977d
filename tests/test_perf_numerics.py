"""The optimised StyleGAN2 code paths compute the same function as a plain reference.

``zoo.models.stylegan2`` folds the activation gain into the demodulation coefficients, bias and noise
strength, runs channels-last, adds bias and noise in one pass, does the FIR filters as depthwise convs
with the padding inside the conv, the toRGB layer as one batched matmul and the equalised-lr linear
layers as ``addmm`` with the gain on the product.  Both modulated-conv formulations (fused grouped conv
and non-fused) of G, and D, are checked against a direct, unoptimised transcription of the NVlabs
stylegan2-ada-pytorch maths written below (NCHW, modulated weights materialised, transposed conv as
zero-insertion + correlation, FIR as a single-channel conv): forward outputs, first-order gradients,
and the double-backward terms training uses (R1 through D, path length through G).

Tolerance: ``max|a - b| / max|b| <= 1e-5`` per output and per parameter gradient in float32 (observed
~1e-6).  Second-order terms amplify float32 summation-order noise (two correct float32 transcriptions
differ by ~2e-5 there), so the double-backward checks run in float64 with a 1e-9 tolerance, which
pins the maths down exactly.  See ``_assert_grads_close`` for gradients that are ~0 by cancellation.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.models import build_discriminator, build_generator

TOL = 1e-5
SQRT2 = math.sqrt(2.0)
CONFIGS = {
    # 16 px, 3 blocks; conv_clamp small enough to actually clamp; conditional with 1 channel
    "plain": dict(resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16, mapping_layers=2),
    "clamp": dict(resolution=16, channel_base=256, channel_max=16, z_dim=16, w_dim=16, mapping_layers=2,
                  conv_clamp=0.5),
    "cond-grey": dict(resolution=16, channel_base=128, channel_max=8, z_dim=8, w_dim=16, mapping_layers=1,
                      c_dim=3, img_channels=1, d_mapping_layers=1),
}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# --------------------------------------------------------------------------- plain reference maths

def fir_ref(x, gain=1.0, pad=0, down=1):
    """upfirdn2d(up=1): zero-pad, filter every channel with the normalised [1,3,3,1] kernel, keep every
    ``down``-th pixel; done per channel as a single-channel conv (slow, obviously right)."""
    t = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype)
    k = torch.outer(t, t)
    k = (k / k.sum() * gain)[None, None]
    n, c, h, w = x.shape
    y = F.conv2d(F.pad(x.reshape(n * c, 1, h, w), [pad] * 4), k)
    return y.reshape(n, c, *y.shape[2:])[:, :, ::down, ::down]


def zero_insert(x):
    n, c, h, w = x.shape
    y = x.new_zeros(n, c, 2 * h - 1, 2 * w - 1)
    y[:, :, ::2, ::2] = x
    return y


def fc_ref(layer, x):
    y = x @ (layer.weight * layer.weight_gain).t()
    if layer.bias is not None:
        y = y + layer.bias * layer.bias_gain
    return F.leaky_relu(y, 0.2) * SQRT2 if layer.activation == "lrelu" else y


def mapping_ref(M, z, c, psi=1.0):
    parts = []
    if M.z_dim:
        parts.append(z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt())
    if M.c_dim:
        e = fc_ref(M.embed, c)
        parts.append(e * (e.square().mean(1, keepdim=True) + 1e-8).rsqrt())
    x = torch.cat(parts, 1)
    for i in range(M.num_layers):
        x = fc_ref(getattr(M, f"fc{i}"), x)
    if M.num_ws is None:
        return x
    x = x.unsqueeze(1).repeat(1, M.num_ws, 1)
    return M.w_avg + (x - M.w_avg) * psi if psi != 1 else x


def modconv_ref(layer, x, w, noise):
    """NVlabs SynthesisLayer: modulated (+demodulated) weights materialised per sample, grouped conv."""
    n = x.shape[0]
    wts = layer.weight[None] * fc_ref(layer.affine, w)[:, None, :, None, None]
    wts = wts * (wts.square().sum([2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    outs = []
    for i in range(n):
        xi, wi = x[i:i + 1], wts[i]
        if layer.up == 1:
            outs.append(F.conv2d(xi, wi, padding=1))
        else:  # transposed stride-2 conv = zero insertion + full correlation with the flipped kernel, then FIR
            y = F.conv2d(F.pad(zero_insert(xi), [2] * 4), wi.flip([2, 3]))
            outs.append(fir_ref(y, gain=4.0, pad=1))
    y = torch.cat(outs)
    if noise is not None:
        y = y + noise * layer.noise_strength
    y = F.leaky_relu(y + layer.bias[None, :, None, None], 0.2) * SQRT2
    return y.clamp(-layer.conv_clamp, layer.conv_clamp) if layer.conv_clamp is not None else y


def torgb_ref(layer, x, w):
    s = fc_ref(layer.affine, w) * layer.weight_gain
    wts = layer.weight[None] * s[:, None, :, None, None]
    y = torch.cat([F.conv2d(x[i:i + 1], wts[i]) for i in range(x.shape[0])]) + layer.bias[None, :, None, None]
    return y.clamp(-layer.conv_clamp, layer.conv_clamp) if layer.conv_clamp is not None else y


def synthesis_ref(S, ws, noise_mode="const", noise_seed=None):
    if noise_seed is not None:
        torch.manual_seed(noise_seed)
    n = ws.shape[0]
    x = img = None
    w_idx = 0
    for res in S.block_resolutions:
        blk = getattr(S, f"b{res}")
        bws = ws[:, w_idx:w_idx + blk.num_conv + 1]
        layers = [blk.conv1] if blk.is_first else [blk.conv0, blk.conv1]
        if blk.is_first:
            x = blk.const[None].repeat(n, 1, 1, 1)
        for j, layer in enumerate(layers):
            noise = {"const": layer.noise_const[None, None], "none": None}.get(noise_mode)
            if noise_mode == "random":
                noise = torch.randn([n, 1, res, res])
            x = modconv_ref(layer, x, bws[:, j], noise)
        y = torgb_ref(blk.torgb, x, bws[:, blk.num_conv])
        img = y if img is None else zero_upsample_fir(img) + y
        w_idx += blk.num_conv
    return img


def zero_upsample_fir(img):
    """upfirdn2d.upsample2d: zero insertion, pad [2, 1], FIR with gain 4."""
    n, c, h, w = img.shape
    z = img.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = img
    z = F.pad(z, [2, 1, 2, 1])
    return fir_ref(z, gain=4.0)


def generator_ref(G, z, c=None, psi=1.0, noise_mode="const", noise_seed=None):
    return synthesis_ref(G.synthesis, mapping_ref(G.mapping, z, c, psi), noise_mode, noise_seed)


def conv_layer_ref(layer, x, gain=1.0):
    w = layer.weight * layer.weight_gain
    if layer.down == 1:
        x = F.conv2d(x, w, padding=layer.kernel_size // 2)
    elif layer.kernel_size == 1:
        x = F.conv2d(fir_ref(x, pad=1, down=2), w)
    else:
        x = F.conv2d(fir_ref(x, pad=2), w, stride=2)
    if layer.bias is not None:
        x = x + layer.bias[None, :, None, None]
    if layer.activation == "lrelu":
        x = F.leaky_relu(x, 0.2) * SQRT2
    x = x * gain
    if layer.conv_clamp is not None:
        x = x.clamp(-layer.conv_clamp * gain, layer.conv_clamp * gain)
    return x


def discriminator_ref(D, img, c=None):
    x = None
    for res in D.block_resolutions:
        blk = getattr(D, f"b{res}")
        if blk.has_fromrgb:
            x = conv_layer_ref(blk.fromrgb, img)
        y = conv_layer_ref(blk.skip, x, gain=math.sqrt(0.5))
        x = conv_layer_ref(blk.conv1, conv_layer_ref(blk.conv0, x), gain=math.sqrt(0.5)) + y
    ep = D.b4
    n, ch, h, w = x.shape
    g = min(ep.mbstd.group_size, n)
    f = ep.mbstd.num_channels
    s = x.reshape(g, -1, f, ch // f, h, w)
    s = ((s - s.mean(0)).square().mean(0) + 1e-8).sqrt().mean([2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
    x = conv_layer_ref(ep.conv, torch.cat([x, s], 1))
    x = fc_ref(ep.out, fc_ref(ep.fc, x.flatten(1)))
    if ep.cmap_dim:
        x = (x * mapping_ref(D.mapping, None, c)).sum(1, keepdim=True) / math.sqrt(ep.cmap_dim)
    return x


# ----------------------------------------------------------------------------------------- fixtures

def make_pair(name: str, ch_mul: str = "1/2"):
    """A tiny G and D with every parameter randomised (non-zero noise strengths, biases, w_avg)."""
    torch.manual_seed(0)
    G = build_generator("stylegan2-emoji", ch_mul=ch_mul, **CONFIGS[name])
    D = build_discriminator("stylegan2-emoji", ch_mul=ch_mul, **CONFIGS[name])
    with torch.no_grad():
        for module in (G, D):
            for pname, p in module.named_parameters():
                if pname.endswith("noise_strength"):
                    p.fill_(0.7)
                elif pname.endswith("bias"):
                    p.normal_(0, 0.5)
        G.mapping.w_avg.normal_()
    return G, D


def inputs(G, n=4):
    z = torch.randn(n, G.z_dim)
    c = F.one_hot(torch.arange(n) % G.c_dim, G.c_dim).float() if G.c_dim else None
    return z, c


# -------------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("noise_mode", ["const", "none", "random"])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("mode", ["train", "eval"])  # prepare(G)'s fast path: tests/test_fast_path.py
def test_inference_matches_reference(name, noise_mode, fused, mode):
    G, _ = make_pair(name)
    G.train(mode == "train")
    z, c = inputs(G)
    with torch.no_grad():
        ref = generator_ref(G, z, c, psi=0.7, noise_mode=noise_mode, noise_seed=1)
        torch.manual_seed(1)
        out = G(z, c, truncation_psi=0.7, noise_mode=noise_mode, fused_modconv=fused)
    assert rel_err(out, ref) <= TOL


def _grads(module, loss):
    params = [p for p in module.parameters() if p.requires_grad]
    return dict(zip([n for n, p in module.named_parameters() if p.requires_grad],
                    torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)))


def _assert_grads_close(got: dict, want: dict, what: str, tol: float = TOL):
    """Each parameter's gradient within TOL of its own scale; a gradient that is nearly zero only by
    cancellation (below 1e-3 of the loss's largest gradient entry) is measured against that floor."""
    floor = 1e-3 * max(g.abs().max().item() for g in want.values() if g is not None)
    for name, g in want.items():
        if g is None:
            assert got[name] is None or not got[name].abs().max(), f"{what}: {name}"
            continue
        assert got[name] is not None, f"{what}: no gradient for {name}"
        err = (got[name] - g).abs().max().item() / max(g.abs().max().item(), floor)
        assert err <= tol, f"{what}: gradient of {name} differs ({err:.2e})"


TOL64 = 1e-9


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_generator_gradients_and_path_length(name, fused, dtype):
    """d(loss)/d(params) of an image loss (float32 and float64), and of the path-length penalty, a
    double backward through the synthesis network (float64)."""
    G, _ = make_pair(name)
    G = G.to(dtype)
    z, c = inputs(G)
    z, c = z.to(dtype), None if c is None else c.to(dtype)
    weight = torch.randn(z.shape[0], G.img_channels, G.img_resolution, G.img_resolution, dtype=dtype)
    tol = TOL if dtype == torch.float32 else TOL64

    def losses(ref: bool):
        # the mapping network casts z to float32 by design, so float64 runs start from the reference ws
        ws = mapping_ref(G.mapping, z, c) if ref or dtype != torch.float32 else G.mapping(z, c)
        img = synthesis_ref(G.synthesis, ws) if ref else G.synthesis(ws, fused_modconv=fused)
        ws_d = ws.detach().requires_grad_(True)
        img2 = synthesis_ref(G.synthesis, ws_d) if ref else G.synthesis(ws_d, fused_modconv=fused)
        (g,) = torch.autograd.grad((img2 * weight).sum(), ws_d, create_graph=True)
        return (img * weight).sum(), (g.square().sum(2).mean(1).sqrt() - 1).square().mean()

    (plain, pl), (plain_ref, pl_ref) = losses(False), losses(True)
    assert rel_err(plain, plain_ref) <= tol and rel_err(pl, pl_ref) <= tol
    _assert_grads_close(_grads(G, plain), _grads(G, plain_ref), "G loss", tol)
    if dtype == torch.float64:
        _assert_grads_close(_grads(G, pl), _grads(G, pl_ref), "G path length", tol)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discriminator_forward_gradients_and_r1(name, dtype):
    """D logits and parameter gradients (float32 and float64) and the R1 penalty's gradients (float64)."""
    _, D = make_pair(name)
    if D.c_dim and dtype == torch.float64:
        pytest.skip("D's class mapping casts c to float32 by design; covered in float32")
    D = D.to(dtype)
    torch.manual_seed(2)
    img = torch.randn(4, D.img_channels, D.img_resolution, D.img_resolution, dtype=dtype)
    c = F.one_hot(torch.arange(4) % D.c_dim, D.c_dim).to(dtype) if D.c_dim else None
    tol = TOL if dtype == torch.float32 else TOL64

    def losses(ref: bool):
        x = img.detach().requires_grad_(True)
        logits = discriminator_ref(D, x, c) if ref else D(x, c)
        (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        return logits, F.softplus(-logits).sum(), g.square().sum([1, 2, 3]).mean()

    (logits, loss, r1), (logits_ref, loss_ref, r1_ref) = losses(False), losses(True)
    assert rel_err(logits, logits_ref) <= tol and rel_err(r1, r1_ref) <= tol
    _assert_grads_close(_grads(D, loss), _grads(D, loss_ref), "D loss", tol)
    if dtype == torch.float64:
        _assert_grads_close(_grads(D, r1), _grads(D, r1_ref), "D R1", tol)
