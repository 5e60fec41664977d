"""StyleGAN2 weights from NVlabs (PyTorch and TensorFlow) and rosinality files -> zoo StyleGAN2.

Every source is first rewritten into NVlabs ``stylegan2-ada-pytorch`` tensor names and layouts
(which ``zoo.models.stylegan2`` shares); :func:`build` then infers the architecture from the tensor
shapes (resolution, widths per resolution, const width, z/w dims, mapping depth, c_dim, D's
minibatch-stddev and class mapping), checks every tensor is accounted for, and loads the modules.
Architectures the project does not implement (the 'orig'/'resnet' generator, 'skip'/'orig'
discriminator, StyleGAN3 alias-free layers, other activations or resampling filters) are errors,
never silently different networks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from zoo.convert.common import Converted, build_strict
from zoo.errors import ZooError
from zoo.models import stylegan2 as sg2

FIR_TAPS = [1, 3, 3, 1]
D_MAPPING_LR_MUL = 0.01  # what zoo's conditional D uses (NVlabs' default)
MAX_RESOLUTION = 4096


@dataclass
class Options:
    """Facts about the source that the tensor shapes cannot tell."""

    mapping_lr_mul: float = 0.01
    d_mapping_lr_mul: float = 0.01
    conv_clamp: Optional[float] = None
    mbstd_group_size: Optional[int] = 4
    channel_base: int = 32768
    channel_max: int = 512
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ common helpers

def _t(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32).contiguous()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ZooError(f"expected a numeric array, found dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _fir_ok(t: torch.Tensor, gain: float = 1.0) -> bool:
    k = torch.tensor(FIR_TAPS, dtype=torch.float32)
    k = torch.outer(k, k)
    k = k / k.sum() * gain
    return tuple(t.shape) == (4, 4) and torch.allclose(t.float(), k, atol=1e-6)


def _resolutions(keys, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def _check_block_resolutions(res_list: list[int], what: str) -> int:
    if not res_list:
        raise ZooError(f"no {what} blocks found")
    top = res_list[-1]
    if top > MAX_RESOLUTION:  # checked before anything is sized from it (noise buffers are top x top)
        raise ZooError(f"{what} blocks up to {top}px; at most {MAX_RESOLUTION}px is supported")
    expected = [2 ** i for i in range(2, int(math.log2(top)) + 1)]
    if top & (top - 1) or res_list != expected:
        raise ZooError(f"{what} blocks at resolutions {res_list}, expected {expected}")
    return top


def _pop_filters(state: dict, what: str) -> dict:
    """Drop NVlabs' ``resample_filter`` buffers after checking they are the [1,3,3,1] FIR we implement."""
    out = {}
    for k, v in state.items():
        if k.endswith("resample_filter"):
            if not _fir_ok(_t(v)):
                raise ZooError(f"{what}: {k} is not the [1,3,3,1] FIR filter; other resampling filters are not "
                               "supported")
            continue
        out[k] = _t(v)
    return out


def _mapping_dims(state: dict, prefix: str, what: str) -> tuple[int, int, int, int]:
    """(z_dim, c_dim, w_dim, num_layers) of an NVlabs MappingNetwork (hidden widths must equal w_dim)."""
    idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(re.escape(prefix) + r"fc(\d+)\.weight", k)))
    if idx != list(range(len(idx))):
        raise ZooError(f"{what}: mapping layers {idx} are not numbered 0..n-1")
    embed = state.get(prefix + "embed.weight")
    c_dim = int(embed.shape[1]) if embed is not None else 0
    e_dim = int(embed.shape[0]) if embed is not None else 0
    if not idx:
        return 0, c_dim, e_dim, 0
    w_dim = int(state[f"{prefix}fc{idx[-1]}.weight"].shape[0])
    for i in idx:
        out_f, in_f = state[f"{prefix}fc{i}.weight"].shape
        if out_f != w_dim or (i > 0 and in_f != w_dim):
            raise ZooError(f"{what}: mapping layer fc{i} is {in_f}->{out_f}; only {w_dim}-wide hidden layers are "
                           "supported")
    if embed is not None and e_dim != w_dim:
        raise ZooError(f"{what}: label embedding width {e_dim} != w_dim {w_dim} is not supported")
    z_dim = int(state[f"{prefix}fc0.weight"].shape[1]) - e_dim
    return z_dim, c_dim, w_dim, len(idx)


