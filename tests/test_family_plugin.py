"""A GAN family from outside the package (the issue-16 acceptance test).

tests/fixtures/toy_dcgan is a separate distribution: one module with a small DCGAN and one
``register_family(...)`` line, found through the ``zoo.families`` entry point.  Its wheel is built and
installed into a private directory; then fresh processes, run outside the repository, train a teacher and
a DGL-GAN student, export the student to ONNX, publish both, load and sample them with ``zoo.load`` and
serve one over HTTP, all through the public CLI and API and with no edit to the package.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "toy_dcgan"
REPO = Path(__file__).resolve().parents[1]
CONFIG = "dcgan-toy"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The toy family's wheel, built from a copy of the fixture and installed into its own directory."""
    root = tmp_path_factory.mktemp("toy-dcgan")
    source = shutil.copytree(FIXTURE, root / "src", ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "wheels"), str(source)],
                   check=True, capture_output=True, cwd=root)
    (wheel,) = (root / "wheels").glob("ganzoo_toy_dcgan-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(root / "site"), str(wheel)], check=True,
                   capture_output=True, cwd=root)
    return root / "site"


@pytest.fixture(scope="module")
def work(site, tmp_path_factory):
    """(run, env): run(*argv) runs a fresh process in a directory outside the repository with the toy
    family installed (PYTHONPATH) and a private GANZOO_HOME."""
    cwd = tmp_path_factory.mktemp("toy-work")
    assert REPO not in cwd.parents
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANZOO_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), GANZOO_HOME=str(cwd / "home"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"{argv}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        return proc

    return run, env, cwd


def zoo(run, *args: str) -> subprocess.CompletedProcess:
    return run("-m", "zoo.cli", *args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_outside_family_trains_exports_publishes_loads_and_serves(work):
    run, env, cwd = work
    tiny = ["--data", "random:32", "--preset", "demo", "--no-progress", "--tracking-uri", "none"]

    # train: a full-width teacher (plain GAN), then a DGL-GAN student at half width against its D
    zoo(run, "train", "--config", CONFIG, "--out", "teacher", "--stage2-kimg", "0", *tiny)
    proc = zoo(run, "train", "--config", CONFIG, "--ch-mul", "1/2", "--teacher", "teacher/final", "--out", "student",
               *tiny)
    assert "dgl dcgan-toy ch_mul=1/2" in proc.stdout
    summary = json.loads((cwd / "student" / "summary.json").read_text())
    assert summary["config"] == CONFIG and summary["method"] == "dgl"
    assert json.loads((cwd / "student/final/config.json").read_text())["family"] == "dcgan"
    stages = [json.loads(line).get("stage") for line in (cwd / "student" / "log.jsonl").read_text().splitlines()
              if json.loads(line).get("event") == "tick"]
    assert 1 in stages and 2 in stages  # stage II ran: the teacher's D guided the student

    # export: ONNX, verified against eager PyTorch by the exporter, into the checkpoint so that it is published
    zoo(run, "export", "student/final", "--backend", "onnx", "--out", "student/final/exports/onnx")
    export = json.loads((cwd / "student/final/exports/onnx/export.json").read_text())
    assert [i["name"] for i in export["inputs"]] == ["z", "psi"]  # the family's export hints: psi is an input
    assert export["model"]["family"] == "dcgan"

    # publish both widths to a file registry
    zoo(run, "publish", "teacher", "--name", CONFIG, "--registry", "reg")
    zoo(run, "publish", "student", "--name", CONFIG, "--registry", "reg")
    listing = zoo(run, "list", "--registry", "reg", "--json").stdout
    assert {(e["name"], e["ch_mul"]) for e in json.loads(listing)} >= {(CONFIG, "1"), (CONFIG, "1/2")}

    # load and sample through the public API; the family comes from the installed wheel, not the repository
    code = f"""
import json, torch, zoo
from zoo.families import get_family
family = get_family("dcgan")
G = zoo.load({CONFIG!r}, "1/2", registry="reg")
onnx = zoo.load({CONFIG!r}, "1/2", registry="reg", backend="onnx")
z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    eager = G(z, truncation_psi=0.7)
exported = onnx(z, truncation_psi=0.7)
from zoo.export.stats import model_stats
print(json.dumps({{"module": family.Generator.__module__, "file": __import__(family.Generator.__module__).__file__,
                  "type": type(G).__name__, "shape": list(eager.shape), "finite": bool(torch.isfinite(eager).all()),
                  "max_diff": float((eager - exported).abs().max()), "stats": model_stats({CONFIG!r}, "1/2")}}))
"""
    out = json.loads(run("-c", code).stdout.strip().splitlines()[-1])
    assert out["module"] == "toy_dcgan" and Path(out["file"]).parent == Path(env["PYTHONPATH"])
    assert out["type"] == "Generator" and out["shape"] == [3, 1, 16, 16] and out["finite"]
    assert out["max_diff"] < 1e-4
    assert out["stats"]["family"] == "dcgan" and out["stats"]["macs_G_paper"] is None
    assert out["stats"]["params_G"] > 0 and out["stats"]["macs_G_fvcore"] > 0

    # serve: `zoo serve` in its own process, one generate request
    httpx = pytest.importorskip("httpx")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", "--registry", "reg", "--port", str(port),
                               "--log-level", "warning"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "zoo serve never became ready"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        r = httpx.post(url + "/v1/generate", json={"model": CONFIG, "ch_mul": "1/2", "seeds": [1, 2]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert r.headers["x-ganzoo-model"] == CONFIG and r.headers["x-ganzoo-ch-mul"] == "1/2"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
