"""Shared test set-up: deterministic, single-threaded-friendly, no network, isolated zoo home."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own GANZOO_HOME, so no test reads or writes the user's registry/cache."""
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("ganzoo_home")))
    for var in ("GANZOO_REGISTRY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _no_shipped_entries(request, tmp_path_factory, monkeypatch):
    """The zoo's shipped entries (zoo/weights/registry) are the subject of the tests marked ``bundled``;
    every other test sees the default chain without them, so what it publishes is all there is."""
    if request.node.get_closest_marker("bundled") is None:
        import zoo.registry.api as api

        empty = tmp_path_factory.mktemp("no_bundled_registry")
        monkeypatch.setattr(api, "bundled_registry", lambda: empty)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