def _generator_facts(state: dict, what: str) -> dict:
    if any(k.startswith(("synthesis.input.", "synthesis.L")) for k in state):
        raise ZooError(f"{what}: this is a StyleGAN3 (alias-free) generator; only the StyleGAN2 architecture is "
                       "supported")
    res = _resolutions(state, r"synthesis\.b(\d+)\.")
    top = _check_block_resolutions(res, f"{what} synthesis")
    if any(k.startswith("synthesis.") and ".skip." in k for k in state):
        raise ZooError(f"{what}: 'resnet' generator architecture is not supported (only 'skip', config F)")
    for r in res:
        if f"synthesis.b{r}.torgb.weight" not in state:
            raise ZooError(f"{what}: no toRGB at {r}px: the 'orig' generator architecture is not supported "
                           "(only 'skip')")
    if "synthesis.b4.const" not in state:
        raise ZooError(f"{what}: no synthesis.b4.const")
    widths = {r: int(state[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in res}
    z_dim, c_dim, w_dim, layers = _mapping_dims(state, "mapping.", what)
    return dict(resolution=top, g_channels=widths, const_channels=int(state["synthesis.b4.const"].shape[0]),
                img_channels=int(state[f"synthesis.b{top}.torgb.weight"].shape[0]), z_dim=z_dim, c_dim=c_dim,
                w_dim=w_dim, mapping_layers=layers)


def _discriminator_facts(state: dict, what: str) -> dict:
    res = _resolutions(state, r"b(\d+)\.")
    top = _check_block_resolutions(res, f"{what}")
    if "b4.conv.weight" not in state or "b4.out.weight" not in state:
        raise ZooError(f"{what}: no b4 epilogue (b4.conv / b4.out)")
    if any(f"b{r}.fromrgb.weight" in state for r in res if r != top) or f"b{top}.skip.weight" not in state:
        raise ZooError(f"{what}: only the 'resnet' discriminator architecture (config F) is supported")
    widths = {r: int(state[f"b{r}.conv0.weight"].shape[0]) for r in res if r > 4}
    widths[4] = int(state["b4.conv.weight"].shape[0])
    _, c_dim, cmap_dim, layers = _mapping_dims(state, "mapping.", what)
    return dict(resolution=top, d_channels=dict(sorted(widths.items())), c_dim=c_dim,
                mbstd_num_channels=int(state["b4.conv.weight"].shape[1]) - widths[4],
                d_mapping_layers=layers, d_cmap_dim=int(state["b4.out.weight"].shape[0]) if c_dim else None)


def _fill_noise(state: dict, facts: dict, notes: list[str]) -> None:
    """``use_noise=False`` networks have no noise tensors: zero strength is the same network."""
    missing = False
    for r in range(2, int(math.log2(facts["resolution"])) + 1):
        res = 2 ** r
        for conv in (["conv1"] if res == 4 else ["conv0", "conv1"]):
            p = f"synthesis.b{res}.{conv}."
            if p + "noise_strength" not in state:
                state[p + "noise_strength"] = torch.zeros([])
                state[p + "noise_const"] = torch.zeros([res, res])
                missing = True
    if missing:
        notes.append("the source has no noise inputs (use_noise=False): imported with zero noise strength")


def build(G_ema: dict, G: dict | None, D: dict | None, opts: Options) -> Converted:
    """zoo StyleGAN2 modules from NVlabs-named state dicts (G and D optional)."""
    notes = list(opts.notes)
    g_states = {"G_ema": G_ema, "G": G}
    facts = _generator_facts(G_ema, "G_ema")
    for key in ("G_ema", "G"):
        if g_states[key] is not None:
            g_states[key] = _pop_filters(g_states[key], key)
            if key == "G" and _generator_facts(g_states[key], "G") != facts:
                raise ZooError("G and G_ema have different architectures")
            _fill_noise(g_states[key], facts, notes)
            if "mapping.w_avg" not in g_states[key]:
                g_states[key]["mapping.w_avg"] = torch.zeros([facts["w_dim"]])
                if key == "G_ema":
                    notes.append("the source has no w_avg: truncation would pull towards w = 0")
    d_facts: dict[str, Any] = {}
    if D is not None:
        D = _pop_filters(D, "D")
        d_facts = _discriminator_facts(D, "D")
        if d_facts["resolution"] != facts["resolution"] or d_facts["c_dim"] != facts["c_dim"]:
            raise ZooError(f"D ({d_facts['resolution']}px, c_dim {d_facts['c_dim']}) does not match G "
                           f"({facts['resolution']}px, c_dim {facts['c_dim']})")
        if opts.d_mapping_lr_mul != D_MAPPING_LR_MUL and d_facts["d_mapping_layers"]:
            # an equalised-lr layer computes x @ (w * lr / sqrt(in)) + b * lr: rescaling w and b by
            # lr / 0.01 gives the same function with zoo's fixed lr multiplier of 0.01.
            scale = opts.d_mapping_lr_mul / D_MAPPING_LR_MUL
            for k in list(D):
                if re.fullmatch(r"mapping\.fc\d+\.(weight|bias)", k):
                    D[k] = D[k] * scale
    cmap = d_facts.get("d_cmap_dim")
    mbstd_group = opts.mbstd_group_size
    if mbstd_group is None:
        mbstd_group = 0
        notes.append("minibatch-stddev group = the whole batch (mbstd_group_size None)")
    cfg = sg2.Config(
        resolution=facts["resolution"], img_channels=facts["img_channels"], z_dim=facts["z_dim"],
        w_dim=facts["w_dim"], c_dim=facts["c_dim"], mapping_layers=facts["mapping_layers"],
        mapping_lr_mul=float(opts.mapping_lr_mul), channel_base=int(opts.channel_base),
        channel_max=int(opts.channel_max), ch_mul="1",
        const_channels=None if facts["const_channels"] == facts["g_channels"][4] else facts["const_channels"],
        g_channels=facts["g_channels"], d_channels=d_facts.get("d_channels", facts["g_channels"]),
        mbstd_group_size=int(mbstd_group), mbstd_num_channels=d_facts.get("mbstd_num_channels", 1),
        d_mapping_layers=d_facts.get("d_mapping_layers", 8) if facts["c_dim"] else 8,
        d_cmap_dim=cmap if cmap and cmap != d_facts["d_channels"][4] else None,
        conv_clamp=None if opts.conv_clamp is None else float(opts.conv_clamp),
    )
    out = Converted(config=cfg, G_ema=build_strict(lambda: sg2.Generator(cfg), g_states["G_ema"], "G_ema"),
                    notes=notes)
    if g_states["G"] is not None:
        out.G = build_strict(lambda: sg2.Generator(cfg), g_states["G"], "G")
    if D is not None:
        out.D = build_strict(lambda: sg2.Discriminator(cfg), D, "D")
    widths = ", ".join(f"{r}:{c}" for r, c in facts["g_channels"].items())
    out.found = {
        "architecture": "StyleGAN2 (config F: 'skip' G, 'resnet' D)",
        "resolution": facts["resolution"], "img_channels": facts["img_channels"],
        "z_dim": facts["z_dim"], "w_dim": facts["w_dim"], "c_dim": facts["c_dim"],
        "mapping_layers": facts["mapping_layers"], "G widths": widths, "const channels": facts["const_channels"],
        "D widths": ", ".join(f"{r}:{c}" for r, c in d_facts["d_channels"].items()) if d_facts else "(no D)",
        "conv_clamp": cfg.conv_clamp,
        "networks": ", ".join(k for k in ("G_ema", "G", "D") if getattr(out, k) is not None),
    }
    return out


# ------------------------------------------------------------------------- stylegan2-ada / stylegan3

def _modules(obj, prefix: str = ""):
    """(path, PersistentObject) over an NVlabs network tree."""
    from zoo.convert.unpickle import PersistentObject

    yield prefix.rstrip("."), obj
    for name, child in (obj.state.get("_modules") or {}).items():
        if isinstance(child, PersistentObject):
            yield from _modules(child, f"{prefix}{name}.")


def _one(values: set, what: str, default=None):
    values = {None if v is None else float(v) if isinstance(v, (int, float, np.number)) else v for v in values}
    if len(values) > 1:
        raise ZooError(f"{what} differs between layers ({sorted(map(str, values))}); zoo supports one value")
    return next(iter(values)) if values else default


def _ada_options(nets: dict) -> Options:
    """Facts about NVlabs networks from the layers' own attributes (what the running code reads; robust
    to stylegan3's flattened constructor kwargs and its conv_clamp default of 256), falling back to the
    constructor kwargs."""
    G = nets["G_ema"]
    gk = G.init_kwargs
    sk = {**{k: v for k, v in gk.items() if k not in ("mapping_kwargs", "synthesis_kwargs")},
          **dict(gk.get("synthesis_kwargs") or {})}
    layers = dict(_modules(G))
    for path, m in layers.items():
        st = m.state
        if m.class_name == "SynthesisBlock" and st.get("architecture", "skip") != "skip":
            raise ZooError(f"G: architecture={st['architecture']!r} is not supported (only 'skip', config F)")
        if "activation" in st and st["activation"] not in ("lrelu", "linear"):
            raise ZooError(f"G {path}: activation={st['activation']!r} is not supported (only 'lrelu')")
    if sk.get("architecture", "skip") != "skip":
        raise ZooError(f"G: architecture={sk['architecture']!r} is not supported (only 'skip', config F)")
    g_clamps = {m.state["conv_clamp"] for m in layers.values()
                if m.class_name in ("SynthesisLayer", "ToRGBLayer") and "conv_clamp" in m.state}
    conv_clamp = _one(g_clamps, "G conv_clamp", sk.get("conv_clamp"))
    fc0 = layers.get("mapping.fc0")
    lr = fc0.state.get("bias_gain") if fc0 is not None else None
    if lr is None:
        lr = (gk.get("mapping_kwargs") or {}).get("lr_multiplier") or 0.01
    embed = layers.get("mapping.embed")
    if embed is not None and float(embed.state.get("bias_gain", 1)) != 1:
        raise ZooError("G: a label embedding with a learning-rate multiplier != 1 is not supported")
    opts = Options(mapping_lr_mul=float(lr), conv_clamp=conv_clamp,
                   channel_base=int(sk.get("channel_base") or 32768), channel_max=int(sk.get("channel_max") or 512))
    if sk.get("num_fp16_res"):
        opts.notes.append(f"the source ran its top {sk['num_fp16_res']} resolutions in float16 on GPU; the import "
                          "is float32 (equal to the source run with force_fp32=True)")
    D = nets["D"]
    if D is None:
        return opts
    dk = D.init_kwargs
    d_layers = dict(_modules(D))
    for path, m in d_layers.items():
        st = m.state
        if m.class_name in ("DiscriminatorBlock", "DiscriminatorEpilogue") and \
                st.get("architecture", "resnet") != "resnet":
            raise ZooError(f"D: architecture={st['architecture']!r} is not supported (only 'resnet', config F)")
        if "activation" in st and st["activation"] not in ("lrelu", "linear"):
            raise ZooError(f"D {path}: activation={st['activation']!r} is not supported (only 'lrelu')")
    if dk.get("architecture", "resnet") != "resnet":
        raise ZooError(f"D: architecture={dk['architecture']!r} is not supported (only 'resnet', config F)")
    d_clamps = {m.state["conv_clamp"] for path, m in d_layers.items()
                if m.class_name == "Conv2dLayer" and not path.endswith("skip") and "conv_clamp" in m.state}
    d_clamp = _one(d_clamps, "D conv_clamp", dk.get("conv_clamp"))
    if d_clamp != opts.conv_clamp:
        raise ZooError(f"G conv_clamp={opts.conv_clamp} and D conv_clamp={d_clamp} differ; zoo's config has one "
                       "conv_clamp")
    mbstd = d_layers.get("b4.mbstd")
    if mbstd is not None and "group_size" in mbstd.state:
        opts.mbstd_group_size = mbstd.state["group_size"]
    else:
        opts.mbstd_group_size = (dk.get("epilogue_kwargs") or {}).get("mbstd_group_size", 4)
    d_fc0 = d_layers.get("mapping.fc0")
    if d_fc0 is not None:
        opts.d_mapping_lr_mul = float(d_fc0.state.get("bias_gain")
                                      or (dk.get("mapping_kwargs") or {}).get("lr_multiplier") or 0.01)
    return opts


def from_ada_pickle(data: Any) -> Converted:
    """A ``network-snapshot-*.pkl`` dict, as rebuilt by :class:`~zoo.convert.unpickle.SafeUnpickler`."""
    from zoo.convert.unpickle import PersistentObject

    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PersistentObject):
        raise ZooError("not a StyleGAN2-ADA network pickle: expected a dict with a persistent 'G_ema' network")
    nets = {k: data.get(k) for k in ("G_ema", "G", "D")}
    expected = {"G_ema": "Generator", "G": "Generator", "D": "Discriminator"}
    for k, v in nets.items():
        if v is not None and not isinstance(v, PersistentObject):
            raise ZooError(f"'{k}' in the pickle is a {type(v).__name__}, not an NVlabs network")
        if v is not None and v.class_name != expected[k]:
            raise ZooError(f"'{k}' is a {v.class_name}, expected {expected[k]}")
    opts = _ada_options(nets)
    states = {k: (v.tensors() if v is not None else None) for k, v in nets.items()}
    return build(states["G_ema"], states["G"], states["D"], opts)


# -------------------------------------------------------------------------------- TensorFlow (NVlabs)

_TF_G_KNOWN = {"num_channels", "resolution", "label_size", "latent_size", "dlatent_size", "mapping_layers",
               "mapping_fmaps", "mapping_lrmul", "mapping_nonlinearity", "normalize_latents", "fmap_base",
               "fmap_decay", "fmap_min", "fmap_max", "fmap_const", "architecture", "nonlinearity",
               "resample_kernel", "fused_modconv", "use_noise", "randomize_noise", "dtype", "truncation_psi",
               "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val", "dlatent_avg_beta",
               "style_mixing_prob", "structure", "is_template_graph", "num_fp16_res", "conv_clamp", "w_avg_beta",
               "dlatent_broadcast", "synthesis_func", "mapping_func", "return_dlatents", "is_training",
               "is_validation", "components", "label_fmaps"}


def _tf_check(kwargs: dict, what: str) -> None:
    for key, ok in (("nonlinearity", "lrelu"), ("mapping_nonlinearity", "lrelu")):
        if kwargs.get(key, ok) != ok:
            raise ZooError(f"TF {what}: {key}={kwargs[key]!r} is not supported (only {ok!r})")
    if list(kwargs.get("resample_kernel", FIR_TAPS) or FIR_TAPS) != FIR_TAPS:
        raise ZooError(f"TF {what}: resample_kernel={kwargs['resample_kernel']} is not supported (only [1,3,3,1])")
    if kwargs.get("label_size", 0):
        raise ZooError(f"TF {what}: conditional TensorFlow networks (label_size > 0) are not supported (a "
                       "stylegan2-ada TF network can be converted with stylegan2-ada-pytorch's legacy.py first)")


def _tf_generator(net, what: str) -> tuple[dict, dict]:
    kwargs = dict(net.static_kwargs)
    _tf_check(kwargs, what)
    if kwargs.get("architecture", "skip") != "skip":
        raise ZooError(f"TF {what}: architecture={kwargs['architecture']!r} is not supported (only 'skip')")
    if not kwargs.get("normalize_latents", True):
        raise ZooError(f"TF {what}: normalize_latents=False is not supported")
    variables = net.all_variables()
    state: dict[str, torch.Tensor] = {}
    unused = []
    conv_names = {"Conv": "conv1", "Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb"}
    for name, value in variables.items():
        v = _t(value)
        if name == "lod":
            continue
        if name == "dlatent_avg":
            state["mapping.w_avg"] = v
        elif m := re.fullmatch(r"mapping/Dense(\d+)/(weight|bias)", name):
            state[f"mapping.fc{m.group(1)}.{m.group(2)}"] = v.t() if m.group(2) == "weight" else v
        elif name == "synthesis/4x4/Const/const":
            state["synthesis.b4.const"] = v[0]
        elif m := re.fullmatch(r"synthesis/noise(\d+)", name):
            i = int(m.group(1))
            res = 2 ** ((i + 5) // 2)
            conv = "conv1" if (i == 0 or i % 2 == 0) else "conv0"
            state[f"synthesis.b{res}.{conv}.noise_const"] = v[0, 0]
        elif m := re.fullmatch(r"synthesis/(\d+)x\1/(Conv|Conv0_up|Conv1|ToRGB)/(weight|mod_weight|mod_bias|"
                               r"noise_strength|bias)", name):
            res, scope, leaf = int(m.group(1)), m.group(2), m.group(3)
            p = f"synthesis.b{res}.{conv_names[scope]}."
            if leaf == "weight":
                if scope == "Conv0_up":  # NVlabs' TF up-conv is a true convolution: flip to correlation
                    v = v.flip([0, 1])
                state[p + "weight"] = v.permute(3, 2, 0, 1)
            elif leaf == "mod_weight":
                state[p + "affine.weight"] = v.t()
            elif leaf == "mod_bias":
                state[p + "affine.bias"] = v + 1  # TF adds the +1 at run time
            else:
                state[p + leaf] = v.reshape([]) if leaf == "noise_strength" else v
        else:
            unused.append(name)
    if unused:
        hint = ""
        if any("ToRGB_lod" in n for n in unused):
            hint = " (the 'orig' progressive-growing architecture is not supported)"
        elif any("/Skip/" in n for n in unused):
            hint = " (the 'resnet' generator architecture is not supported)"
        elif any("Label" in n for n in unused):
            hint = " (conditional networks are not supported)"
        raise ZooError(f"TF {what}: unexpected variables {unused[:5]}{hint}")
    return state, kwargs


def _tf_discriminator(net) -> tuple[dict, dict]:
    kwargs = dict(net.static_kwargs)
    _tf_check(kwargs, "D")
    if kwargs.get("architecture", "resnet") != "resnet":
        raise ZooError(f"TF D: architecture={kwargs['architecture']!r} is not supported (only 'resnet')")
    names = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip"}
    state, unused = {}, []
    for name, value in net.all_variables().items():
        v = _t(value)
        if m := re.fullmatch(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip)/(weight|bias)", name):
            key = f"b{m.group(1)}.{names[m.group(2)]}.{m.group(3)}"
            if m.group(1) == "4":
                unused.append(name)
                continue
            state[key] = v.permute(3, 2, 0, 1) if m.group(3) == "weight" else v
        elif m := re.fullmatch(r"4x4/Conv/(weight|bias)", name):
            state[f"b4.conv.{m.group(1)}"] = v.permute(3, 2, 0, 1) if m.group(1) == "weight" else v
        elif m := re.fullmatch(r"(4x4/Dense0|Output)/(weight|bias)", name):
            key = "b4.fc" if m.group(1) == "4x4/Dense0" else "b4.out"
            state[f"{key}.{m.group(2)}"] = v.t() if m.group(2) == "weight" else v
        else:
            unused.append(name)
    if unused:
        raise ZooError(f"TF D: unexpected variables {unused[:5]}")
    return state, kwargs


def from_tf_pickle(data: Any) -> Converted:
    """A TensorFlow StyleGAN2 pickle ``(G, D, Gs)`` of :class:`~zoo.convert.unpickle.TFNetwork` stubs."""
    from zoo.convert.unpickle import TFNetwork

    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetwork) for n in data)):
        raise ZooError("not a TensorFlow StyleGAN2 pickle: expected a tuple (G, D, Gs) of dnnlib.tflib Networks")
    tf_G, tf_D, tf_Gs = data
    for net in data:
        if (net.version or 0) < 4:
            raise ZooError(f"TF network {net.name!r}: pickle version {net.version} is too old (need 4)")
    Gs, g_kwargs = _tf_generator(tf_Gs, "Gs")
    G, _ = _tf_generator(tf_G, "G")
    D, d_kwargs = _tf_discriminator(tf_D)
    notes = []
    unknown = sorted(set(g_kwargs) - _TF_G_KNOWN)
    if unknown:
        notes.append(f"ignored TF static kwargs {unknown} (the architecture was read from the variable shapes)")
    fmap_base = int(g_kwargs.get("fmap_base", 16384))
    if g_kwargs.get("conv_clamp") != d_kwargs.get("conv_clamp"):
        raise ZooError(f"TF G conv_clamp={g_kwargs.get('conv_clamp')} and D conv_clamp={d_kwargs.get('conv_clamp')} "
                       "differ; zoo's config has one conv_clamp")
    opts = Options(
        mapping_lr_mul=float(g_kwargs.get("mapping_lrmul", 0.01)),
        conv_clamp=g_kwargs.get("conv_clamp"),  # stylegan2-ada's TF networks may set it; StyleGAN2's never do
        mbstd_group_size=int(d_kwargs.get("mbstd_group_size", 4)),  # TF D_stylegan2's default
        channel_base=2 * fmap_base,  # TF's nf(stage) = fmap_base / 2**stage is channel_base / res
        channel_max=int(g_kwargs.get("fmap_max", 512)),
        notes=notes,
    )
    out = build(Gs, G, D, opts)
    res = out.config.resolution
    if g_kwargs.get("resolution", res) != res:
        raise ZooError(f"TF G: static resolution {g_kwargs['resolution']} but variables for {res}px")
    return out


