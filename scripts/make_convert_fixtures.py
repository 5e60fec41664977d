#!/usr/bin/env python
"""Regenerate tests/fixtures/convert/: reference outputs of the ORIGINAL StyleGAN2 / BigGAN code.

The parity tests of ``zoo import`` (tests/test_convert*.py) compare our converted networks with what
the original implementations compute.  This script produces those references by running the
originals themselves, at tiny random-weight configurations, in a throwaway environment OUTSIDE the
project.  Their code is never copied into ganzoo, and nothing produced by their ``persistence``
module (which embeds their source) is committed: the fixtures hold only tensors (random weights,
inputs, outputs) and JSON (constructor arguments, module class names).  The tests rebuild the pickle
streams from those with stub classes.

Set-up (any Python with torch + numpy; NVlabs' dnnlib also imports click, requests, scipy)::

    git clone https://github.com/NVlabs/stylegan2-ada-pytorch   # tested at d72cc7d0
    git clone https://github.com/rosinality/stylegan2-pytorch    # tested at bef283a1
    git clone https://github.com/ajbrock/BigGAN-PyTorch          # tested at 98459431
    python -m venv /tmp/convert-env && /tmp/convert-env/bin/pip install torch numpy scipy click requests safetensors
    /tmp/convert-env/bin/python scripts/make_convert_fixtures.py \
        --stylegan2-ada stylegan2-ada-pytorch --rosinality stylegan2-pytorch --biggan BigGAN-PyTorch \
        --work /tmp/convert-work --out tests/fixtures/convert
    # optional: check that `zoo.convert` reads the REAL pickles written to --work identically
    .venv/bin/python scripts/make_convert_fixtures.py --crosscheck --work /tmp/convert-work --out tests/fixtures/convert

The committed fixtures were made this way with torch 2.13 (CPU) and numpy 2 on Python 3.11, from
checkouts in a scratch folder outside the project.

Each original runs in its own subprocess (their top-level module names clash).  Everything runs in
float32 on the CPU with fixed seeds; NVlabs networks are called with ``force_fp32=True`` and
``noise_mode='const'``; rosinality's with ``randomize_noise=False``.  rosinality's ``op`` package
JIT-compiles CUDA kernels at import; the script stubs ``torch.utils.cpp_extension.load`` (only the
CPU code paths, which are plain PyTorch, ever run).  rosinality's ``model.py`` hard-codes 512
channels up to 32 px, so its width table is replaced (``ROSINALITY_WIDTHS``) before it is executed;
every layer is still rosinality's own.
"""
from __future__ import annotations

import argparse
import copy
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()


# ------------------------------------------------------------------------------------------- helpers

def _randomise_(module, seed: int, skip=("resample_filter",)) -> None:
    """Give every float parameter/buffer non-trivial values (fresh inits have zero biases, noise
    strengths and w_avg, which would hide mapping mistakes)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point() or name.split(".")[-1] in skip:
                continue
            noise = torch.randn(t.shape, generator=gen)
            leaf = name.split(".")[-1]
            if leaf in ("noise_strength", "w_avg"):
                t.copy_(noise * (0.5 if leaf == "noise_strength" else 1.0))
            elif leaf == "bias":
                t.add_(0.2 * noise)
            else:
                t.add_(0.05 * noise * (t.std() if t.numel() > 1 else 1.0))


def _flat(prefix: str, module) -> dict:
    out = {}
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        out[f"{prefix}.{name}"] = t.detach().clone().contiguous()
    return out


def _save(out_dir: Path, case: str, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / f"{case}.safetensors"))
    (out_dir / f"{case}.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=_jsonable) + "\n")
    (out_dir / f"{case}.safetensors").chmod(0o644)
    size = (out_dir / f"{case}.safetensors").stat().st_size
    print(f"  wrote {case}.safetensors ({size / 1024:.0f} KiB) and {case}.json")


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


# --------------------------------------------------------------------------------- NVlabs ADA (torch)

def _module_tree(module) -> dict:
    """{path: {"class", "args", "kwargs", "attrs", "parameters", "buffers"}} of the persistent modules:
    what the tests need to rebuild a pickle stream with the structure persistence.py writes."""
    import numpy as np

    plain = (bool, int, float, str, type(None), list, tuple, np.generic)
    tree = {}
    for path, m in module.named_modules():
        if hasattr(m, "init_kwargs"):
            attrs = {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"
                     and isinstance(v, plain)}
            tree[path] = {"class": type(m).__name__, "args": list(m.init_args), "kwargs": dict(m.init_kwargs),
                          "attrs": attrs, "parameters": [k for k, v in m._parameters.items() if v is not None],
                          "buffers": [k for k, v in m._buffers.items() if v is not None]}
    return tree


def _plain(obj):
    """EasyDicts -> dicts, recursively (for JSON)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


