"""Latency rows, the calibration cache and latency-budget selection (zoo.latency, zoo.load(max_latency_ms=),
zoo bench --calibrate).  Measured figures only: no wall-clock value is asserted."""
import json
import math

import pytest

import zoo
from zoo.serve.testing import tiny_checkpoint
from zoo.cli import main
from zoo.environment import hardware
from zoo.errors import ZooError
from zoo.latency import (Candidate, LatencyRow, calibration_path, parse_rows, pick_row, read_calibration, select,
                         speedup_row)

FP = hardware("cpu")["fingerprint"]
DATA = {"n": 256, "real": {"sha256": "cd" * 32}}


def row(ms, batch=1, fingerprint=FP, **kw):
    return {"batch": batch, "backend": "eager", "dtype": "fp32", "median_ms": ms, "fingerprint": fingerprint, **kw}


def cand(ch, kid=None, rows=(), info=DATA, macs=None, sha=None):
    meta = {"latency": list(rows)}
    if kid is not None:
        meta["metrics"] = {"kid": kid}
        meta["metrics_info"] = info
    if macs:
        meta["macs_G_paper"] = macs
    return Candidate("m", ch, "1", meta, sha)


# ------------------------------------------------------------------------------------------ the row

def test_bench_rows_round_trip_and_old_rows_still_parse():
    bench = {"model": "m", "ch_mul": "1/2", "family": "stylegan2", "backend": "onnx", "dtype": "fp16", "batch": 8,
             "min_ms": 1.0, "median_ms": 2.0, "p99_ms": 3.0, "speedup_vs_full": 3.5, "speedup_vs_eager": 1.1,
             "fingerprint": FP, "date": "2025-01-01T00:00:00Z"}
    r = LatencyRow.from_dict(bench)
    assert (r.ms, r.batch, r.backend, r.dtype, r.speedup, r.fingerprint) == (2.0, 8, "onnx", "fp16", 3.5, FP)
    assert r.extra["p99_ms"] == 3.0 and r.to_dict() == bench
    # rows written before fingerprints and typed rows existed
    old = [LatencyRow.from_dict({"batch": 1, "speedup": 2.5}), LatencyRow.from_dict({"batch": 1, "ms": 2.5}),
           LatencyRow.from_dict({"latency_ms": 4, "backend": "eager"}),
           LatencyRow.from_dict({"batch": 2, "mean_ms": 3.0, "hardware": {"fingerprint": FP}})]
    assert [(o.ms, o.speedup, o.fingerprint) for o in old] == [(None, 2.5, None), (2.5, None, None),
                                                               (4.0, None, None), (3.0, None, FP)]
    assert old[1].to_dict() == {"ms": 2.5, "backend": "eager", "dtype": "fp32", "batch": 1, "median_ms": 2.5,
                                "speedup_vs_full": None, "fingerprint": None}
    assert not old[1].matches(FP)  # no fingerprint: never "measured here"


@pytest.mark.parametrize("bad", [[1], {"median_ms": math.nan}, {"median_ms": -1}, {"median_ms": True},
                                 {"median_ms": 1, "batch": 0}, {"median_ms": 1, "batch": 1.5},
                                 {"median_ms": 1, "backend": 3}, {"median_ms": 1, "fingerprint": ["x"]},
                                 {"median_ms": "1"}])
def test_bad_rows_are_value_errors_and_skipped(bad):
    with pytest.raises(ValueError):
        LatencyRow.from_dict(bad)
    assert parse_rows([bad, row(1.0)]) == [LatencyRow.from_dict(row(1.0))]
    assert parse_rows({"rows": [row(1.0)]}) == parse_rows([row(1.0)]) and parse_rows("junk") == []


def test_pick_row_matches_machine_backend_and_smallest_batch_that_covers():
    rows = parse_rows([row(9.0, 8), row(3.0, 4), row(1.0, 1), row(0.5, 4, fingerprint="cpu:Other:avx2"),
                       row(2.0, 4, backend="onnx"), row(2.5, 4, date="2030-01-01")])
    assert pick_row(rows, FP, batch=1).ms == 1.0
    assert pick_row(rows, FP, batch=3).ms == 2.5  # batch 4, the most recent of the two
    assert pick_row(rows, FP, batch=5).ms == 9.0
    assert pick_row(rows, FP, batch=9) is None
    assert pick_row(rows, FP, backend="onnx", batch=2).ms == 2.0
    assert pick_row(rows, "cuda:H100") is None


