"""Entries and checkpoints written by the code before issue 16 still verify and load, unchanged on disk.

tests/fixtures/registry_v1 was written by commit 22c76c8 (the last one with zoo/registry/store.py and the
flat manifest in zoo/checkpoint.py), with that tree first on PYTHONPATH and GANZOO_HOME in a scratch dir:

    torch.manual_seed(0)
    cfg = get_config("stylegan2-emoji", "1/8", resolution=16, z_dim=32, w_dim=32, mapping_layers=1)
    G = build_generator(cfg).eval()
    save_checkpoint(OUT / "checkpoint", config=cfg, G_ema=G, name="stylegan2-emoji",
                    metadata={"metrics": {"kid": 0.0123}})
    publish(OUT / "checkpoint", aliases=["stable"], registry=str(OUT / "registry"), include_D=False)
    # expected.json: G(torch.randn(2, 32, generator=torch.Generator().manual_seed(123)), None)

Its files are never rewritten: each test works on a copy.
"""
import json
import shutil
from pathlib import Path

import pytest
import torch

import zoo
from test_registry import _default_registry_only  # noqa: F401
from zoo.checkpoint import load_checkpoint
from zoo.errors import ZooError
from zoo.integrity import hash_tree, manifest_for, write_json

FIXTURE = Path(__file__).parent / "fixtures" / "registry_v1"
ENTRY = "stylegan2-emoji/1_8/1"


def expected_images() -> torch.Tensor:
    return torch.tensor(json.loads((FIXTURE / "expected.json").read_text())["images"])


def sample(G) -> torch.Tensor:
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        return G(z, None)


@pytest.fixture
def old(tmp_path) -> Path:
    copy = tmp_path / "registry_v1"
    shutil.copytree(FIXTURE, copy)
    return copy


def test_entry_published_by_old_code_loads(old):
    registry = str(old / "registry")
    for version in (None, "1", "stable"):
        G = zoo.load("stylegan2-emoji", ch_mul="1/8", version=version, registry=registry)
        assert not G.training
        torch.testing.assert_close(sample(G), expected_images(), rtol=0, atol=1e-5)
    ckpt = zoo.registry.load_entry("stylegan2-emoji", ch_mul="1/8", registry=registry)
    assert ckpt.name == "stylegan2-emoji" and ckpt.D is None and ckpt.metadata["metrics"] == {"kid": 0.0123}
    assert [r["ok"] for r in zoo.registry.verify(registry=registry)] == [True]
    [row] = zoo.registry.list_entries(registry=registry)
    assert (row["version"], row["aliases"], row["metrics"]) == ("1", ["latest", "stable"], {"kid": 0.0123})


def test_old_entry_is_still_checked_against_its_index(old):
    weights = old / "registry" / ENTRY / "generator.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="generator.safetensors: sha256 mismatch"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", registry=str(old / "registry"))


def test_checkpoint_written_by_old_code_loads(old):
    ckpt = load_checkpoint(old / "checkpoint")  # verifies its manifest.json first
    assert ckpt.name == "stylegan2-emoji" and ckpt.metadata == {"metrics": {"kid": 0.0123}}
    torch.testing.assert_close(sample(ckpt.G_ema), expected_images(), rtol=0, atol=1e-5)


def test_manifests_and_index_records_are_written_byte_for_byte_as_before(old, tmp_path):
    """The one manifest implementation reproduces both old ones: save_checkpoint's flat manifest of a
    checkpoint and publish's manifest and index file records of an entry."""
    for directory in (old / "checkpoint", old / "registry" / ENTRY):
        rewritten = tmp_path / "manifest.json"
        write_json(rewritten, manifest_for(directory))
        assert rewritten.read_bytes() == (directory / "manifest.json").read_bytes()
    index = json.loads((old / "registry" / "index.json").read_text())
    record = index["models"]["stylegan2-emoji"]["1/8"]["versions"]["1"]
    assert hash_tree(old / "registry" / ENTRY) == record["files"]


def test_new_version_on_an_old_registry_keeps_the_layout(old):
    """Publishing with today's code next to an old entry: same record shape, same files, both load."""
    registry = str(old / "registry")
    ref = zoo.registry.publish(old / "checkpoint", registry=registry, include_D=False)
    assert ref.version == "2" and ref.path == "stylegan2-emoji/1_8/2"
    index = json.loads((old / "registry" / "index.json").read_text())
    versions = index["models"]["stylegan2-emoji"]["1/8"]["versions"]
    assert set(versions["2"]) == set(versions["1"])
    assert set(versions["2"]["files"]) == set(versions["1"]["files"])
    assert versions["2"]["files"]["generator.safetensors"] == versions["1"]["files"]["generator.safetensors"]
    assert json.loads((old / "registry" / ref.path / "manifest.json").read_text()) == manifest_for(
        old / "registry" / ref.path)
    assert index["models"]["stylegan2-emoji"]["1/8"]["aliases"] == {"stable": "1"}
    for version in ("1", "2"):
        torch.testing.assert_close(sample(zoo.load("stylegan2-emoji", "1/8", version, registry=registry)),
                                   expected_images(), rtol=0, atol=1e-5)