SG2ADA_CASES = {
    # unconditional, the ADA defaults (fp16 blocks + conv_clamp 256), 2 mapping layers, z_dim != w_dim
    "sg2ada_uncond": dict(
        G=dict(z_dim=12, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
               mapping_kwargs=dict(num_layers=2),
               synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=2, conv_clamp=256)),
        D=dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=128, channel_max=16, num_fp16_res=2,
               conv_clamp=256, block_kwargs=dict(), mapping_kwargs=dict(), epilogue_kwargs=dict(mbstd_group_size=4)),
        psi=[1.0, 0.5], cutoff=[None, 3], batch=4, d_batch=8,
    ),
    # conditional, a conv_clamp that really clamps, 2 mbstd channels in groups of 2
    "sg2ada_cond": dict(
        G=dict(z_dim=16, c_dim=5, w_dim=16, img_resolution=16, img_channels=3,
               mapping_kwargs=dict(num_layers=3),
               synthesis_kwargs=dict(channel_base=128, channel_max=16, num_fp16_res=0, conv_clamp=0.5)),
        D=dict(c_dim=5, img_resolution=16, img_channels=3, channel_base=128, channel_max=16, num_fp16_res=0,
               conv_clamp=0.5, block_kwargs=dict(), mapping_kwargs=dict(),
               epilogue_kwargs=dict(mbstd_group_size=2, mbstd_num_channels=2)),
        psi=[1.0, 0.6], cutoff=[None, None], batch=4, d_batch=6,
    ),
}