def test_speedup_row_prefers_this_machine_and_the_nearest_batch():
    rows = parse_rows([row(1, 1, speedup_vs_full=2.0), row(1, 8, speedup_vs_full=3.0),
                       row(1, 4, fingerprint="cpu:Other:avx2", speedup_vs_full=9.0), {"batch": 4, "speedup": 7.0}])
    assert speedup_row(rows, FP, 3).speedup == 2.0 and speedup_row(rows, FP, 6).speedup == 3.0
    assert speedup_row(rows, "cpu:Unknown", 4).speedup == 9.0  # nothing here: another machine's, nearest batch


# ------------------------------------------------------------------------------------------ selection

def test_selects_lowest_comparable_kid_within_budget():
    cands = [cand("1", 0.010, [row(40.0)]), cand("1/2", 0.012, [row(12.0)]), cand("1/4", 0.020, [row(5.0)]),
             cand("1/8", 0.001, [row(2.0)], info={"n": 50, "real": {"sha256": "ee" * 32}})]  # other n: not compared
    s = select(cands, 15, FP)
    assert s.candidate.ch_mul == "1/2" and s.row.ms == 12.0
    assert "lowest KID (0.012" in s.reason and "n=256" in s.reason and "ch_mul=1 v1: 40.00 ms" in s.reason
    assert "(too slow)" in s.reason
    opts = {o.candidate.ch_mul: o for o in s.options}
    assert opts["1/8"].fits and not opts["1/8"].comparable and opts["1"].comparable and not opts["1"].fits
    assert select(cands, 100, FP).candidate.ch_mul == "1"
    assert select(cands, 6, FP).candidate.ch_mul == "1/4"
    # only the not-comparable one fits: the widest that fits, and the reason says why
    s = select(cands, 3, FP)
    assert s.candidate.ch_mul == "1/8" and "could not be compared" in s.reason
    json.dumps(s.to_dict())


def test_no_fit_and_nothing_measured_are_clear_errors():
    cands = [cand("1", 0.01, [row(40.0)]), cand("1/2", 0.02, [row(12.0)])]
    with pytest.raises(ZooError, match=r"no variant of m fits max_latency_ms=5 .*ch_mul=1/2 v1: 12.00 ms.*"
                                       r"ch_mul=1 v1: 40.00 ms"):
        select(cands, 5, FP)
    elsewhere = [cand("1", 0.01, [row(40.0, fingerprint="cuda:NVIDIA H100")]), cand("1/2", 0.02, [{"ms": 3}])]
    with pytest.raises(ZooError, match=r"no latency of m was measured for this machine .*cuda:NVIDIA H100, "
                                       r"no fingerprint recorded.*zoo bench m --calibrate"):
        select(elsewhere, 50, FP)
    with pytest.raises(ZooError, match="batch"):  # measured at batch 1 only: says so for batch 2
        select(cands, 50, FP, batch=2)
    for bad in (0, -1, math.inf, math.nan, "5", True, 1e8):
        with pytest.raises(ZooError, match="max_latency_ms"):
            select(cands, bad, FP)


def test_mac_estimates_only_when_asked():
    cands = [cand("1", 0.01, [row(40.0)], macs=400), cand("1/4", 0.02, [], macs=25)]
    assert select(cands, 50, FP).candidate.ch_mul == "1"
    with pytest.raises(ZooError, match="no variant"):
        select(cands, 10, FP)
    s = select(cands, 10, FP, allow_estimates=True)
    assert s.candidate.ch_mul == "1/4" and s.row.ms == pytest.approx(2.5) and "estimate" in s.reason


def test_calibration_rows_count_for_this_machine(tmp_path):
    from zoo.latency import record_calibration

    cands = [cand("1", 0.01, [], sha="a" * 64), cand("1/2", 0.02, [], sha="b" * 64)]
    path = record_calibration(FP, {"a" * 64: {"name": "m", "ch_mul": "1", "version": "1",
                                              "rows": parse_rows([row(30.0)])},
                                   "b" * 64: {"name": "m", "ch_mul": "1/2", "version": "1",
                                              "rows": parse_rows([row(9.0)])}})
    assert path == calibration_path(FP) and path.is_file()
    s = select(cands, 10, FP, calibration=read_calibration(FP))
    assert s.candidate.ch_mul == "1/2" and "measured" in s.reason
    assert [o.origin for o in s.options] == ["calibration", "calibration"]
    path.write_text("[]")
    with pytest.raises(ZooError, match="calibrate"):
        read_calibration(FP)


# ------------------------------------------------------------------------------------------ registry

