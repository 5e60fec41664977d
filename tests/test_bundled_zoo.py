"""The zoo's shipped entries (zoo/weights/registry, written by `zoo sweep bundle`): right after set-up, with
no training and no user registry, they verify, load, sample, list and serve, and a shipped teacher is a
`zoo train --teacher`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo.registry.api import bundled_registry

pytestmark = pytest.mark.bundled

# what the repository ships at least (later sessions add the students' widths to the same names)
SHIPPED = {"stylegan2-fashion-mnist": "1", "biggan-fashion-mnist": "1"}


def bundled_entries() -> list[tuple[str, str, dict]]:
    index = json.loads((bundled_registry() / "index.json").read_text())
    return [(name, ch, max(slot["versions"].items(), key=lambda kv: int(kv[0]))[1])
            for name, widths in index["models"].items() for ch, slot in widths.items()]


@pytest.fixture
def no_user_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GANZOO_REGISTRY", raising=False)


def test_the_bundled_registry_ships_the_teachers_verified_and_documented():
    from zoo.registry.api import verify

    entries = bundled_entries()
    assert {(n, ch) for n, ch, _ in entries} >= set(SHIPPED.items())
    report = verify(registry=str(bundled_registry()))
    assert report and all(row["ok"] for row in report), report
    for name, ch, record in entries:
        meta = record["metadata"]
        assert "MODEL_CARD.md" in record["files"], name
        assert ("discriminator.safetensors" in record["files"]) == (ch == "1")  # D-bar ships with teachers
        kid = meta["metrics"]["kid"]
        assert np.isfinite(kid["value"] if isinstance(kid, dict) else kid)
        assert meta["metrics_info"]["real"]["sha256"] == meta["bundle"]["data"]["sha256"]
        assert meta["bundle"]["data"]["licence"] and meta["training"]["kimg"] > 0
        rows = meta["latency"]
        assert rows and all(r["median_ms"] > 0 and r["fingerprint"] for r in rows)


def test_load_list_and_sample_with_no_training(no_user_registry, tmp_path, capsys):
    import zoo
    from zoo.cli import main
    from zoo.images import class_inputs

    for name, ch, _ in bundled_entries():
        G = zoo.load(name, ch_mul=ch)
        z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0))
        c = class_inputs(G, [0, 1, 2, 3])  # None for an unconditional generator
        with torch.inference_mode():
            images = G(z, c)
        assert images.shape == (4, 1, 32, 32) and torch.isfinite(images).all()
        assert images.std(dim=0).mean() > 0.05  # different latents give different garments, not one blob
        png = tmp_path / f"{name}-{ch.replace('/', '_')}.png"
        assert main(["sample", name, "--ch-mul", ch, "--seeds", "0-3", "--out", str(png)]) == 0
        assert png.stat().st_size > 0
    capsys.readouterr()
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SHIPPED)


def test_a_shipped_teacher_compresses_further(no_user_registry):
    from zoo.models import get_config
    from zoo.train.teacher import resolve_teacher

    for name in SHIPPED:
        student = get_config(name, ch_mul="1/4")
        teacher = resolve_teacher(name, student)  # the registry entry; its files verified against the index
        assert str(teacher.path).startswith(str(bundled_registry().resolve()))
        D = teacher.load_discriminator()
        assert not D.training and not any(p.requires_grad for p in D.parameters())


def test_serve_the_bundled_entries(no_user_registry):
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from zoo.serve.app import create_app
    from zoo.serve.testing import ServerThread

    with ServerThread(create_app(registry=None, max_batch=1)) as server:
        listed = {(m["model"], m["ch_mul"]) for m in httpx.get(server.url + "/v1/models", timeout=60).json()["models"]}
        assert set(SHIPPED.items()) <= listed
        for name, ch in SHIPPED.items():
            r = httpx.post(server.url + "/v1/generate", json={"model": name, "ch_mul": ch, "format": "npy", "seeds": [0, 1]},
                           timeout=120)
            assert r.status_code == 200, r.text[:300]