def stage_sg2ada(repo: Path, work: Path, out: Path) -> None:
    sys.path.insert(0, str(repo))
    import numpy as np
    import torch

    import dnnlib
    import legacy
    from training import networks
    from training.augment import AugmentPipe

    def easy(d):
        return dnnlib.EasyDict({k: easy(v) if isinstance(v, dict) else v for k, v in d.items()})

    for case, spec in SG2ADA_CASES.items():
        print(f"[stylegan2-ada] {case}")
        torch.manual_seed(0)
        G = networks.Generator(**easy(spec["G"])).eval().requires_grad_(False)
        D = networks.Discriminator(**easy(spec["D"])).eval().requires_grad_(False)
        _randomise_(G, 1)
        _randomise_(D, 2)
        G_ema = copy.deepcopy(G)
        _randomise_(G_ema, 3)
        aug = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                          brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
        # the snapshot dict exactly as training/training_loop.py pickles it
        snapshot = dict(training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset",
                                                 path="~/datasets/tiny.zip", use_labels=G.c_dim > 0,
                                                 max_size=1000, xflip=False, resolution=G.img_resolution))
        for name, m in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", aug)]:
            snapshot[name] = copy.deepcopy(m).eval().requires_grad_(False).cpu()
        work.mkdir(parents=True, exist_ok=True)
        with open(work / f"{case}.pkl", "wb") as fh:
            pickle.dump(snapshot, fh)

        gen = torch.Generator().manual_seed(10)
        n, nd = spec["batch"], spec["d_batch"]
        z = torch.randn([n, G.z_dim], generator=gen)
        c = torch.zeros([n, G.c_dim])
        cd = torch.zeros([nd, G.c_dim])
        if G.c_dim:
            c[torch.arange(n), torch.arange(n) % G.c_dim] = 1
            cd[torch.arange(nd), (torch.arange(nd) * 2 + 1) % G.c_dim] = 1
        real_u8 = torch.randint(0, 256, [nd, G.img_channels, G.img_resolution, G.img_resolution], generator=gen,
                                dtype=torch.uint8)
        real = real_u8.float() / 127.5 - 1  # the tests apply the same formula to in.real_u8
        t = {"in.z": z, "in.c": c, "in.c_d": cd, "in.real_u8": real_u8}
        with torch.no_grad():
            for i, (psi, cutoff) in enumerate(zip(spec["psi"], spec["cutoff"])):
                t[f"out.G_ema.img{i}"] = G_ema(z, c, truncation_psi=psi, truncation_cutoff=cutoff,
                                               noise_mode="const", force_fp32=True)
            t["out.G.img0"] = G(z[:2], c[:2], noise_mode="const", force_fp32=True)
            t["out.D.fake"] = D(t["out.G_ema.img0"], c, force_fp32=True)
            t["out.D.real"] = D(real, cd, force_fp32=True)
        clamp = spec["G"]["synthesis_kwargs"]["conv_clamp"]
        print(f"  image range {t['out.G_ema.img0'].min():.3f}..{t['out.G_ema.img0'].max():.3f}, conv_clamp {clamp}")
        for prefix, m in [("G", G), ("G_ema", G_ema), ("D", D)]:
            t.update(_flat(prefix, m))
        meta = {
            "source": "NVlabs/stylegan2-ada-pytorch training/networks.py (run by scripts/make_convert_fixtures.py)",
            "modules": {k: _plain(_module_tree(m)) for k, m in [("G", G), ("D", D), ("G_ema", G_ema)]},
            "training_set_kwargs": snapshot["training_set_kwargs"],
            "psi": spec["psi"], "cutoff": spec["cutoff"],
        }
        _save(out, case, t, meta)

    # ---- the TensorFlow pickle format, converted by NVlabs' own legacy.py ---------------------------
    stage_sg2tf(repo, work, out, networks, legacy, easy)


def _tf_variables_G(G, mapping_layers: int):
    """The TF StyleGAN2 (config F) variables of a PyTorch Generator: the inverse of
    legacy.convert_tf_generator (layouts: dense [in, out], conv [kh, kw, in, out], up-conv flipped)."""
    import numpy as np

    def npy(t):
        return t.detach().cpu().numpy().astype(np.float32)

    s = G.synthesis
    mapping = [v for i in range(mapping_layers) for v in (
        (f"Dense{i}/weight", npy(getattr(G.mapping, f"fc{i}").weight).T),
        (f"Dense{i}/bias", npy(getattr(G.mapping, f"fc{i}").bias)))]
    synth = []
    log2 = int(np.log2(G.img_resolution))
    for layer_idx in range(log2 * 2 - 3):
        res = (layer_idx + 5) // 2
        block = getattr(s, f"b{2 ** res}")
        layer = block.conv1 if (res == 2 or layer_idx % 2 == 0) else block.conv0
        synth.append((f"noise{layer_idx}", npy(layer.noise_const)[None, None]))

    def conv(scope, layer, flip=False):
        w = npy(layer.weight).transpose(2, 3, 1, 0)
        if flip:
            w = w[::-1, ::-1]
        return [(f"{scope}/weight", np.ascontiguousarray(w)), (f"{scope}/mod_weight", npy(layer.affine.weight).T),
                (f"{scope}/mod_bias", npy(layer.affine.bias) - 1)] + (
            [(f"{scope}/noise_strength", npy(layer.noise_strength))] if hasattr(layer, "noise_strength") else []) + [
            (f"{scope}/bias", npy(layer.bias))]

    synth.append(("4x4/Const/const", npy(s.b4.const)[None]))
    synth += conv("4x4/Conv", s.b4.conv1)
    synth += conv("4x4/ToRGB", s.b4.torgb)
    for res in s.block_resolutions[1:]:
        b = getattr(s, f"b{res}")
        synth += conv(f"{res}x{res}/Conv0_up", b.conv0, flip=True)
        synth += conv(f"{res}x{res}/Conv1", b.conv1)
        synth += conv(f"{res}x{res}/ToRGB", b.torgb)
    return mapping, synth