@pytest.fixture
def registry(tmp_path):
    from zoo.registry import publish

    reg = tmp_path / "registry"
    for i, (ch, kid, ms) in enumerate((("1", 0.010, 40.0), ("1/2", 0.012, 12.0), ("1/4", 0.020, 5.0))):
        meta = {"metrics": {"kid": kid}, "metrics_info": DATA, "latency": [row(ms)]}
        publish(tiny_checkpoint(tmp_path / f"ck{i}", ch, seed=i, metadata=meta), name="sg2", registry=str(reg),
                include_D=False)
    return str(reg)


def test_zoo_load_with_a_latency_budget(registry, caplog):
    with caplog.at_level("INFO", logger="zoo.latency"):
        G = zoo.load("sg2", max_latency_ms=15, registry=registry)
    assert G.config.ch_mul == "1/2" and G.zoo_selection.candidate.ch_mul == "1/2"
    assert "lowest KID" in G.zoo_selection.reason and G.zoo_selection.reason in caplog.text
    assert zoo.load("sg2", registry=registry).config.ch_mul == "1"  # no budget: the default width, as before
    assert zoo.load("sg2", "1/4", registry=registry).config.ch_mul == "1/4"
    with pytest.raises(ZooError, match="not both"):
        zoo.load("sg2", ch_mul="1/2", max_latency_ms=15, registry=registry)
    with pytest.raises(ZooError, match=r"fits max_latency_ms=1 .*ch_mul=1/4 v1: 5.00 ms"):
        zoo.load("sg2", max_latency_ms=1, registry=registry)
    with pytest.raises(ZooError, match="measured for this machine"):
        zoo.load("sg2", max_latency_ms=15, batch=4, registry=registry)
    with pytest.raises(ZooError, match="no entry named 'nope'"):
        zoo.load("nope", max_latency_ms=15, registry=registry)


def test_bench_rows_carry_the_fingerprint(tmp_path, capsys):
    out = tmp_path / "lat.json"
    ck = tiny_checkpoint(tmp_path / "ck", "1/2")
    assert main(["bench", str(ck), "--batch", "1", "--iters", "1", "--warmup", "0", "--threads", "1", "--json",
                 "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["hardware"]["fingerprint"] == FP
    (r,) = table["rows"]
    assert r["fingerprint"] == FP and LatencyRow.from_dict(r).matches(FP)
    from zoo.export.bench import latency_for

    (stored,) = latency_for(table, "1/2")
    assert stored["fingerprint"] == FP and stored["device"] == table["device"]["name"]


def test_bench_calibrate_fills_the_cache_once(tmp_path, capsys):
    from zoo.registry import publish

    reg = str(tmp_path / "registry")
    for i, ch in enumerate(("1", "1/4")):  # published without latency rows for this machine
        meta = {"metrics": {"kid": 0.01 * (i + 1)}, "metrics_info": DATA,
                "latency": [row(1.0, fingerprint="cuda:Some GPU")]}
        publish(tiny_checkpoint(tmp_path / f"ck{i}", ch, seed=i, metadata=meta), name="sg2", registry=reg,
                include_D=False)
    with pytest.raises(ZooError, match="--calibrate"):
        zoo.load("sg2", max_latency_ms=1e6, registry=reg)
    args = ["bench", "sg2", "--calibrate", "--registry", reg, "--batch", "1,2", "--iters", "1", "--warmup", "0",
            "--threads", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"calibration rows for {FP} written to" in text
    cache = read_calibration(FP)
    assert sorted(e["ch_mul"] for e in cache.values()) == ["1", "1/4"]
    for entry in cache.values():
        assert sorted(r.batch for r in entry["rows"]) == [1, 2] and all(r.fingerprint == FP for r in entry["rows"])
        quarter = [r for r in entry["rows"] if r.ch_mul == "1/4"]
        assert all(r.speedup is not None for r in quarter)  # same-run ratio to the full width
    G = zoo.load("sg2", max_latency_ms=1e6, registry=reg)
    assert G.config.ch_mul == "1" and all(o.origin == "calibration" for o in G.zoo_selection.options)
    # once: a second run measures nothing
    assert main(args) == 0
    assert "skipped sg2: every width already has rows" in capsys.readouterr().out


def test_bench_calibrate_errors(capsys, tmp_path):
    assert main(["bench", "stylegan2-fashion-mnist", "--force"]) == 2
    assert "--force and --registry go with --calibrate" in capsys.readouterr().err
    assert main(["bench", "nope", "--calibrate", "--registry", str(tmp_path)]) == 2
    assert "no entry named 'nope'" in capsys.readouterr().err
