"""zoo serve over real HTTP: a uvicorn server on 127.0.0.1 started by the test, tiny random-weight
checkpoints published into a temporary registry.

Determinism, dynamic batching (fewer forwards, the same images), every bad input as a 4xx JSON error
without a traceback or a server path, a fault inside inference as a 500 with an error id (and the server
keeps serving), /healthz answering while a slow load is in progress, latency-budget selection, metrics."""
import http.server
import io
import json
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from zoo.serve.app import create_app  # noqa: E402
from zoo.serve.testing import ServerThread, tiny_checkpoint  # noqa: E402
from zoo.environment import hardware  # noqa: E402

MODEL = "sg2-tiny"
# (KID, measured ms at batch 1 on this machine, speedup): 1/2 is the best that fits 15 ms
WIDTHS = {"1": (0.010, 40.0, 1.0), "1/2": (0.012, 12.0, 3.3), "1/4": (0.020, 5.0, 8.0)}
DATA_SHA = "ab" * 32


def metadata(ch: str) -> dict:
    kid, ms, speedup = WIDTHS[ch]
    return {"metrics": {"kid": kid}, "metrics_info": {"n": 256, "real": {"sha256": DATA_SHA}},
            "latency": [{"batch": 1, "backend": "eager", "dtype": "fp32", "median_ms": ms,
                         "speedup_vs_full": speedup, "fingerprint": hardware("cpu")["fingerprint"]}]}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """GANZOO_HOME for the module's server (module fixtures run before the per-test isolated home)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("home")
    mp.setenv("GANZOO_HOME", str(path))
    mp.delenv("GANZOO_REGISTRY", raising=False)
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def zoo_files(home, tmp_path_factory):
    from zoo.registry import publish

    root = tmp_path_factory.mktemp("serve-zoo")
    registry = root / "registry"
    for i, ch in enumerate(WIDTHS):
        ck = tiny_checkpoint(root / f"ck-{ch.replace('/', '_')}", ch, seed=i, metadata=metadata(ch))
        publish(ck, name=MODEL, registry=str(registry), aliases=["stable"], include_D=False)
    cond = tiny_checkpoint(root / "cond", "1/2", seed=7, c_dim=3)
    return root, registry, cond


@pytest.fixture(scope="module")
def server(zoo_files):
    root, registry, cond = zoo_files
    app = create_app([("tiny-cond", str(cond))], registry=str(registry), max_batch=8, max_wait_ms=100,
                     max_images=8, max_body_bytes=64 * 1024, warm=[f"{MODEL}:1/4"])
    with ServerThread(app) as s:
        deadline = time.monotonic() + 60
        while httpx.get(s.url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        yield s


def post(server, timeout=60, **body):
    return httpx.post(server.url + "/v1/generate", json=body, timeout=timeout)


def npy(response) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    return np.load(io.BytesIO(response.content))


def no_leak(text: str, root) -> None:
    """No traceback, no server path, no Python internals in an error body."""
    assert "Traceback" not in text and 'File "' not in text
    assert str(root) not in text and "/tmp" not in text and "site-packages" not in text and ".py" not in text


# ---------------------------------------------------------------------------------------- the API

def test_health_ready_and_models(server, zoo_files):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["ready"] and ready["warm_up_done"] and f"{MODEL}|1/4|1" in ready["loaded"]
    r = httpx.get(server.url + "/v1/models")
    assert r.status_code == 200
    data = r.json()
    no_leak(r.text, zoo_files[0])
    assert data["fingerprint"] == hardware("cpu")["fingerprint"]
    rows = {(m["model"], m["ch_mul"]): m for m in data["models"]}
    assert set(rows) == {(MODEL, "1"), (MODEL, "1/2"), (MODEL, "1/4"), ("tiny-cond", "1/2")}
    quarter = rows[(MODEL, "1/4")]
    assert quarter["version"] == "1" and "stable" in quarter["aliases"] and quarter["source"] == "registry"
    assert quarter["params_G"] > 0 and quarter["macs_G_paper"] > 0 and quarter["metrics"]["kid"] == 0.020
    assert quarter["quality"] == {"kid": 0.020, "data_sha256": DATA_SHA, "n": 256}
    (row,) = quarter["latency"]
    assert row["median_ms"] == 5.0 and row["fingerprint"] == data["fingerprint"] and row["batch"] == 1
    assert quarter["here"]["ms_batch1"] == 5.0 and quarter["here"]["speedup"] == 8.0
    cond = rows[("tiny-cond", "1/2")]
    assert cond["source"] == "pinned" and cond["version"] is None and cond["c_dim"] == 3 and cond["resolution"] == 16
    # the first version's listing is kept
    assert {(m["model"], m["ch_mul"]) for m in httpx.get(server.url + "/models").json()["models"]} == set(rows)


def test_png_headers_and_provenance(server):
    from PIL import Image

    r = post(server, model=MODEL, ch_mul="1/4", seeds=[3, 4], truncation_psi=0.7)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    h = r.headers
    assert (h["x-ganzoo-model"], h["x-ganzoo-ch-mul"], h["x-ganzoo-version"]) == (MODEL, "1/4", "1")
    assert int(h["x-ganzoo-batch-size"]) >= 2 and int(h["x-ganzoo-batch-requests"]) >= 1
    assert float(h["x-ganzoo-queue-ms"]) >= 0 and float(h["x-ganzoo-compute-ms"]) > 0
    # the speedup zoo bench measured (speedup_vs_full), on this machine
    assert h["x-ganzoo-speedup"] == "8.00" and hardware("cpu")["fingerprint"][:20] in h["x-ganzoo-speedup-basis"]
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (32, 16)  # two 16-px images side by side
    assert image.text["ganzoo.model"] == MODEL and image.text["ganzoo.version"] == "1"
    assert image.text["ganzoo.seeds"] == "[3, 4]" and image.text["ganzoo.truncation_psi"] == "0.7"
    assert image.text["ganzoo.ch_mul"] == "1/4"


def test_jpeg_npy_and_get_forms(server):
    from PIL import Image

    r = post(server, model=MODEL, ch_mul="1/2", format="jpeg")
    assert r.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(r.content)).size == (16, 16)
    a = npy(post(server, model=MODEL, ch_mul="1/2", seeds=[0, 1, 2, 3], format="npy"))
    assert a.shape == (4, 16, 16, 3) and a.dtype == np.uint8
    g = httpx.get(server.url + "/v1/generate", params={"model": MODEL, "ch_mul": "1/2", "seeds": "0-3",
                                                      "format": "npy"}, timeout=60)
    assert np.abs(npy(g).astype(int) - a).max() <= 1
    legacy = httpx.get(server.url + "/generate", params={"model": MODEL, "ch_mul": "0.5", "seed": 0, "n": 4,
                                                         "format": "npy"}, timeout=60)
    assert np.abs(npy(legacy).astype(int) - a).max() <= 1
    # version by alias and by number, the same entry
    assert post(server, model=MODEL, ch_mul="1/2", version="stable").headers["x-ganzoo-version"] == "1"
    assert post(server, model=MODEL, ch_mul="1/2", version=1).status_code == 200


def test_identical_requests_are_byte_identical(server):
    body = dict(model=MODEL, ch_mul="1/2", seeds=[11], truncation_psi=0.5)
    a, b = post(server, **body), post(server, **body)
    assert a.headers["x-ganzoo-batch-size"] == b.headers["x-ganzoo-batch-size"] == "1"  # each ran alone
    assert a.status_code == 200 and a.content == b.content
    c = post(server, **{**body, "seeds": [12]})
    assert c.content != a.content


def test_explicit_z_and_classes(server):
    z = np.random.RandomState(5).randn(32).tolist()
    by_z = npy(post(server, model=MODEL, ch_mul="1/4", z=[z], format="npy"))
    by_seed = npy(post(server, model=MODEL, ch_mul="1/4", seeds=[5], format="npy"))
    assert np.abs(by_z.astype(int) - by_seed).max() <= 1  # seed s is z = RandomState(s).randn(z_dim)
    # a conditional model: class given, per image, or by default seed % c_dim
    one = npy(post(server, model="tiny-cond", ch_mul="1/2", seeds=[4, 5], **{"class": 2}, format="npy"))
    per = npy(post(server, model="tiny-cond", ch_mul="1/2", seeds=[4, 5], **{"class": [2, 0]}, format="npy"))
    default = npy(post(server, model="tiny-cond", ch_mul="1/2", seeds=[4, 5], format="npy"))
    assert np.abs(one[0].astype(int) - per[0]).max() <= 1 and np.abs(one[1].astype(int) - per[1]).max() > 1
    assert np.abs(default[1].astype(int) - one[1]).max() <= 1  # seed 5 % 3 == 2


# ------------------------------------------------------------------------------------ batching

def test_concurrent_requests_share_forwards_and_images(server):
    batcher = server.app.state.engine.batcher
    n = 8
    barrier = threading.Barrier(n)

    def one(seed):
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(server.url + "/v1/generate", json={"model": MODEL, "ch_mul": "1/4", "seeds": [seed],
                                                                  "format": "npy"})

    before = batcher.forwards
    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(one, range(100, 100 + n)))
    forwards = batcher.forwards - before
    assert all(r.status_code == 200 for r in responses)
    sizes = [int(r.headers["x-ganzoo-batch-size"]) for r in responses]
    assert forwards < n and max(sizes) > 1, (forwards, sizes)
    for seed, r in zip(range(100, 100 + n), responses):
        alone = post(server, model=MODEL, ch_mul="1/4", seeds=[seed], format="npy")
        assert alone.headers["x-ganzoo-batch-size"] == "1"
        assert np.abs(npy(r).astype(int) - npy(alone)).max() <= 1  # one grey level, after quantisation


def test_batched_forward_matches_alone_before_quantisation(server):
    """The float images of a job are the same, within 1e-5, whether it runs alone or batched with others."""
    from zoo.serve.core import Job, check_job, run_batch

    loaded = next(x for x in server.app.state.engine.pool.loaded() if x.variant.ch_mul == "1/4")
    jobs = [check_job(Job(seeds=[s, s + 1]), loaded.facts) for s in (0, 10, 20)]
    batched = run_batch(loaded.G, jobs, 0.7, "const")
    for job, out in zip(jobs, batched):
        (alone,) = run_batch(loaded.G, [job], 0.7, "const")
        assert (out - alone).abs().max().item() <= 1e-5


def test_model_pool_is_an_lru_under_a_memory_budget(zoo_files):
    import asyncio

    from zoo.serve.catalog import Catalog
    from zoo.serve.engine import ModelPool

    root, registry, cond = zoo_files
    catalog = Catalog([], str(registry))
    catalog.refresh()
    variants = catalog.widths(MODEL, None)  # 1, 1/2, 1/4

    async def run(pool):
        for v in variants:
            await pool.get(v)
        await pool.get(variants[-1])
        return [x.variant.ch_mul for x in pool.loaded()]

    smallest = ModelPool(budget_bytes=1)  # a budget below any model: only the last one used stays
    assert asyncio.run(run(smallest)) == ["1/4"]
    two = ModelPool(capacity=2)
    assert asyncio.run(run(two)) == ["1/2", "1/4"]


# ------------------------------------------------------------------------------- latency budget

def test_latency_budget_picks_the_best_quality_that_fits(server):
    r = post(server, model=MODEL, max_latency_ms=15)
    assert r.status_code == 200 and r.headers["x-ganzoo-ch-mul"] == "1/2"  # 1/4 is faster but has a worse KID
    assert "lowest KID" in r.headers["x-ganzoo-selection"] and "12.00 ms" in r.headers["x-ganzoo-selection"]
    assert post(server, model=MODEL, max_latency_ms=100).headers["x-ganzoo-ch-mul"] == "1"
    g = httpx.get(server.url + "/v1/generate", params={"model": MODEL, "max_latency_ms": "6"}, timeout=60)
    assert g.status_code == 200 and g.headers["x-ganzoo-ch-mul"] == "1/4"


@pytest.mark.parametrize("body,fragment", [
    ({"max_latency_ms": 1}, "no variant of sg2-tiny fits max_latency_ms=1"),
    ({"max_latency_ms": 50, "seeds": [0, 1]}, "no latency of sg2-tiny was measured for this machine"),
    ({"max_latency_ms": 50, "model": "tiny-cond"}, "--calibrate"),
])
def test_latency_budget_errors_list_the_measured_options(server, body, fragment):
    r = post(server, **{"model": MODEL, **body})
    assert r.status_code == 422 and fragment in r.json()["error"], r.text
    if "fits" in fragment:
        assert "ch_mul=1 v1: 40.00 ms" in r.json()["error"] and "ch_mul=1/4 v1: 5.00 ms" in r.json()["error"]


# ------------------------------------------------------------------------------------ bad input

BAD_BODIES = [
    (b'{"model": "sg2-tiny", ', 400, "not valid JSON"),
    (b'{"model": "sg2-tiny", "truncation_psi": NaN}', 400, "NaN"),
    (b'{"model": "sg2-tiny", "truncation_psi": -Infinity}', 400, "Infinity"),
    (b'{"model": "sg2-tiny", "truncation_psi": 1e999}', 400, "overflows"),
    (b'{"model": "sg2-tiny", "seeds": [' + b"9" * 5000 + b"]}", 400, "not valid JSON"),
    (b'[1, 2]', 400, "JSON object"),
    (b'"\xff"', 400, "UTF-8"),
    (b'{"model": ' + b"[" * 50 + b"]" * 50 + b"}", 400, "nested"),
]

BAD_REQUESTS = [
    ({"model": "nope"}, 404, "served models: sg2-tiny, tiny-cond"),
    ({"model": "/etc/passwd"}, 404, "never a path"),
    ({"model": "../registry/sg2-tiny"}, 404, "never a path"),
    ({"model": MODEL, "ch_mul": "1/8"}, 404, "served widths: 1, 1/2, 1/4"),
    ({"model": MODEL, "ch_mul": "1/2", "version": "9"}, 404, "versions: 1; aliases: stable->1"),
    ({"model": "tiny-cond", "ch_mul": "1"}, 404, "pinned at ch_mul=1/2"),
    ({"model": "tiny-cond", "ch_mul": "1/2", "version": "2"}, 404, "pinned checkpoint"),
    ({"model": MODEL, "ch_mul": "abc"}, 400, "ch_mul"),
    ({"model": MODEL, "ch_mul": "nan"}, 400, "ch_mul"),
    ({"model": MODEL, "ch_mul": 2}, 400, "ch_mul"),
    ({"model": MODEL, "ch_mul": "1/2", "max_latency_ms": 5}, 400, "not both"),
    ({"model": MODEL, "max_latency_ms": -1}, 400, "max_latency_ms"),
    ({"model": MODEL, "max_latency_ms": "fast"}, 400, "max_latency_ms"),
    ({"model": MODEL, "truncation_psi": 11}, 400, "truncation"),
    ({"model": MODEL, "truncation_psi": "0.5"}, 200, None),  # a numeric string is a number
    ({"model": MODEL, "seeds": [-1]}, 400, "seed must be in"),
    ({"model": MODEL, "seeds": [2**32]}, 400, "seed must be in"),
    ({"model": MODEL, "seeds": [True]}, 400, "seed must be an integer"),
    ({"model": MODEL, "seeds": list(range(9))}, 400, "1 to 8 seeds"),
    ({"model": MODEL, "seeds": []}, 400, "1 to 8 seeds"),
    ({"model": MODEL, "seeds": [0], "z": [[0.0] * 32]}, 400, "not both"),
    ({"model": MODEL, "z": [[0.0] * 5]}, 400, "z must be [1, 32]"),
    ({"model": MODEL, "z": [[0.0] * 32, [0.0] * 31]}, 400, "rectangular"),
    ({"model": MODEL, "z": [[1e6] * 32]}, 400, "|z|"),
    ({"model": MODEL, "z": [[0.0] * 32] * 9}, 400, "1 to 8 latent"),
    ({"model": MODEL, "z": "zeros"}, 400, "list of latent vectors"),
    ({"model": MODEL, "class": 1}, 400, "unconditional"),
    ({"model": "tiny-cond", "ch_mul": "1/2", "class": 3}, 400, "class must be in [0, 2]"),
    ({"model": "tiny-cond", "ch_mul": "1/2", "class": 10**30}, 400, "class must be in"),
    ({"model": "tiny-cond", "ch_mul": "1/2", "class": -1}, 400, "class must be in"),
    ({"model": "tiny-cond", "ch_mul": "1/2", "class": [0, 1], "seeds": [0]}, 400, "one per image"),
    ({"model": MODEL, "format": "gif"}, 400, "format must be one of png, jpeg, npy"),
    ({"model": MODEL, "noise_mode": "loud"}, 400, "noise_mode"),
    ({"model": MODEL, "version": {"a": 1}}, 400, "version"),
    ({"model": MODEL, "extra": 1}, 400, "unknown field"),
    ({"model": 5}, 400, "model must be"),
    ({}, 400, "model is required"),
]


@pytest.mark.parametrize("body,status,fragment", BAD_BODIES)
def test_malformed_bodies_are_4xx_json(server, zoo_files, body, status, fragment):
    r = httpx.post(server.url + "/v1/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and r.headers["content-type"] == "application/json", r.text
    assert fragment in r.json()["error"], r.text
    no_leak(r.text, zoo_files[0])


@pytest.mark.parametrize("body,status,fragment", BAD_REQUESTS)
def test_bad_requests_are_4xx_json_without_paths(server, zoo_files, body, status, fragment):
    r = post(server, **body)
    assert r.status_code == status, r.text[:300]
    if status != 200:
        assert r.headers["content-type"] == "application/json" and fragment in r.json()["error"], r.text
        no_leak(r.text, zoo_files[0])


@pytest.mark.parametrize("params,status,fragment", [
    ({"model": MODEL, "seeds": "0-99999999999"}, 400, "seeds"),
    ({"model": MODEL, "seeds": "0-8"}, 400, "1 to 8 seeds"),
    ({"model": MODEL, "truncation_psi": "nan"}, 400, "truncation"),
    ({"model": MODEL, "class": "x"}, 400, "class"),
    ({"model": MODEL, "max_latency_ms": "inf"}, 400, "max_latency_ms"),
    ({"ch_mul": "1"}, 400, "model is required"),
    ({"model": "/tmp"}, 404, "never a path"),
])
def test_get_form_errors(server, zoo_files, params, status, fragment):
    r = httpx.get(server.url + "/v1/generate", params=params)
    assert r.status_code == status and fragment in r.json()["error"], r.text
    no_leak(r.text, zoo_files[0])


def test_oversized_body_is_413(server):
    big = json.dumps({"model": MODEL, "z": [[0.0] * 4000] * 8}).encode()
    assert len(big) > 64 * 1024
    r = httpx.post(server.url + "/v1/generate", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than 65536 bytes" in r.json()["error"]
    # chunked, without a Content-Length: cut off while reading
    r = httpx.post(server.url + "/v1/generate", content=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]))
    assert r.status_code == 413
    assert httpx.get(server.url + "/nope").json() == {"error": "Not Found"}
    assert httpx.delete(server.url + "/v1/generate").status_code == 405


# ------------------------------------------------------------------------------------ faults

class Broken:
    """Stands in for a generator: raises, with a server path in the message (which must not leak)."""

    def __init__(self, G, where):
        self.G, self.where = G, where
        self.z_dim, self.c_dim, self.config = G.z_dim, G.c_dim, G.config

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"boom in {self.where}/secret.py")


class Slow:
    def __init__(self, G, seconds):
        self.G, self.seconds = G, seconds
        self.z_dim, self.c_dim, self.config = G.z_dim, G.c_dim, G.config

    def __call__(self, *args, **kwargs):
        time.sleep(self.seconds)
        return self.G(*args, **kwargs)


def test_inference_fault_is_500_with_error_id_and_serving_goes_on(server, zoo_files, caplog):
    pool = server.app.state.engine.pool
    body = dict(model="tiny-cond", ch_mul="1/2", seeds=[1])
    assert post(server, **body).status_code == 200
    loaded = next(x for x in pool.loaded() if x.variant.model == "tiny-cond")
    real = loaded.G
    loaded.G = Broken(real, zoo_files[0])
    try:
        with caplog.at_level("ERROR", logger="serve"):
            r = post(server, **body)
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        eid = r.json()["error_id"]
        assert re.fullmatch(r"[0-9a-f]{12}", eid) and r.json()["error"] == f"inference failed (error id {eid})"
        assert "boom" not in r.text
        no_leak(r.text, zoo_files[0])
        assert any(eid in rec.getMessage() and rec.exc_info for rec in caplog.records)
        # other variants are unaffected
        assert post(server, model=MODEL, ch_mul="1/4").status_code == 200
    finally:
        loaded.G = real
    assert post(server, **body).status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_inference_never_runs_on_the_event_loop(server):
    pool = server.app.state.engine.pool
    loaded = next(x for x in pool.loaded() if x.variant.model == "tiny-cond")
    real = loaded.G
    loaded.G = Slow(real, 1.5)
    try:
        with ThreadPoolExecutor(1) as ex:
            slow = ex.submit(post, server, model="tiny-cond", ch_mul="1/2", seeds=[2])
            time.sleep(0.2)
            t0 = time.perf_counter()
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            assert httpx.get(server.url + "/v1/models", timeout=5).status_code == 200
            assert time.perf_counter() - t0 < 1.0 and not slow.done()
            assert slow.result().status_code == 200
    finally:
        loaded.G = real


class SlowRegistry(http.server.SimpleHTTPRequestHandler):
    """A static registry that takes ``delay`` seconds to send any generator.safetensors."""

    def do_GET(self):
        if self.path.endswith("generator.safetensors"):
            self.server.weights_requested.set()
            time.sleep(self.server.delay)
        super().do_GET()

    def log_message(self, *args):
        pass


def test_healthz_answers_while_a_slow_load_is_in_progress(zoo_files, tmp_path):
    root, registry, cond = zoo_files
    served = tmp_path / "static"
    shutil.copytree(registry, served)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(SlowRegistry, directory=str(served)))
    httpd.delay, httpd.weights_requested = 3.0, threading.Event()
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    app = create_app([("tiny-cond", str(cond))], registry=url, max_wait_ms=0)
    try:
        with ServerThread(app) as s, ThreadPoolExecutor(1) as ex:
            slow = ex.submit(post, s, model=MODEL, ch_mul="1/2")
            assert httpd.weights_requested.wait(20)
            t0 = time.perf_counter()
            assert httpx.get(s.url + "/healthz", timeout=5).json() == {"status": "ok"}
            ready = httpx.get(s.url + "/readyz", timeout=5).json()
            assert ready["loading"] == [f"{MODEL}|1/2|1"]
            assert httpx.get(s.url + "/v1/models", timeout=5).status_code == 200
            other = post(s, model="tiny-cond", ch_mul="1/2", timeout=5)  # another variant loads and runs meanwhile
            elapsed = time.perf_counter() - t0
            assert other.status_code == 200 and elapsed < 2.0 and not slow.done(), elapsed
            r = slow.result(timeout=60)
            assert r.status_code == 200 and r.headers["x-ganzoo-ch-mul"] == "1/2"
    finally:
        httpd.shutdown()


def test_a_variant_that_fails_to_load_is_503_with_an_error_id(zoo_files, tmp_path, caplog):
    """A registry file that no longer matches its sha256: the load fails (verified as always), the request
    gets a 503 with an error id and no path, and the other variants are still served."""
    root, registry, cond = zoo_files
    broken = tmp_path / "broken"
    shutil.copytree(registry, broken)
    for path in broken.rglob("generator.safetensors"):
        if "1_2" in str(path):
            path.chmod(0o644)
            path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    app = create_app([("tiny-cond", str(cond))], registry=str(broken), max_wait_ms=0)
    with ServerThread(app) as s, caplog.at_level("ERROR", logger="serve"):
        r = post(s, model=MODEL, ch_mul="1/2")
        assert r.status_code == 503 and r.json()["error_id"] in r.json()["error"], r.text
        no_leak(r.text, tmp_path)
        assert any(r.json()["error_id"] in rec.getMessage() for rec in caplog.records)
        assert post(s, model=MODEL, ch_mul="1/4").status_code == 200
        assert post(s, model="tiny-cond", ch_mul="1/2").status_code == 200


# ------------------------------------------------------------------------------------ metrics

def test_metrics_in_prometheus_text_format(server):
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    post(server, model=MODEL, ch_mul="1/4")
    post(server, model="nope")
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("ganzoo_requests", "ganzoo_errors", "ganzoo_request_seconds", "ganzoo_batch_images",
                 "ganzoo_queue_depth", "ganzoo_loaded_variants", "ganzoo_resident_memory_bytes", "ganzoo_forwards"):
        assert name in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("ganzoo_requests_total", (("status", "200"), ("variant", f"{MODEL}|1/4|1")))] >= 1
    assert samples[("ganzoo_errors_total", (("status", "404"), ("variant", "none")))] >= 1
    assert samples[("ganzoo_loaded_variants", ())] >= 1 and samples[("ganzoo_resident_memory_bytes", ())] > 1e6
    assert samples[("ganzoo_batch_images_count", (("variant", f"{MODEL}|1/4|1"),))] >= 1
    assert "nope" not in r.text  # labels never carry client strings


def test_page_is_served(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "trained from scratch" in r.text and 'id="generate"' in r.text
    assert not re.search(r'(src|href)="(?!data:)', r.text)  # nothing external to fetch

