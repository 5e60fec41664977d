"""The X-Ganzoo-Speedup header over real HTTP, for latency rows in every shape an entry may hold (zoo bench's,
and the older ones zoo.latency.migrate_row reads), and the family's inference preparation on load."""
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from zoo.environment import hardware  # noqa: E402
from zoo.serve.app import create_app  # noqa: E402
from zoo.serve.testing import ServerThread, tiny_checkpoint  # noqa: E402

FP = hardware("cpu")["fingerprint"]
SHAPES = {  # pinned name -> (stored rows, speedup header expected for a 1-image request)
    "bench": ([{"model": "m", "ch_mul": "1/2", "backend": "eager", "dtype": "fp32", "batch": 1, "median_ms": 4.0,
                "speedup_vs_full": 2.5, "speedup_vs_eager": 1.0, "fingerprint": FP}], "2.50"),
    "old": ([{"batch": 1, "ms": 4.0, "speedup": 3.0, "hardware": {"fingerprint": FP}}], "3.00"),
    "compare": ([{"device": "Test CPU", "backend": "eager", "dtype": "fp32", "batch": 4, "ms": 9.0,
                  "speedup": 1.75}], "1.75"),
    "none": ([{"batch": 1, "median_ms": 4.0, "fingerprint": FP}], None),  # no speedup measured: no header
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("speedup")
    pinned = [(name, str(tiny_checkpoint(root / name, "1/2", metadata={"latency": rows})))
              for name, (rows, _) in SHAPES.items()]
    with ServerThread(create_app(pinned, registry=False, max_batch=1)) as s:
        yield s


@pytest.mark.parametrize("name", list(SHAPES))
def test_speedup_header_for_every_stored_shape(server, name):
    r = httpx.post(server.url + "/v1/generate", json={"model": name, "ch_mul": "1/2", "format": "npy"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    expected = SHAPES[name][1]
    if expected is None:
        assert "x-ganzoo-speedup" not in r.headers
        return
    assert r.headers["x-ganzoo-speedup"] == expected
    basis = r.headers["x-ganzoo-speedup-basis"]
    assert basis.startswith("batch ") and ("an unrecorded machine" in basis if name == "compare" else FP[:20] in basis)
    listed = {m["model"]: m for m in httpx.get(server.url + "/v1/models").json()["models"]}
    assert listed[name]["here"]["speedup"] == float(expected)
    assert listed[name]["latency"][0]["speedup_vs_full"] == float(expected)  # listed in the one typed shape


def test_loaded_generators_are_prepared_by_their_family(tmp_path, monkeypatch):
    import zoo.families
    from zoo.serve.catalog import Catalog
    from zoo.serve.engine import load_variant

    prepared = []
    real = zoo.families.family_of

    class Recording:
        def __init__(self, family):
            self.family = family

        def prepare(self, G):
            prepared.append(G.training)
            return self.family.prepare(G)

    monkeypatch.setattr(zoo.families, "family_of", lambda G: Recording(real(G)))
    catalog = Catalog([("tiny", str(tiny_checkpoint(tmp_path / "ck", "1/2")))], registry=False)
    loaded = load_variant(catalog.find("tiny", "1/2", None))
    assert prepared == [False]  # prepared once, after eval()
    assert loaded.facts.resolution == 16