# ---------------------------------------------------------------------------------------- rosinality

def _rosinality_generator(sd: dict, what: str) -> dict:
    """rosinality ``Generator`` state dict -> NVlabs names."""
    state: dict[str, torch.Tensor] = {}
    n_conv = len({int(m.group(1)) for k in sd if (m := re.match(r"convs\.(\d+)\.", k))})
    if "input.input" not in sd or n_conv % 2:
        raise ZooError(f"{what}: not a rosinality StyleGAN2 generator state dict")

    def layer(src: str, dst: str, noise_idx: int) -> None:
        state[dst + "weight"] = _t(sd[src + "conv.weight"])[0]
        state[dst + "affine.weight"] = _t(sd[src + "conv.modulation.weight"])
        state[dst + "affine.bias"] = _t(sd[src + "conv.modulation.bias"])
        state[dst + "bias"] = _t(sd[src + "activate.bias"])
        state[dst + "noise_strength"] = _t(sd[src + "noise.weight"]).reshape([])
        state[dst + "noise_const"] = _t(sd[f"noises.noise_{noise_idx}"])[0, 0]

    def torgb(src: str, dst: str) -> None:
        state[dst + "weight"] = _t(sd[src + "conv.weight"])[0]
        state[dst + "affine.weight"] = _t(sd[src + "conv.modulation.weight"])
        state[dst + "affine.bias"] = _t(sd[src + "conv.modulation.bias"])
        state[dst + "bias"] = _t(sd[src + "bias"]).reshape(-1)

    try:
        for k in sd:
            if m := re.fullmatch(r"style\.(\d+)\.(weight|bias)", k):
                state[f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"] = _t(sd[k])
        state["synthesis.b4.const"] = _t(sd["input.input"])[0]
        layer("conv1.", "synthesis.b4.conv1.", 0)
        torgb("to_rgb1.", "synthesis.b4.torgb.")
        for i in range(n_conv // 2):
            res = 2 ** (i + 3)
            layer(f"convs.{2 * i}.", f"synthesis.b{res}.conv0.", 2 * i + 1)
            layer(f"convs.{2 * i + 1}.", f"synthesis.b{res}.conv1.", 2 * i + 2)
            torgb(f"to_rgbs.{i}.", f"synthesis.b{res}.torgb.")
    except KeyError as exc:
        raise ZooError(f"{what}: missing tensor {exc.args[0]!r} in rosinality generator") from None
    for k, v in sd.items():  # the FIR buffers must be the filter we implement
        if k.endswith("blur.kernel") or k.endswith("upsample.kernel"):
            if not _fir_ok(_t(v), gain=4.0):
                raise ZooError(f"{what}: {k} is not the [1,3,3,1] FIR filter")
    used = {k for k in sd if re.fullmatch(r"style\.\d+\.(weight|bias)", k) or k.endswith(".kernel")}
    used |= {"input.input"} | {f"noises.noise_{i}" for i in range(n_conv + 1)}
    for prefix in ["conv1.", "to_rgb1."] + [f"convs.{i}." for i in range(n_conv)] + \
                  [f"to_rgbs.{i}." for i in range(n_conv // 2)]:
        used |= {k for k in sd if k.startswith(prefix)}
    extra = sorted(set(sd) - used)
    if extra:
        raise ZooError(f"{what}: unexpected tensors {extra[:5]}")
    return state


def _rosinality_discriminator(sd: dict, resolution: int) -> dict:
    state: dict[str, torch.Tensor] = {}
    try:
        state[f"b{resolution}.fromrgb.weight"] = _t(sd["convs.0.0.weight"])
        state[f"b{resolution}.fromrgb.bias"] = _t(sd["convs.0.1.bias"])
        n_blocks = len({int(m.group(1)) for k in sd if (m := re.match(r"convs\.(\d+)\.conv1\.", k))})
        if 4 * 2 ** n_blocks != resolution:
            raise ZooError(f"rosinality D has {n_blocks} residual blocks, G is {resolution}px")
        for j in range(1, n_blocks + 1):
            res = resolution // 2 ** (j - 1)
            p = f"convs.{j}."
            state[f"b{res}.conv0.weight"] = _t(sd[p + "conv1.0.weight"])
            state[f"b{res}.conv0.bias"] = _t(sd[p + "conv1.1.bias"])
            state[f"b{res}.conv1.weight"] = _t(sd[p + "conv2.1.weight"])
            state[f"b{res}.conv1.bias"] = _t(sd[p + "conv2.2.bias"])
            state[f"b{res}.skip.weight"] = _t(sd[p + "skip.1.weight"])
            for k in (p + "conv2.0.kernel", p + "skip.0.kernel"):
                if k in sd and not _fir_ok(_t(sd[k])):
                    raise ZooError(f"rosinality D: {k} is not the [1,3,3,1] FIR filter")
        state["b4.conv.weight"] = _t(sd["final_conv.0.weight"])
        state["b4.conv.bias"] = _t(sd["final_conv.1.bias"])
        for src, dst in (("final_linear.0.", "b4.fc."), ("final_linear.1.", "b4.out.")):
            state[dst + "weight"] = _t(sd[src + "weight"])
            state[dst + "bias"] = _t(sd[src + "bias"])
    except KeyError as exc:
        raise ZooError(f"missing tensor {exc.args[0]!r} in rosinality discriminator") from None
    expected = 2 + 5 * n_blocks + 6
    if len(set(sd) - {k for k in sd if k.endswith(".kernel")}) != expected:
        raise ZooError("rosinality discriminator: unexpected tensors (only the default StyleGAN2 D is supported)")
    return state


def estimate_w_avg(G, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """Mean of the mapping network over ``n`` fixed-seed latents (rosinality's ``mean_latent``)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([n, G.z_dim], generator=gen)
    with torch.no_grad():
        return G.mapping(z, None)[:, 0].mean(dim=0)


def from_rosinality(ckpt: dict) -> Converted:
    """A rosinality ``train.py`` checkpoint ``{g, d, g_ema, ...}`` or ``convert_weight.py`` output
    ``{g_ema, latent_avg[, g, d]}``."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("g_ema"), dict):
        raise ZooError("not a rosinality checkpoint: expected a dict with a 'g_ema' state dict")
    G_ema = _rosinality_generator(ckpt["g_ema"], "g_ema")
    G = _rosinality_generator(ckpt["g"], "g") if isinstance(ckpt.get("g"), dict) else None
    notes = ["rosinality's mapping learning-rate multiplier is not stored in the file; assumed its default 0.01"]
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        G_ema["mapping.w_avg"] = _t(latent_avg).reshape(-1)
        if G is not None:
            G["mapping.w_avg"] = _t(latent_avg).reshape(-1)
    D = None
    if isinstance(ckpt.get("d"), dict):
        res = _check_block_resolutions(_resolutions(G_ema, r"synthesis\.b(\d+)\."), "g_ema")
        D = _rosinality_discriminator(ckpt["d"], res)
    args = ckpt.get("args")
    opts = Options(mapping_lr_mul=0.01, conv_clamp=None, mbstd_group_size=4, notes=notes)
    out = build(G_ema, G, D, opts)
    if latent_avg is None:
        for module in (out.G_ema, out.G if out.G is not out.G_ema else None):
            if module is not None:
                module.mapping.w_avg.copy_(estimate_w_avg(module))
        out.notes = [n for n in out.notes if "no w_avg" not in n]
        out.notes.append("the file has no latent_avg: w_avg (the truncation centre) was estimated as the mean "
                         "of 4096 fixed-seed mapped latents, like rosinality's mean_latent(4096)")
    if args is not None and hasattr(args, "__dict__"):
        out.found["training args"] = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
    return out
