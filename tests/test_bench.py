"""zoo bench: latency-table schema, same-run speedups, registry rows, clear errors (no wall-clock asserts)."""
import json

import pytest

from zoo.export.bench import latency_for, measure, run_bench, summarize
from zoo.cli import main

ROW_KEYS = {"model", "ch_mul", "family", "resolution", "backend", "dtype", "batch", "warmup", "iters", "min_ms",
            "median_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s", "peak_mem_delta_mb", "mem_kind",
            "speedup_vs_full", "speedup_vs_eager", "runtime"}


@pytest.fixture(scope="module")
def table():
    # the smallest catalogue model (32 px, 1 channel); two widths, eager + ONNX Runtime, two batch sizes
    return run_bench(["stylegan2-fashion-mnist"], backends=["eager", "onnx"], batches=[1, 2], ch_muls=["1", "1/2"],
                     warmup=1, iters=3, threads=1, progress=False)


def test_table_schema(table):
    assert table["format"] == "ganzoo-latency/1"
    assert table["device"]["type"] == "cpu" and table["device"]["name"]
    assert table["threads"] == {"torch": 1, "onnxruntime_intra_op": 1, "onnxruntime_inter_op": 1}
    assert isinstance(table["env"], dict) and table["settings"]["timer"] == "time.perf_counter"
    assert table["versions"]["torch"] and table["date"]
    assert len(table["rows"]) == 2 * 2 * 2
    for r in table["rows"]:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["images_per_s"] == pytest.approx(r["batch"] * 1000 / r["median_ms"])
        assert r["iters"] == 3 and r["peak_mem_delta_mb"] >= 0
    json.dumps(table, allow_nan=False)  # strict JSON: the registry stores it as is


def test_speedups_are_same_run_ratios(table):
    rows = {(r["ch_mul"], r["backend"], r["batch"]): r for r in table["rows"]}
    for (w, backend, n), r in rows.items():
        full = rows[("1", backend, n)]
        eager = rows[(w, "eager", n)]
        assert r["speedup_vs_full"] == pytest.approx(full["median_ms"] / r["median_ms"])
        assert r["speedup_vs_eager"] == pytest.approx(eager["median_ms"] / r["median_ms"])
    assert rows[("1", "eager", 1)]["speedup_vs_full"] == 1.0
    assert rows[("1/2", "onnx", 2)]["verification_max_abs"] < 1e-3
    assert rows[("1/2", "onnx", 2)]["providers"] == ["CPUExecutionProvider"]


def test_latency_rows_for_the_registry(table):
    rows = latency_for(table, "1/2")
    assert len(rows) == 4 and {r["ch_mul"] for r in rows} == {"1/2"}
    for r in rows:
        assert r["device"] == table["device"]["name"] and r["date"] == table["date"]
        assert {"backend", "dtype", "batch", "median_ms", "versions", "env", "threads"} <= set(r)


def test_summarize_percentiles():
    s = summarize([float(v) for v in range(1, 101)], batch=4)
    assert s["min_ms"] == 1 and s["median_ms"] == 50.5 and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["images_per_s"] == pytest.approx(4000 / 50.5)


def test_measure_counts_calls():
    calls = []
    result = measure(lambda: calls.append(1), batch=1, warmup=2, iters=5)
    assert len(calls) == 7 and result["iters"] == 5 and result["mem_kind"]


def test_cli_bench_json_and_out_file(tmp_path, capsys):
    out = tmp_path / "lat.json"
    assert main(["bench", "stylegan2-fashion-mnist", "--ch-mul", "1/4", "--batch", "2", "--iters", "1",
                 "--warmup", "0", "--threads", "1", "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    (row,) = printed["rows"]
    assert row["backend"] == "eager" and row["batch"] == 2 and row["ch_mul"] == "1/4"


def test_cli_bench_table_text(capsys):
    assert main(["bench", "stylegan2-fashion-mnist", "--ch-mul", "1/8", "--batch", "1", "--iters", "1",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "threads: torch 1" in out and "median ms" in out and "stylegan2-fashion" in out


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "bad batch spec"),
    (["--batch", "a"], "bad batch spec"),
    (["--batch", ""], "bad batch spec ''"),
    (["--backend", "tensorflow"], "unknown backend 'tensorflow'"),
    (["--backend", ""], "bad --backend"),
    (["--device", "tpu"], "bad --device 'tpu'"),
    (["--ch-mul", "1/3"], "not a supported width"),
    (["--dtype", "bf16"], "unknown dtype 'bf16'"),
    (["--iters", "0"], "need iters >= 1"),
])
def test_cli_bench_clear_errors(args, message, capsys):
    assert main(["bench", "stylegan2-fashion-mnist", "--batch", "1", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_bench_unknown_source(capsys):
    assert main(["bench", "no-such-model-anywhere"]) == 2
    assert "error:" in capsys.readouterr().err
