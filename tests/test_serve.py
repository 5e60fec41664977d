"""zoo serve in-process (TestClient): the first version's GET routes, pinned checkpoints, the command line.
Real HTTP, batching, errors and faults: tests/test_serve_http.py."""
import io

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from zoo.serve.app import create_app  # noqa: E402
from zoo.checkpoint import save_checkpoint  # noqa: E402
from zoo.models import build_generator, get_config  # noqa: E402

TINY = dict(resolution=16, channel_base=256, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    cfg = get_config("stylegan2-emoji", "1/2", **TINY)
    ckpt = save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", config=cfg, G_ema=build_generator(cfg),
                           metadata={"latency": [{"batch": 1, "speedup": 2.5}, {"batch": 4, "speedup": 3.1}]})
    return TestClient(create_app({"tiny": str(ckpt)}))


def test_healthz_and_models(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    models = client.get("/models").json()["models"]
    assert {"model": "tiny", "ch_mul": "1/2"}.items() <= models[0].items()


def test_generate_png_with_speedup_header(client):
    from PIL import Image

    # rows written before fingerprints (``speedup``, no machine): the row nearest the batch that ran (4 images)
    r = client.get("/generate", params={"model": "tiny", "ch_mul": "0.5", "seed": 3, "n": 4})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-ganzoo-speedup"] == "3.10" and r.headers["x-ganzoo-ch-mul"] == "1/2"
    assert r.headers["x-ganzoo-speedup-basis"] == "batch 4, eager, fp32, measured on an unrecorded machine"
    assert r.headers["x-ganzoo-batch-size"] == "4" and r.headers["x-ganzoo-version"] == "pinned"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)  # 2x2 grid of 16 px images


def test_generate_npy_is_deterministic_per_seed(client):
    def images(seed, n):
        r = client.get("/generate", params={"model": "tiny", "ch_mul": "1/2", "seed": seed, "n": n, "format": "npy"})
        assert r.status_code == 200
        return np.load(io.BytesIO(r.content))

    a, b = images(5, 2), images(6, 1)
    assert a.shape == (2, 16, 16, 3) and a.dtype == np.uint8
    # image i depends only on its seed.  Not bit for bit: batch 2 and batch 1 may take different kernel
    # paths (row in a vector tile vs in the tail; ~1e-7 apart in float), and a value that lands on a rounding
    # boundary of the uint8 conversion then moves by one level.  A wrong seed would change almost every pixel.
    assert np.abs(a[1].astype(int) - b[0].astype(int)).max() <= 1


@pytest.mark.parametrize("params,status,fragment", [
    ({"model": "nope"}, 404, "nope"),
    ({"model": "tiny", "ch_mul": "1"}, 404, "pinned at ch_mul=1/2"),
    ({"model": "tiny", "ch_mul": "abc"}, 400, "ch_mul"),
    ({"model": "tiny", "ch_mul": "1/2", "n": 0}, 400, "n must be"),
    ({"model": "tiny", "ch_mul": "1/2", "format": "gif"}, 400, "format"),
])
def test_bad_requests_get_json_errors(client, params, status, fragment):
    r = client.get("/generate", params=params)
    assert r.status_code == status
    assert fragment in r.json()["error"]


def test_missing_parameter_is_422_json(client):
    r = client.get("/generate")
    assert r.status_code == 422 and "detail" in r.json()


@pytest.mark.parametrize("flag,fragment", [
    (["--max-batch", "0"], "--max-batch must be in [1, 4096]"),
    (["--max-wait-ms", "nan"], "--max-wait-ms"),
    (["--memory-budget-mb", "inf"], "--memory-budget-mb"),
    (["--checkpoint", "tiny"], "NAME=DIR"),
    (["--port", "70000"], "--port"),
])
def test_cli_bad_options_are_one_line_errors(flag, fragment, capsys):
    from zoo.cli import main

    assert main(["serve", *flag]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_cli_serves_over_http(tmp_path):
    """`zoo serve` as users start it: a subprocess on a free port, pinned checkpoints at two widths."""
    import os
    import re
    import subprocess
    import sys
    import time

    import httpx

    from zoo.serve.testing import tiny_checkpoint

    a, b = tiny_checkpoint(tmp_path / "a", "1"), tiny_checkpoint(tmp_path / "b", "1/2", seed=1)
    env = {**os.environ, "GANZOO_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", "--port", "0", "--registry", "none",
                             "--checkpoint", f"tiny={a}", "--checkpoint", f"tiny={b}", "--warm", "tiny",
                             "--max-batch", "4"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, deadline = None, time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"Uvicorn running on (http://127.0.0.1:\d+)", line)
            url = match.group(1) if match else None
            assert line or proc.poll() is None, "zoo serve exited"
        assert url, "zoo serve did not start"
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.get(url + "/readyz").json()["loaded"] == ["tiny|1|pinned", "tiny|1/2|pinned"]
        r = httpx.post(url + "/v1/generate", json={"model": "tiny", "ch_mul": "1/2", "seeds": [0, 1]})
        assert r.status_code == 200 and r.headers["x-ganzoo-ch-mul"] == "1/2"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()


def test_server_latents_are_zoo_sample_latents():
    """The server draws z per seed exactly as zoo sample / zoo.images.seeded_latents does (bit for bit:
    the same numpy generator, seeded the same way), so a served seed is the seed everywhere else."""
    import torch

    from zoo.serve.core import Job, latents
    from zoo.images import seeded_latents

    class G:
        z_dim = 512

    seeds = [0, 1, 7, 2**32 - 1, 123456]
    assert torch.equal(latents(Job(seeds=seeds), 512), seeded_latents(G, seeds))


def test_a_full_queue_is_503(tmp_path):
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from zoo.serve.core import Job, Problem
    from zoo.serve.engine import Batcher

    batcher = Batcher(ThreadPoolExecutor(1), workers=1, max_queue=2)
    with pytest.raises(Problem) as info:
        asyncio.run(batcher.submit(None, Job(seeds=[0, 1, 2])))
    assert info.value.status == 503 and "server busy" in info.value.message