def _tf_variables_D(D):
    import numpy as np

    def npy(t):
        return t.detach().cpu().numpy().astype(np.float32)

    out = []
    for res in D.block_resolutions:
        b = getattr(D, f"b{res}")
        if hasattr(b, "fromrgb"):
            out += [(f"{res}x{res}/FromRGB/weight", npy(b.fromrgb.weight).transpose(2, 3, 1, 0)),
                    (f"{res}x{res}/FromRGB/bias", npy(b.fromrgb.bias))]
        out += [(f"{res}x{res}/Conv0/weight", npy(b.conv0.weight).transpose(2, 3, 1, 0)),
                (f"{res}x{res}/Conv0/bias", npy(b.conv0.bias)),
                (f"{res}x{res}/Conv1_down/weight", npy(b.conv1.weight).transpose(2, 3, 1, 0)),
                (f"{res}x{res}/Conv1_down/bias", npy(b.conv1.bias)),
                (f"{res}x{res}/Skip/weight", npy(b.skip.weight).transpose(2, 3, 1, 0))]
    out += [("4x4/Conv/weight", npy(D.b4.conv.weight).transpose(2, 3, 1, 0)), ("4x4/Conv/bias", npy(D.b4.conv.bias)),
            ("4x4/Dense0/weight", npy(D.b4.fc.weight).T), ("4x4/Dense0/bias", npy(D.b4.fc.bias)),
            ("Output/weight", npy(D.b4.out.weight).T), ("Output/bias", npy(D.b4.out.bias))]
    return [(k, np.ascontiguousarray(v)) for k, v in out]


class _TFNetworkWriter:
    """Pickles as ``dnnlib.tflib.network.Network`` with the state layout of its ``__getstate__``."""

    def __init__(self, state):
        self._state = state

    def __reduce__(self):
        return (_tf_network_class(), (), self._state)


def _tf_network_class():
    import types

    mod = sys.modules.get("dnnlib.tflib.network")
    if mod is None or not hasattr(mod, "Network"):
        for name in ("dnnlib.tflib", "dnnlib.tflib.network"):
            sys.modules.setdefault(name, types.ModuleType(name))
        mod = sys.modules["dnnlib.tflib.network"]

        class Network:  # a data-only stand-in; never executes anything
            def __setstate__(self, state):
                self.__dict__.update(state)

        Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
        mod.Network = Network
    return mod.Network


TF_CASE = dict(res=32, fmap_base=64, fmap_max=16, latent=12, dlatent=16, mapping_layers=3)
TF_SRC = "# build_module_src: placeholder (the real file embeds NVlabs' TensorFlow source here)\n"


