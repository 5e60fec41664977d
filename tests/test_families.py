"""The GAN-family contract (zoo.families): the family object is where the pipeline learns everything about a
family (catalogue, presets, conditioning, paper MACs, export hints), registration checks a family's data,
and outside families are found through the ``zoo.families`` entry-point group."""
import dataclasses
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import zoo.families as fam
from zoo.families import ExportHints, GANFamily, ModelSpec, families, get_family, register_family

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "fixtures" / "toy_dcgan"


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the family registry (built-ins included); the real one is restored afterwards."""
    families()
    monkeypatch.setattr(fam, "_REGISTRY", dict(fam._REGISTRY))
    return fam._REGISTRY


@pytest.fixture
def toy(registry, monkeypatch):
    """The toy DCGAN family module (tests/fixtures/toy_dcgan), registered in the private registry."""
    monkeypatch.syspath_prepend(str(TOY))
    sys.modules.pop("toy_dcgan", None)
    module = importlib.import_module("toy_dcgan")
    yield module
    sys.modules.pop("toy_dcgan", None)


# ------------------------------------------------------------------------------------------ built-ins

def test_builtin_families_own_the_catalogue_and_the_presets():
    from zoo.models import CATALOG, get_config, list_configs
    from zoo.train.config import get_train_config

    found = families()
    assert list(found)[:2] == ["stylegan2", "biggan"]
    entries = [spec for f in found.values() for spec in f.catalogue]
    assert list_configs() == [spec.name for spec in entries] == list(CATALOG)
    assert {"stylegan2-ffhq", "stylegan2-emoji", "biggan-imagenet", "biggan-emoji"} <= set(CATALOG)
    for f in found.values():
        assert f.presets and set(f.presets) <= {spec.name for spec in f.catalogue}
        for spec in f.catalogue:
            assert spec.family == f.name
            for width in spec.ch_muls:
                assert type(get_config(spec.name, width)) is f.Config
            for preset in f.presets.get(spec.name, {}):
                cfg = get_train_config(spec.name, preset, spec.ch_muls[-1])
                assert cfg.family == f.name and cfg.preset == preset


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model family 'nope'.*biggan.*stylegan2"):
        get_family("nope")


@pytest.mark.parametrize("name, expected", [("stylegan2", [[0., 0., 1.], [1., 0., 0.]]), ("biggan", [2, 0])])
def test_labels_condition_each_family_its_own_way(name, expected):
    from zoo.images import class_inputs

    family = get_family(name)
    c = family.condition(torch.tensor([2, 0]), 3)
    assert c.tolist() == expected
    assert c.dtype == (torch.int64 if family.label_format == "index" else torch.float32)
    assert family.condition(torch.tensor([2, 0]), 0) is None and family.condition(None, 3) is None
    G = SimpleNamespace(c_dim=3, config=SimpleNamespace(family=name))
    assert class_inputs(G, [2, 0]).tolist() == expected
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\)"):
        class_inputs(G, [3])


def test_export_inputs_follow_the_family():
    from zoo.export.graph import input_specs
    from zoo.models import build_generator, get_config

    sg2 = build_generator(get_config("stylegan2-emoji", "1", resolution=16, channel_base=256, channel_max=16,
                                     z_dim=8, w_dim=8, mapping_layers=1, c_dim=3))
    big = build_generator(get_config("biggan-emoji", "1/4", n_classes=3, G_ch=16, D_ch=16, dim_z=8, shared_dim=8,
                                     G_attn="0", D_attn="0"))
    assert [(s.name, s.shape, s.dtype) for s in input_specs(sg2)] == [
        ("z", ("N", 8), "float32"), ("c", ("N", 3), "float32"), ("psi", ("N",), "float32")]
    assert [(s.name, s.shape, s.dtype) for s in input_specs(big)] == [
        ("z", ("N", 8), "float32"), ("c", ("N",), "int64"), ("psi", ("N",), "float32")]
    assert get_family("stylegan2").export.fp16_parts == "fp16 synthesis; mapping + truncation fp32"
    assert get_family("biggan").export.fp16_parts == "fp16"


def test_no_family_name_is_spelled_outside_the_family_modules():
    """The pipeline asks the family object: a family's name appears only in its own module and data."""
    pattern = re.compile(r"""["'](stylegan2|biggan)["']""")
    allowed = {Path("zoo/models/stylegan2.py"), Path("zoo/models/biggan.py")}  # the Config's own `family`
    offenders = []
    for package in ("zoo", "train", "export", "serve"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO)
            if rel in allowed or rel.parts[:2] == ("zoo", "families"):
                continue
            offenders += [f"{rel}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                          if pattern.search(line)]
    assert offenders == []


# ------------------------------------------------------------------------------------------ registration

def _spec(name: str, family: str = "dcgan") -> ModelSpec:
    return ModelSpec(name=name, family=family, arch={}, ch_muls=("1",), dataset="-", description="-")


def test_registration_checks_the_family_data(toy):
    base = toy.DCGAN
    for changes, message in [
        (dict(catalogue=(_spec("x", family="biggan"),)), "says family 'biggan'"),
        (dict(catalogue=(_spec("x"), _spec("x"))), "appears twice"),
        (dict(catalogue=(_spec("stylegan2-emoji"),)), "already one of 'stylegan2'"),
        (dict(presets={"biggan-emoji": {"demo": {}}}), "not in its catalogue"),
        (dict(label_format="bits"), "label_format must be"),
        (dict(Config=get_family("biggan").Config), "its Config says family = 'biggan'"),
    ]:
        with pytest.raises(ValueError, match=message):
            register_family(dataclasses.replace(base, **changes))
    with pytest.raises(TypeError, match="expects a GANFamily"):
        register_family(SimpleNamespace(name="x"))
    assert get_family("dcgan") is base  # nothing half-registered


def test_a_registered_family_joins_every_table(toy):
    from zoo.export.stats import model_stats
    from zoo.models import CATALOG, build_generator, config_from_dict, get_config
    from zoo.train.config import default_preset, get_train_config, presets_of

    assert list(CATALOG)[-1] == "dcgan-toy" and CATALOG["dcgan-toy"].family == "dcgan"
    cfg = get_config("dcgan-toy", "1/2")
    assert config_from_dict(cfg.to_dict()) == cfg and cfg.widths() == [16, 8, 4]
    with pytest.raises(ValueError, match="not a supported width"):
        get_config("dcgan-toy", "1/4")
    assert presets_of("dcgan-toy") == ["demo"] and default_preset("dcgan-toy") == "demo"
    assert get_train_config("dcgan-toy").betas == (0.5, 0.999)
    with pytest.raises(ValueError, match="no 'paper' training preset; presets: demo"):
        get_train_config("dcgan-toy", "paper")
    stats = model_stats("dcgan-toy", "1/2", fvcore=False)
    assert stats["family"] == "dcgan" and stats["macs_G_paper"] is None
    assert stats["macs_convention"]["macs_G_paper"] is None
    assert stats["params_G"] == sum(p.numel() for p in build_generator(cfg).parameters())


def test_default_export_hints_trace_the_generator_call(toy, registry):
    """A family that says nothing about export gets G's own call, no psi input, everything in the dtype."""
    from zoo.export.graph import build_graph, input_specs
    from zoo.models import build_generator

    register_family(dataclasses.replace(toy.DCGAN, export=ExportHints()))
    torch.manual_seed(0)
    G = build_generator("dcgan-toy", "1/2").eval()
    assert [s.name for s in input_specs(G)] == ["z"]
    z = torch.randn(4, G.z_dim)
    graph = build_graph(G)
    with torch.no_grad():
        assert torch.equal(graph(z), G(z))

    register_family(toy.DCGAN)  # the toy's own hints: psi [N] is an input
    assert [s.name for s in input_specs(G)] == ["z", "psi"]
    psi = torch.tensor([1.0, 0.7, 0.5, 0.0])
    with torch.no_grad():
        out = build_graph(G)(z, psi)
        torch.testing.assert_close(out[1:2], G(z[1:2], truncation_psi=0.7), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out[3:4], G(torch.zeros(1, G.z_dim)), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ discovery

def test_outside_families_come_from_the_entry_point_group(registry, monkeypatch):
    """Discovery imports each module the ``zoo.families`` group names; a broken one warns and is skipped."""
    monkeypatch.syspath_prepend(str(TOY))
    monkeypatch.setattr(fam, "_discovered", False)
    registry.pop("dcgan", None)
    sys.modules.pop("toy_dcgan", None)
    group = fam.ENTRY_POINT_GROUP
    points = [importlib.metadata.EntryPoint("dcgan", "toy_dcgan", group),
              importlib.metadata.EntryPoint("broken", "no_such_family_module_4321", group)]
    asked = []

    def entry_points(group=None):
        asked.append(group)
        return points

    monkeypatch.setattr(fam.importlib.metadata, "entry_points", entry_points)
    try:
        with pytest.warns(UserWarning, match="'broken'.*failed to load"):
            assert get_family("dcgan").reference.startswith("DCGAN")
        assert asked == ["zoo.families"]
        assert list(families())[:2] == ["stylegan2", "biggan"] and "dcgan" in families()
        assert fam.family_of(get_family("dcgan").Generator(get_family("dcgan").Config())).name == "dcgan"
    finally:
        sys.modules.pop("toy_dcgan", None)


def test_family_of_needs_a_family_built_network():
    with pytest.raises(ValueError, match="has no config.family"):
        fam.family_of(torch.nn.Linear(2, 2))
    assert isinstance(fam.family_of(SimpleNamespace(config=SimpleNamespace(family="biggan"))), GANFamily)
