"""Property-based fuzzing of POST /v1/generate's request schema (hypothesis, derandomised, bounded).

The property: every body, well-formed or not, gets a 200 with an image or a 4xx JSON ``{"error": str}``
that holds no traceback and no server path; never a 5xx, never a hang."""
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from zoo.serve.app import create_app  # noqa: E402
from zoo.serve.core import FORMATS  # noqa: E402
from zoo.serve.testing import tiny_checkpoint  # noqa: E402

FUZZ = dict(derandomize=True, database=None, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                   HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    pinned = [("tiny", str(tiny_checkpoint(root / "a", "1/2"))),
              ("tiny-cond", str(tiny_checkpoint(root / "b", "1/2", seed=1, c_dim=3)))]
    app = create_app(pinned, registry=False, max_images=4, max_wait_ms=0, max_body_bytes=16 * 1024)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, str(root)


anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                    max_size=2), max_leaves=6)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([0, -0.0, 1e308, -1e308, 1e-320, 2**31, 2**32, 2**63, 10**30]))
# servable values of every field, and the edges each field is checked for
VALID = {
    "model": st.sampled_from(["tiny", "tiny-cond"]),
    "ch_mul": st.sampled_from(["1/2", 0.5, "0.5"]),
    "version": st.sampled_from(["latest", None]),
    "seeds": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    "z": st.integers(1, 3).flatmap(lambda n: st.lists(st.lists(st.floats(-3, 3), min_size=32, max_size=32),
                                                      min_size=n, max_size=n)),
    "truncation_psi": st.floats(-2, 2),
    "noise_mode": st.sampled_from(["const", "none", "random"]),
    "format": st.sampled_from(list(FORMATS)),
}
EDGES = {
    "model": st.sampled_from(["", "/etc", "..", "x" * 300, "TINY", "tiny\x00"]),
    "ch_mul": st.sampled_from(["1", "1/4", "nan", "1e309", "1/0", 0, -1, 1e308]),
    "max_latency_ms": st.one_of(st.floats(0.1, 1e4), numbers),
    "version": st.text(max_size=70),
    "seeds": numbers | st.lists(numbers, max_size=6),
    "z": st.lists(st.lists(numbers, max_size=40), max_size=3),
    "class": st.integers(-1, 4) | numbers | st.lists(st.integers(-1, 4), max_size=5),
    "truncation_psi": numbers,
    "noise_mode": st.text(max_size=6),
    "format": st.text(max_size=5),
    "unexpected": st.integers(),
}
valid_bodies = st.fixed_dictionaries({"model": VALID["model"], "ch_mul": VALID["ch_mul"]},
                                     optional={k: v for k, v in VALID.items() if k not in ("model", "ch_mul", "z")})


@st.composite
def bodies(draw):
    """A servable body, often with one or two fields replaced by an edge case or any JSON value."""
    body = draw(valid_bodies)
    if draw(st.booleans()) and "seeds" not in body:
        body["z"] = draw(VALID["z"])
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(EDGES)))
        body[key] = draw(st.one_of(EDGES[key], anything))
    return body


def check(response, root: str) -> None:
    status = response.status_code
    event(f"HTTP {status}")
    assert status == 200 or 400 <= status < 500, (status, response.text[:300])
    if status == 200:
        assert response.headers["content-type"] in FORMATS.values()
        return
    assert response.headers["content-type"] == "application/json", response.headers
    error = response.json()["error"]
    assert isinstance(error, str) and error and "Traceback" not in error and root not in error, error


@settings(max_examples=250, **FUZZ)
@given(body=bodies())
def test_generate_schema_is_200_or_4xx_json(fuzz_client, body):
    client, root = fuzz_client
    check(client.post("/v1/generate", content=json.dumps(body)), root)


@settings(max_examples=120, **FUZZ)
@given(raw=st.one_of(st.binary(max_size=200),
                     st.text(max_size=200).map(str.encode),
                     st.sampled_from([b"NaN", b"[" * 5000, b'{"model": "tiny", "seeds": [1e400]}',
                                      b'{"model": "tiny", "truncation_psi": Infinity}', b"{" * 100,
                                      b'{"model": "tiny", "seeds": [' + b"1" * 4400 + b"]}", b"\x00" * 50])))
def test_raw_bodies_are_200_or_4xx_json(fuzz_client, raw):
    client, root = fuzz_client
    check(client.post("/v1/generate", content=raw), root)


@settings(max_examples=120, **FUZZ)
@given(params=st.dictionaries(st.sampled_from(["model", "ch_mul", "max_latency_ms", "version", "seeds", "class",
                                               "truncation_psi", "noise_mode", "format"]),
                              st.one_of(st.sampled_from(["tiny", "1/2", "0-3", "1,2", "nan", "inf", "-1", "2", "png",
                                                         "9" * 30]), st.text(max_size=10)), max_size=6))
def test_get_form_is_200_or_4xx_json(fuzz_client, params):
    client, root = fuzz_client
    check(client.get("/v1/generate", params=params), root)