def stage_sg2tf(repo, work, out, networks, legacy, easy) -> None:
    import numpy as np
    import torch

    case = "sg2tf_uncond"
    print(f"[stylegan2 TF via legacy.py] {case}")
    k = TF_CASE
    torch.manual_seed(0)
    G = networks.Generator(z_dim=k["latent"], c_dim=0, w_dim=k["dlatent"], img_resolution=k["res"], img_channels=3,
                           mapping_kwargs=easy(dict(num_layers=k["mapping_layers"])),
                           synthesis_kwargs=easy(dict(channel_base=k["fmap_base"] * 2, channel_max=k["fmap_max"]))
                           ).eval().requires_grad_(False)  # eval: calling it must not update w_avg
    D = networks.Discriminator(c_dim=0, img_resolution=k["res"], img_channels=3, channel_base=k["fmap_base"] * 2,
                               channel_max=k["fmap_max"]).eval().requires_grad_(False)
    _randomise_(G, 4)
    _randomise_(D, 5)
    Gs = copy.deepcopy(G)
    _randomise_(Gs, 6)
    # static_kwargs as the official run_training.py config-f networks carry them
    g_kwargs = dict(num_channels=3, resolution=k["res"], label_size=0, fmap_base=k["fmap_base"], fmap_max=k["fmap_max"],
                    latent_size=k["latent"], dlatent_size=k["dlatent"], mapping_layers=k["mapping_layers"])
    d_kwargs = dict(num_channels=3, resolution=k["res"], label_size=0, fmap_base=k["fmap_base"], fmap_max=k["fmap_max"])

    def tf_G(net, name):
        mapping, synth = _tf_variables_G(net, k["mapping_layers"])
        kw = dict(g_kwargs)
        comp_m = _TFNetworkWriter(dict(version=4, name="G_mapping",
                                       static_kwargs=dict(kw, dlatent_broadcast=net.num_ws), components={},
                                       build_module_src=TF_SRC, build_func_name="G_mapping", variables=mapping))
        comp_s = _TFNetworkWriter(dict(version=4, name="G_synthesis", static_kwargs=kw, components={},
                                       build_module_src=TF_SRC, build_func_name="G_synthesis_stylegan2",
                                       variables=synth))
        own = [("lod", np.float32(0)), ("dlatent_avg", net.mapping.w_avg.numpy().astype(np.float32))]
        return _TFNetworkWriter(dict(version=4, name=name, static_kwargs=kw,
                                     components={"synthesis": comp_s, "mapping": comp_m},
                                     build_module_src=TF_SRC, build_func_name="G_main", variables=own))

    tf_D = _TFNetworkWriter(dict(version=4, name="D", static_kwargs=d_kwargs, components={}, build_module_src=TF_SRC,
                                 build_func_name="D_stylegan2", variables=_tf_variables_D(D)))
    blob = pickle.dumps((tf_G(G, "G"), tf_D, tf_G(Gs, "Gs")), protocol=4)
    (work / f"{case}.pkl").write_bytes(blob)

    # NVlabs' converter is the reference: what legacy.load_network_pkl makes of this TF pickle.
    data = legacy.load_network_pkl(io.BytesIO(blob))
    rG, rD, rGs = data["G"], data["D"], data["G_ema"]
    gen = torch.Generator().manual_seed(11)
    z = torch.randn([4, k["latent"]], generator=gen)
    real_u8 = torch.randint(0, 256, [4, 3, k["res"], k["res"]], generator=gen, dtype=torch.uint8)
    real = real_u8.float() / 127.5 - 1
    t = {"in.z": z, "in.real_u8": real_u8}
    with torch.no_grad():
        t["out.G_ema.img0"] = rGs(z, None, noise_mode="const", force_fp32=True)
        t["out.G_ema.img1"] = rGs(z, None, truncation_psi=0.7, noise_mode="const", force_fp32=True)
        t["out.G.img0"] = rG(z[:2], None, noise_mode="const", force_fp32=True)
        t["out.D.fake"] = rD(t["out.G_ema.img0"], None, force_fp32=True)
        t["out.D.real"] = rD(real, None, force_fp32=True)
        # sanity: legacy.py reproduces the networks the TF variables were written from
        print("  legacy round trip max|diff|:", float((rGs(z, None, noise_mode="const", force_fp32=True)
                                                      - Gs(z, None, noise_mode="const", force_fp32=True)).abs().max()),
              float((rD(real, None) - D(real, None)).abs().max()))

    def variables(net_state, prefix):
        for name, value in net_state["variables"]:
            t[f"{prefix}{name}"] = torch.from_numpy(np.array(value, dtype=np.float32))
        for cname, comp in net_state["components"].items():
            variables(comp._state, f"{prefix}{cname}/")

    structure = {}
    for key, net in (("G", tf_G(G, "G")), ("D", tf_D), ("Gs", tf_G(Gs, "Gs"))):
        variables(net._state, f"{key}/")

        def describe(n):
            s = n._state
            return {"name": s["name"], "static_kwargs": s["static_kwargs"], "build_func_name": s["build_func_name"],
                    "variables": [v[0] for v in s["variables"]],
                    "components": {c: describe(v) for c, v in s["components"].items()}}
        structure[key] = describe(net)
    meta = {"source": "TF-format pickle synthesised from random NVlabs networks; reference outputs from "
                      "NVlabs/stylegan2-ada-pytorch legacy.load_network_pkl (run by scripts/make_convert_fixtures.py)",
            "networks": structure, "psi": [1.0, 0.7]}
    _save(out, case, t, meta)


