"""scripts/gpu_table.py (the docs/gpu.md table): its CPU dry run runs the whole code path and writes a
docs/gpu.md-shaped file into a temporary directory, never into docs/; without CUDA the real run refuses."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_table.py"
DOC = ROOT / "docs" / "gpu.md"


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_dry_run_writes_a_table_outside_docs():
    before = _digest(DOC)
    out = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert _digest(DOC) == before, "a dry run must not touch docs/gpu.md"
    wrote = [ln for ln in out.stdout.splitlines() if ln.startswith("[gpu_table] wrote ")]
    md = Path(wrote[-1].split()[2])
    assert ROOT / "docs" not in md.parents and md.is_file()

    text = md.read_text()
    assert "CPU dry run" in text and "say nothing about GPU speed" in text
    assert "Command: `python scripts/gpu_table.py --dry-run`" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| 1")]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "1/2", "1/4", "1/8"]
    assert rows[0].rstrip().endswith("| 1.00x |") and "2.22x" in rows[1] and "3.47x" in rows[2] and "4.38x" in rows[3]
    assert "TensorRT fp32: skipped — needs CUDA" in text

    report = json.loads(md.with_suffix(".json").read_text())
    assert report["settings"]["dry_run"] and report["settings"]["device"] == "cpu"
    assert report["paper_v100"] == {"1": 1.0, "1/2": 2.22, "1/4": 3.47, "1/8": 4.38}
    for backend in ("eager", "compile"):
        res = report["backends"][backend]
        assert res["status"] == "ok", res
        assert set(res["rows"]) == {"1", "1/2", "1/4", "1/8"}
        assert res["rows"]["1"]["speedup"] == 1.0
        for r in res["rows"].values():  # speedups are ratios of the same run's medians
            assert r["median_ms"] > 0 and r["min_ms"] <= r["median_ms"]
            assert r["speedup"] == pytest.approx(res["rows"]["1"]["median_ms"] / r["median_ms"])
    assert report["backends"]["compile"]["compile_backend"] == "eager"
    assert report["backends"]["tensorrt"] == {"status": "skipped", "reason": "needs CUDA"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the real run would start")
def test_real_run_refuses_without_cuda(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu.md")], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and "no CUDA device" in out.stderr and "--dry-run" in out.stderr
    assert not (tmp_path / "gpu.md").exists()
