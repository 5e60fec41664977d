"""`zoo import`: parity with the original implementations, and safety of the readers.

The fixtures (tests/fixtures/convert/, made by scripts/make_convert_fixtures.py) hold random weights,
inputs and the outputs the ORIGINAL code computed from them: NVlabs stylegan2-ada-pytorch (its
networks, and its legacy.py for the TensorFlow format), rosinality/stylegan2-pytorch and
ajbrock/BigGAN-PyTorch.  No code or pickle of theirs is committed: the tests rebuild each file format
from the tensors -- NVlabs pickles with stub classes registered under the real global names
(``torch_utils.persistence._reconstruct_persistent_obj``, ``dnnlib.tflib.network.Network``), so the
stream has the same structure the originals write -- and check the imported networks reproduce the
reference images to 1e-4 (max abs) and D logits to 1e-4 (relative), in float32 on the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from zoo.checkpoint import load_checkpoint
from zoo.integrity import sha256_file
from zoo.convert import import_checkpoint, import_to_dir, read_source
from zoo.errors import ZooError

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
ATOL = 1e-4
RTOL_D = 1e-4


def fixture(case: str) -> tuple[dict, dict]:
    return load_file(str(FIXTURES / f"{case}.safetensors")), json.loads((FIXTURES / f"{case}.json").read_text())


def sub(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def real_images(t: dict) -> torch.Tensor:
    return t["in.real_u8"].float() / 127.5 - 1  # the formula the fixture script used


def assert_images(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    err = float((actual - expected).abs().max())
    assert err < ATOL, f"max abs difference {err:.3g} >= {ATOL}"


def assert_logits(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    err = float(((actual - expected).abs() / expected.abs().clamp(min=1e-6)).max())
    assert err < RTOL_D, f"max relative difference {err:.3g} >= {RTOL_D}"


# ------------------------------------------------------------------ NVlabs pickle streams, rebuilt here

@pytest.fixture
def nvlabs_globals(monkeypatch):
    """Register stand-ins under the global names NVlabs pickles reference, for *writing* streams.
    They are plain data holders: the reader never imports them (it has its own allow-list)."""
    return register_nvlabs_stubs(monkeypatch)


def register_nvlabs_stubs(monkeypatch):
    """What :func:`nvlabs_globals` does, for any MonkeyPatch (tests/security builds fuzz seeds with it)."""

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its name is pickled
        raise AssertionError("never called")

    class EasyDict(dict):
        pass

    class Network:
        def __init__(self, state):
            self._state = state

        def __getstate__(self):
            return self._state

    persistence = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    network = types.ModuleType("dnnlib.tflib.network")
    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    network.Network = Network
    for name, mod in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                      ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util),
                      ("dnnlib.tflib", types.ModuleType("dnnlib.tflib")), ("dnnlib.tflib.network", network)):
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict, Network=Network)


class _Persistent:
    """Pickles like an object of an NVlabs ``@persistent_class`` (see torch_utils/persistence.py)."""

    def __init__(self, g, class_name: str, state: dict, module_src: str = "# NVlabs source omitted\n"):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)
        self.g = g

    def __reduce__(self):
        return self.g.reconstruct, (self.meta,)


def _easy(g, obj):
    if isinstance(obj, dict):
        return g.EasyDict({k: _easy(g, v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [_easy(g, v) for v in obj]
    return obj


def persistent_network(g, tree: dict, tensors: dict, module_src: str = "# NVlabs source omitted\n") -> _Persistent:
    """An NVlabs network as ``pickle.dump`` writes it: nested persistent objects whose state is the
    module ``__dict__`` (parameters, buffers, children, init args)."""
    objs = {}
    for path in sorted(tree, key=lambda p: -p.count(".") if p else 1):  # children before parents
        info = tree[path]
        prefix = f"{path}." if path else ""
        children = OrderedDict((c.rsplit(".", 1)[-1], objs[c]) for c in tree
                               if c and c != path and (c.rsplit(".", 1)[0] if "." in c else "") == path)
        state = {
            "training": False,
            "_parameters": OrderedDict((n, torch.nn.Parameter(tensors[prefix + n], requires_grad=False))
                                       for n in info["parameters"]),
            "_buffers": OrderedDict((n, tensors[prefix + n]) for n in info["buffers"]),
            "_non_persistent_buffers_set": set(),
            "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(), "_forward_pre_hooks": OrderedDict(),
            "_state_dict_hooks": OrderedDict(), "_load_state_dict_pre_hooks": OrderedDict(),
            "_modules": children,
            "_init_args": tuple(info["args"]),
            "_init_kwargs": _easy(g, info["kwargs"]),
            **info["attrs"],  # plain attributes: conv_clamp, activation, architecture, bias_gain, group_size, ...
        }
        objs[path] = _Persistent(g, info["class"], state, module_src)
    return objs[""]


def ada_pickle(g, case: str, tmp_path: Path, module_src: str = "# NVlabs source omitted\n") -> Path:
    t, meta = fixture(case)
    snapshot = {"training_set_kwargs": dict(meta["training_set_kwargs"])}
    for key in ("G", "D", "G_ema"):
        snapshot[key] = persistent_network(g, meta["modules"][key], sub(t, f"{key}."), module_src)
    aug_tree = {"": {"class": "AugmentPipe", "args": [], "kwargs": {"xflip": 1}, "attrs": {"xflip": 1.0},
                     "parameters": [], "buffers": ["p"]}}
    snapshot["augment_pipe"] = persistent_network(g, aug_tree, {"p": torch.zeros([])})
    path = tmp_path / f"network-snapshot-{case}.pkl"
    path.write_bytes(pickle.dumps(snapshot))
    return path


def tf_pickle(g, tmp_path: Path, build_module_src: str = "# TF source omitted\n") -> Path:
    t, meta = fixture("sg2tf_uncond")

    def network(desc: dict, prefix: str):
        variables = []
        for name in desc["variables"]:
            value = t[prefix + name].numpy()
            variables.append((name, np.float32(value) if value.ndim == 0 else value))
        components = {c: network(d, f"{prefix}{c}/") for c, d in desc["components"].items()}
        return g.Network(dict(version=4, name=desc["name"], static_kwargs=desc["static_kwargs"], components=components,
                              build_module_src=build_module_src, build_func_name=desc["build_func_name"],
                              variables=variables))

    nets = meta["networks"]
    path = tmp_path / "stylegan2-tiny-config-f.pkl"
    path.write_bytes(pickle.dumps((network(nets["G"], "G/"), network(nets["D"], "D/"), network(nets["Gs"], "Gs/"))))
    return path


def rosinality_file(tmp_path: Path, layout: str) -> Path:
    t, meta = fixture("rosinality")
    path = tmp_path / f"rosinality-{layout}.pt"
    if layout == "train":  # train.py: torch.save({g, d, g_ema, g_optim, d_optim, args, ada_aug_p})
        optim = {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "eps": 1e-8, "params": [0, 1]}]}
        torch.save({"g": sub(t, "g."), "d": sub(t, "d."), "g_ema": sub(t, "g_ema."), "g_optim": optim,
                    "d_optim": optim, "args": argparse.Namespace(**meta["args"]), "ada_aug_p": 0.0}, path)
    else:  # convert_weight.py: {g_ema, latent_avg}
        torch.save({"g_ema": sub(t, "g_ema."), "latent_avg": t["latent_avg"]}, path)
    return path


def biggan_files(tmp_path: Path, legacy: bool = True) -> dict[str, Path]:
    """G.pth / G_ema.pth / D.pth; legacy=True writes the pre-1.6 torch.save format of the released weights."""
    t, _ = fixture("biggan")
    out = {}
    for key in ("G", "G_ema", "D"):
        out[key] = tmp_path / f"{key}.pth"
        torch.save(sub(t, f"{key}."), out[key], _use_new_zipfile_serialization=not legacy)
    return out


# -------------------------------------------------------------------------------------------- parity

def check_stylegan2(ck, case: str, *, psi_cases=True) -> None:
    t, meta = fixture(case)
    c = t["in.c"] if t["in.c"].shape[1] else None
    cd = t["in.c_d"] if t["in.c_d"].shape[1] else None
    with torch.no_grad():
        for i, (psi, cutoff) in enumerate(zip(meta["psi"], meta["cutoff"])):
            if i == 0 or psi_cases:
                assert_images(ck.G_ema(t["in.z"], c, truncation_psi=psi, truncation_cutoff=cutoff),
                              t[f"out.G_ema.img{i}"])
        assert_images(ck.G(t["in.z"][:2], None if c is None else c[:2]), t["out.G.img0"])
        assert_logits(ck.D(real_images(t), cd), t["out.D.real"])
        assert_logits(ck.D(t["out.G_ema.img0"], c), t["out.D.fake"])


@pytest.mark.parametrize("case", ["sg2ada_uncond", "sg2ada_cond"])
def test_stylegan2_ada_pickle_parity(case, nvlabs_globals, tmp_path):
    src = ada_pickle(nvlabs_globals, case, tmp_path)
    ck = import_checkpoint(src)
    assert ck.metadata["source"]["format"] == "stylegan2-ada"
    check_stylegan2(ck, case)
    _, meta = fixture(case)
    gk = meta["modules"]["G"][""]["kwargs"]
    cfg = ck.config
    assert (cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.c_dim) == (gk["img_resolution"], gk["z_dim"], gk["w_dim"],
                                                                 gk["c_dim"])
    assert cfg.mapping_layers == gk["mapping_kwargs"]["num_layers"]
    assert cfg.conv_clamp == gk["synthesis_kwargs"]["conv_clamp"]
    base, cmax = gk["synthesis_kwargs"]["channel_base"], gk["synthesis_kwargs"]["channel_max"]
    assert cfg.g_channels == {r: min(base // r, cmax) for r in cfg.block_resolutions} == cfg.d_channels
    ek = meta["modules"]["D"][""]["kwargs"]["epilogue_kwargs"]
    assert cfg.mbstd_group_size == ek["mbstd_group_size"]
    assert cfg.mbstd_num_channels == ek.get("mbstd_num_channels", 1)


def test_stylegan2_tf_pickle_parity(nvlabs_globals, tmp_path):
    ck = import_checkpoint(tf_pickle(nvlabs_globals, tmp_path), format="stylegan2-tf")
    t, meta = fixture("sg2tf_uncond")
    with torch.no_grad():
        for i, psi in enumerate(meta["psi"]):
            assert_images(ck.G_ema(t["in.z"], truncation_psi=psi), t[f"out.G_ema.img{i}"])
        assert_images(ck.G(t["in.z"][:2]), t["out.G.img0"])
        assert_logits(ck.D(real_images(t)), t["out.D.real"])
        assert_logits(ck.D(t["out.G_ema.img0"]), t["out.D.fake"])
    torch.testing.assert_close(ck.G_ema.mapping.w_avg, t["Gs/dlatent_avg"])  # truncation uses the file's w_avg
    assert ck.config.channel_base == 2 * meta["networks"]["Gs"]["static_kwargs"]["fmap_base"]


def test_rosinality_train_checkpoint_parity(tmp_path):
    ck = import_checkpoint(rosinality_file(tmp_path, "train"))
    t, _ = fixture("rosinality")
    with torch.no_grad():
        assert_images(ck.G_ema(t["in.z"]), t["out.G_ema.img0"])
        assert_images(ck.G(t["in.z"][:2]), t["out.G.img0"])
        assert_logits(ck.D(real_images(t)), t["out.D.real"])
        assert_logits(ck.D(t["out.G_ema.img0"]), t["out.D.fake"])
    assert ck.config.g_channels == {4: 16, 8: 16, 16: 8, 32: 8}  # the fixture's (patched) rosinality width table
    # no latent_avg in a train.py checkpoint: w_avg is the documented fixed-seed estimate
    from zoo.convert.stylegan2 import estimate_w_avg

    torch.testing.assert_close(ck.G_ema.mapping.w_avg, estimate_w_avg(ck.G_ema))
    assert any("estimated" in note for note in ck.metadata["notes"])


def test_rosinality_convert_weight_truncation_parity(tmp_path):
    ck = import_checkpoint(rosinality_file(tmp_path, "convert_weight"), format="rosinality")
    t, _ = fixture("rosinality")
    with torch.no_grad():
        assert_images(ck.G_ema(t["in.z"], truncation_psi=0.7), t["out.G_ema.img1"])
    assert ck.D is None and ck.G is ck.G_ema


def test_biggan_pytorch_parity(tmp_path):
    files = biggan_files(tmp_path, legacy=True)
    ck = import_checkpoint(files["G"], g_ema=files["G_ema"], d=files["D"])
    t, meta = fixture("biggan")
    with torch.no_grad():
        assert_images(ck.G_ema(t["in.z"], t["in.y"]), t["out.G_ema.img0"])
        assert_images(ck.G(t["in.z"][:2], t["in.y"][:2]), t["out.G.img0"])
        assert_logits(ck.D(real_images(t), t["in.y_d"]), t["out.D.real"])
        assert_logits(ck.D(t["out.G_ema.img0"], t["in.y"]), t["out.D.fake"])
    k, cfg = meta["config"], ck.config
    assert (cfg.resolution, cfg.G_ch, cfg.D_ch, cfg.dim_z, cfg.shared_dim, cfg.n_classes, cfg.hier) == (
        k["resolution"], k["G_ch"], k["D_ch"], k["dim_z"], k["shared_dim"], k["n_classes"], k["hier"])
    assert cfg.G_attn == k["G_attn"]
    # BigGAN-PyTorch's 32 px D table labels all four blocks '16': attention after every block
    assert cfg.D_attn == "8_16" and all(b.attention for b in cfg.d_blocks())


# ----------------------------------------------------------------------------- checkpoint dir and CLI

def test_import_writes_loadable_teacher_checkpoint(nvlabs_globals, tmp_path):
    src = ada_pickle(nvlabs_globals, "sg2ada_cond", tmp_path)
    out = tmp_path / "teachers" / "tiny"
    import_to_dir(src, out)
    ck = load_checkpoint(out)
    assert ck.D is not None and ck.G is not ck.G_ema and not ck.G_ema.training
    check_stylegan2(ck, "sg2ada_cond", psi_cases=False)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["source"]["format"] == "stylegan2-ada"
    assert meta["source"]["files"]["src"]["sha256"] == sha256_file(src)
    assert "licence" in meta and "NVIDIA" in meta["licence"]
    arch = json.loads((out / "config.json").read_text())["arch"]
    assert arch["g_channels"] == {"4": 16, "8": 16, "16": 8} and arch["c_dim"] == 5
    with pytest.raises(ZooError, match="already exists"):
        import_to_dir(src, out)


def test_cli_import_biggan(tmp_path, capsys):
    from zoo.cli import main

    files = biggan_files(tmp_path, legacy=False)
    out = tmp_path / "teacher"
    assert main(["import", str(files["G_ema"]), "--d", str(files["D"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "biggan-pytorch" in text and "G_ch: 4" in text and "D parameters" in text and str(out) in text
    ck = load_checkpoint(out)
    t, _ = fixture("biggan")
    with torch.no_grad():
        assert_images(ck.G_ema(t["in.z"], t["in.y"]), t["out.G_ema.img0"])
    assert main(["import", str(files["G_ema"]), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ safety

class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_pickle_that_runs_code_is_refused(tmp_path):
    flag = tmp_path / "pwned"
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps({"G_ema": _Evil(flag)}))
    with pytest.raises(ZooError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        import_checkpoint(src)
    assert not flag.exists()
    out = tmp_path / "out"
    with pytest.raises(ZooError):
        import_to_dir(src, out)
    assert not out.exists()


def test_embedded_source_is_never_executed(nvlabs_globals, tmp_path):
    flag = tmp_path / "executed"
    payload = f"open({str(flag)!r}, 'w').write('x')\n"
    ck = import_checkpoint(ada_pickle(nvlabs_globals, "sg2ada_cond", tmp_path, module_src=payload))
    ck2 = import_checkpoint(tf_pickle(nvlabs_globals, tmp_path, build_module_src=payload))
    assert ck.G_ema is not None and ck2.G_ema is not None
    assert not flag.exists()


def test_pickled_class_reference_is_refused(tmp_path):
    src = tmp_path / "plain.pkl"
    src.write_bytes(pickle.dumps({"G_ema": torch.nn.Linear(2, 2)}))  # a plain torch pickle of a module
    with pytest.raises(ZooError, match="refusing to unpickle torch.nn.modules.linear.Linear"):
        import_checkpoint(src)


def test_torch_checkpoint_with_code_is_refused(tmp_path):
    src = tmp_path / "model.pt"
    torch.save({"g_ema": {"w": torch.zeros(1)}, "model": torch.nn.Linear(2, 2)}, src)
    with pytest.raises(ZooError, match="refusing to load"):
        import_checkpoint(src)


@pytest.mark.parametrize("kind", ["ada", "tf", "rosinality", "biggan-legacy"])
def test_truncated_file_is_an_error_and_writes_nothing(kind, nvlabs_globals, tmp_path):
    src = {"ada": lambda: ada_pickle(nvlabs_globals, "sg2ada_cond", tmp_path),
           "tf": lambda: tf_pickle(nvlabs_globals, tmp_path),
           "rosinality": lambda: rosinality_file(tmp_path, "train"),
           "biggan-legacy": lambda: biggan_files(tmp_path, legacy=True)["G_ema"]}[kind]()
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(ZooError, match="truncated or corrupt"):
        import_to_dir(src, out)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_wrong_or_unknown_format(tmp_path):
    src = rosinality_file(tmp_path, "convert_weight")
    with pytest.raises(ZooError, match="expected NVlabs stylegan2-ada-pytorch"):
        import_checkpoint(src, format="stylegan2-ada")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GIF89a not a checkpoint")
    with pytest.raises(ZooError, match="unrecognised file"):
        read_source(junk)
    other = tmp_path / "other.pt"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    with pytest.raises(ZooError, match="neither"):
        import_checkpoint(other)


def test_d_mapping_learning_rate_is_folded_into_the_weights(nvlabs_globals, tmp_path):
    """A D class mapping trained with lr_multiplier 0.1 (stylegan2-ada's TF default) computes the same
    function as the fixture's if its stored weights are 10x smaller: the import must undo that."""
    t, meta = fixture("sg2ada_cond")
    tree = meta["modules"]["D"]
    for path, info in tree.items():
        if path.startswith("mapping.fc"):
            info["attrs"]["bias_gain"] = 0.1
            info["attrs"]["weight_gain"] *= 10
            for leaf in ("weight", "bias"):
                t[f"D.{path}.{leaf}"] = t[f"D.{path}.{leaf}"] / 10
    snapshot = {k: persistent_network(nvlabs_globals, meta["modules"][k], sub(t, f"{k}.")) for k in ("G_ema", "D")}
    src = tmp_path / "lr01.pkl"
    src.write_bytes(pickle.dumps(snapshot))
    ck = import_checkpoint(src)
    with torch.no_grad():
        assert_logits(ck.D(real_images(t), t["in.c_d"]), t["out.D.real"])


@pytest.mark.parametrize("where", ["attrs", "kwargs"])
def test_unsupported_architecture_is_named(where, nvlabs_globals, tmp_path):
    t, meta = fixture("sg2ada_cond")
    tree = meta["modules"]["G_ema"]
    if where == "attrs":  # what the layers themselves say (e.g. a stylegan3-repo pickle)
        for info in tree.values():
            if info["class"] == "SynthesisBlock":
                info["attrs"]["architecture"] = "resnet"
    else:
        tree[""]["kwargs"]["synthesis_kwargs"]["architecture"] = "resnet"
    snapshot = {k: persistent_network(nvlabs_globals, meta["modules"][k], sub(t, f"{k}.")) for k in ("G_ema", "D")}
    src = tmp_path / "resnet.pkl"
    src.write_bytes(pickle.dumps(snapshot))
    with pytest.raises(ZooError, match="architecture='resnet' is not supported"):
        import_checkpoint(src)


def test_biggan_discriminator_as_source_is_explained(tmp_path):
    files = biggan_files(tmp_path, legacy=False)
    with pytest.raises(ZooError, match="is a BigGAN discriminator"):
        import_checkpoint(files["D"])
    with pytest.raises(ZooError, match="only used with biggan-pytorch"):
        import_checkpoint(rosinality_file(tmp_path, "train"), d=files["D"])
    assert read_source(files["G"])[0] == "biggan-pytorch"


def test_full_width_import_is_recognised_as_the_catalogue_teacher():
    """An import with exactly the architecture of a catalogue configuration at ch_mul 1 (e.g. NVlabs'
    FFHQ config F = stylegan2-ffhq) is named after it, so `zoo publish` makes it that entry's ch_mul=1."""
    from zoo.convert import matching_config
    from zoo.models import get_config

    ffhq = get_config("stylegan2-ffhq", 1)
    table = {r: min(32768 // r, 512) for r in ffhq.block_resolutions}
    imported = ffhq.replace(g_channels=table, d_channels=table)  # what the importer writes: explicit tables
    assert matching_config(imported) == "stylegan2-ffhq"
    assert matching_config(imported.replace(g_channels={**table, 1024: 16})) is None
    assert matching_config(imported.replace(mapping_layers=2)) is None
    assert matching_config(get_config("stylegan2-ffhq", "1/2")) is None
    assert matching_config(get_config("biggan-imagenet", 1)) == "biggan-imagenet"
    assert matching_config(get_config("biggan-imagenet", 1).replace(D_attn="0")) is None


def test_imported_checkpoint_is_accepted_as_a_dgl_teacher(nvlabs_globals, tmp_path):
    teacher = pytest.importorskip("zoo.train.teacher")
    from zoo.models import get_config

    out = tmp_path / "teachers" / "tiny"
    import_to_dir(ada_pickle(nvlabs_globals, "sg2ada_cond", tmp_path), out)
    student = get_config("stylegan2-emoji", "1/2", resolution=16, c_dim=5)
    ref = teacher.resolve_teacher(str(out), student)
    D_bar = ref.load_discriminator()
    t, _ = fixture("sg2ada_cond")
    with torch.no_grad():
        assert_logits(D_bar(real_images(t), t["in.c_d"]), t["out.D.real"])