# ------------------------------------------------------------------------------------------ rosinality

ROSINALITY_CASE = dict(size=32, style_dim=16, n_mlp=3, channel_multiplier=1)
# model.py hard-codes 512 channels up to 32 px (tens of MB at any size); this is the one edit made to
# rosinality's code for the fixture: a smaller width table.  Every layer is still rosinality's own.
ROSINALITY_WIDTHS = {"4: 512,": "4: 16,", "8: 512,": "8: 16,", "16: 512,": "16: 8,", "32: 512,": "32: 8,"}


def stage_rosinality(repo: Path, work: Path, out: Path) -> None:
    import types

    import torch
    import torch.utils.cpp_extension

    # op/ JIT-builds CUDA kernels at import; the CPU code paths (plain PyTorch) never use them
    torch.utils.cpp_extension.load = lambda *a, **k: None
    sys.path.insert(0, str(repo))
    src = (repo / "model.py").read_text()
    for old, new in ROSINALITY_WIDTHS.items():
        assert src.count(old) == 2, old  # once in Generator, once in Discriminator
        src = src.replace(old, new)
    rmodel = types.ModuleType("model")
    rmodel.__file__ = str(repo / "model.py")
    exec(compile(src, str(repo / "model.py"), "exec"), rmodel.__dict__)

    case = "rosinality"
    print(f"[rosinality] {case}")
    k = ROSINALITY_CASE
    torch.manual_seed(0)
    g = rmodel.Generator(k["size"], k["style_dim"], k["n_mlp"], channel_multiplier=k["channel_multiplier"]).eval()
    d = rmodel.Discriminator(k["size"], channel_multiplier=k["channel_multiplier"]).eval()
    _randomise_(g, 7, skip=("kernel",))
    _randomise_(d, 8, skip=("kernel",))
    g_ema = copy.deepcopy(g)
    _randomise_(g_ema, 9, skip=("kernel",))
    gen = torch.Generator().manual_seed(12)
    latent_avg = torch.randn([k["style_dim"]], generator=gen)
    # train.py's checkpoint layout (optimizer states and args included), and convert_weight.py's
    args = argparse.Namespace(size=k["size"], latent=k["style_dim"], n_mlp=k["n_mlp"],
                              channel_multiplier=k["channel_multiplier"], batch=16, lr=0.002, r1=10.0)
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=0.002, betas=(0.0, 0.99))
    work.mkdir(parents=True, exist_ok=True)
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(), "g_optim": g_optim.state_dict(),
                "d_optim": d_optim.state_dict(), "args": args, "ada_aug_p": 0.0}, work / "rosinality_train.pt")
    torch.save({"g_ema": g_ema.state_dict(), "latent_avg": latent_avg}, work / "rosinality_convert_weight.pt")

    z = torch.randn([4, k["style_dim"]], generator=gen)
    real_u8 = torch.randint(0, 256, [8, 3, k["size"], k["size"]], generator=gen, dtype=torch.uint8)
    real = real_u8.float() / 127.5 - 1
    t = {"in.z": z, "in.real_u8": real_u8, "latent_avg": latent_avg}
    with torch.no_grad():
        t["out.G_ema.img0"] = g_ema([z], randomize_noise=False)[0]
        t["out.G_ema.img1"] = g_ema([z], truncation=0.7, truncation_latent=latent_avg, randomize_noise=False)[0]
        t["out.G.img0"] = g([z[:2]], randomize_noise=False)[0]
        t["out.D.fake"] = d(t["out.G_ema.img0"])
        t["out.D.real"] = d(real)
    for prefix, m in (("g", g), ("g_ema", g_ema), ("d", d)):
        t.update({f"{prefix}.{n}": v.detach().clone() for n, v in m.state_dict().items()})
    meta = {"source": "rosinality/stylegan2-pytorch model.py with a smaller width table "
                      f"{ROSINALITY_WIDTHS} (run by scripts/make_convert_fixtures.py)",
            "args": vars(args), "psi": [1.0, 0.7]}
    _save(out, case, t, meta)


