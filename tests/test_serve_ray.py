"""zoo serve --ray: the app deployed on a local Ray Serve instance, requests through Ray's HTTP proxy.

Slow (starting Ray takes tens of seconds): ``pytest -m slow tests/test_serve_ray.py``."""
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    pytest.importorskip("ray.serve")
    httpx = pytest.importorskip("httpx")
    import ray
    from ray import serve

    from zoo.serve.ray_app import build_app
    from zoo.serve.testing import tiny_checkpoint

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("ray")
    mp.setenv("GANZOO_HOME", str(root / "home"))  # inherited by Ray's workers
    pinned = [("tiny", str(tiny_checkpoint(root / "a", "1"))), ("tiny", str(tiny_checkpoint(root / "b", "1/2"))),
              ("tiny-cond", str(tiny_checkpoint(root / "c", "1/2", c_dim=3)))]
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        options = dict(checkpoints=pinned, registry=False, max_batch=8, max_wait_ms=100, max_images=8)
        serve.run(build_app(options, replicas=1, threads=1, replica_cpus=0.5), name="ganzoo", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Ray Serve did not come up"
            time.sleep(0.5)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()
        mp.undo()


def test_generate_through_ray(ray_server):
    import httpx
    from PIL import Image

    r = httpx.post(ray_server + "/v1/generate", json={"model": "tiny", "ch_mul": "1/2", "seeds": [1, 2]}, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
    assert r.headers["x-ganzoo-ch-mul"] == "1/2" and r.headers["x-ganzoo-version"] == "pinned"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (32, 16) and image.text["ganzoo.seeds"] == "[1, 2]"
    models = httpx.get(ray_server + "/v1/models", timeout=60).json()["models"]
    assert {(m["model"], m["ch_mul"]) for m in models} == {("tiny", "1"), ("tiny", "1/2"), ("tiny-cond", "1/2")}


def test_errors_through_ray(ray_server):
    import httpx

    for body, status, fragment in [({"model": "nope"}, 404, "served models"),
                                   ({"model": "tiny", "ch_mul": "1/4"}, 404, "pinned at"),
                                   ({"model": "tiny-cond", "ch_mul": "1/2", "class": 5}, 400, "class must be in"),
                                   ({"model": "tiny", "truncation_psi": 1e300}, 400, "truncation")]:
        r = httpx.post(ray_server + "/v1/generate", json=body, timeout=120)
        assert r.status_code == status and fragment in r.json()["error"], r.text


def test_concurrent_requests_are_batched_by_ray(ray_server):
    import httpx

    n = 8
    barrier = threading.Barrier(n)

    def one(seed):
        with httpx.Client(timeout=120) as client:
            barrier.wait()
            return client.post(ray_server + "/v1/generate",
                               json={"model": "tiny", "ch_mul": "1", "seeds": [seed], "format": "npy"})

    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(one, range(n)))
    assert all(r.status_code == 200 for r in responses), [r.text[:200] for r in responses]
    sizes = [int(r.headers["x-ganzoo-batch-size"]) for r in responses]
    assert max(sizes) > 1, sizes
    for seed, r in enumerate(responses):
        alone = httpx.post(ray_server + "/v1/generate", json={"model": "tiny", "ch_mul": "1", "seeds": [seed],
                                                              "format": "npy"}, timeout=120)
        a, b = np.load(io.BytesIO(r.content)), np.load(io.BytesIO(alone.content))
        assert np.abs(a.astype(int) - b).max() <= 1