# ---------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stylegan2-ada", type=Path, help="checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--rosinality", type=Path, help="checkout of rosinality/stylegan2-pytorch")
    ap.add_argument("--biggan", type=Path, help="checkout of ajbrock/BigGAN-PyTorch")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the real pickles/checkpoints")
    ap.add_argument("--out", type=Path, required=True, help="fixture folder (tests/fixtures/convert)")
    ap.add_argument("--stage", choices=["sg2ada", "rosinality", "biggan"], help=argparse.SUPPRESS)
    ap.add_argument("--crosscheck", action="store_true", help="read the real files in --work with zoo.convert")
    args = ap.parse_args(argv)
    if args.stage:
        repo = {"sg2ada": args.stylegan2_ada, "rosinality": args.rosinality, "biggan": args.biggan}[args.stage]
        {"sg2ada": stage_sg2ada, "rosinality": stage_rosinality, "biggan": stage_biggan}[args.stage](
            repo.resolve(), args.work.resolve(), args.out.resolve())
        return 0
    if args.crosscheck:
        return crosscheck(args.work, args.out)
    for stage, repo in (("sg2ada", args.stylegan2_ada), ("rosinality", args.rosinality), ("biggan", args.biggan)):
        if repo is None:
            print(f"skipping {stage} (no checkout given)")
            continue
        cmd = [sys.executable, str(HERE), "--stage", stage, f"--{ {'sg2ada': 'stylegan2-ada'}.get(stage, stage)}",
               str(repo.resolve()), "--work", str(args.work.resolve()), "--out", str(args.out.resolve())]
        subprocess.run(cmd, check=True, cwd=str(repo))
    return 0


BIGGAN_CASE = dict(resolution=32, G_ch=4, D_ch=4, dim_z=20, shared_dim=8, n_classes=5, G_attn="16", D_attn="16",
                   hier=True, G_shared=True, SN_eps=1e-6, BN_eps=1e-5)


def stage_biggan(repo: Path, work: Path, out: Path) -> None:
    import torch

    sys.path.insert(0, str(repo))
    import BigGAN  # ajbrock's BigGAN.py

    case = "biggan"
    print(f"[BigGAN-PyTorch] {case}")
    k = BIGGAN_CASE
    torch.manual_seed(0)
    G = BigGAN.Generator(**k, no_optim=True).eval()
    D = BigGAN.Discriminator(**k, no_optim=True).eval()

    def randomise(m, seed):
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, t in list(m.named_parameters()) + list(m.named_buffers()):
                leaf, noise = name.split(".")[-1], torch.randn(t.shape, generator=gen)
                if leaf == "stored_var":
                    t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
                elif leaf in ("stored_mean", "gamma", "u0"):
                    t.copy_(noise * (0.3 if leaf == "stored_mean" else 1.0))
                elif leaf != "sv0":
                    t.add_(0.2 * noise * (t.std() if t.numel() > 1 else 1.0))

    randomise(G, 13)
    randomise(D, 14)
    G_ema = copy.deepcopy(G)
    randomise(G_ema, 15)
    work.mkdir(parents=True, exist_ok=True)
    for name, m in (("G", G), ("D", D), ("G_ema", G_ema)):  # utils.save_weights writes plain state dicts
        torch.save(m.state_dict(), work / f"{name}.pth")
    torch.save({"itr": 1000, "epoch": 1, "save_num": 0, "config": dict(k)}, work / "state_dict.pth")

    gen = torch.Generator().manual_seed(16)
    z = torch.randn([4, k["dim_z"]], generator=gen)
    y = torch.tensor([0, 3, 1, 4])
    yd = torch.tensor([2, 0, 4, 1, 3, 3, 0, 1])
    real_u8 = torch.randint(0, 256, [8, 3, k["resolution"], k["resolution"]], generator=gen, dtype=torch.uint8)
    real = real_u8.float() / 127.5 - 1
    t = {"in.z": z, "in.y": y, "in.y_d": yd, "in.real_u8": real_u8}
    with torch.no_grad():  # eval mode: stored BN statistics, power iteration without updating u
        t["out.G_ema.img0"] = G_ema(z, G_ema.shared(y))
        t["out.G.img0"] = G(z[:2], G.shared(y[:2]))
        t["out.D.fake"] = D(t["out.G_ema.img0"], y)
        t["out.D.real"] = D(real, yd)
    for prefix, m in (("G", G), ("G_ema", G_ema), ("D", D)):
        t.update({f"{prefix}.{n}": v.detach().clone() for n, v in m.state_dict().items()})
    meta = {"source": "ajbrock/BigGAN-PyTorch BigGAN.py (run by scripts/make_convert_fixtures.py)", "config": k}
    _save(out, case, t, meta)


def crosscheck(work: Path, out: Path) -> int:
    """Import the REAL files written to --work with zoo.convert and compare with the fixtures' outputs
    (the tests use pickle streams rebuilt from the fixtures; this shows both read the same)."""
    import torch
    from safetensors.torch import load_file

    from zoo.convert import import_checkpoint

    def rel(a, b):
        return float(((a - b).abs() / b.abs().clamp(min=1e-6)).max())

    cases = [("sg2ada_uncond", ["sg2ada_uncond.pkl"], {}), ("sg2ada_cond", ["sg2ada_cond.pkl"], {}),
             ("sg2tf_uncond", ["sg2tf_uncond.pkl"], {}), ("rosinality", ["rosinality_train.pt"], {}),
             ("biggan", ["G.pth"], {"g_ema": work / "G_ema.pth", "d": work / "D.pth"})]
    worst = 0.0
    for case, files, extra in cases:
        t = load_file(str(out / f"{case}.safetensors"))
        meta = json.loads((out / f"{case}.json").read_text())
        ck = import_checkpoint(work / files[0], **extra)
        z = t["in.z"]
        c = t.get("in.y", t.get("in.c"))
        c = None if c is not None and c.ndim == 2 and c.shape[1] == 0 else c
        cd = t.get("in.y_d", t.get("in.c_d"))
        cd = None if cd is not None and cd.ndim == 2 and cd.shape[1] == 0 else cd
        real = t["in.real_u8"].float() / 127.5 - 1
        psis = meta.get("psi", [1.0])
        cutoffs = meta.get("cutoff", [None] * len(psis))
        with torch.no_grad():
            errs = {"G_ema img0": float((ck.G_ema(z, c) - t["out.G_ema.img0"]).abs().max()),
                    "G img0": float((ck.G(z[:2], None if c is None else c[:2]) - t["out.G.img0"]).abs().max()),
                    "D real (rel)": rel(ck.D(real, cd), t["out.D.real"]),
                    "D fake (rel)": rel(ck.D(t["out.G_ema.img0"], c), t["out.D.fake"])}
            if case != "rosinality":  # rosinality_train.pt has no latent_avg (estimated): psi=1 only
                for i, (psi, cutoff) in enumerate(zip(psis, cutoffs)):
                    if i:
                        img = ck.G_ema(z, c, truncation_psi=psi, truncation_cutoff=cutoff)
                        errs[f"G_ema img{i} psi={psi}"] = float((img - t[f"out.G_ema.img{i}"]).abs().max())
        print(f"{case}: " + ", ".join(f"{k} {v:.2e}" for k, v in errs.items()))
        worst = max(worst, *errs.values())
    print(f"worst difference: {worst:.2e} (tolerance 1e-4)")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
