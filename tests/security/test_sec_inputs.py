"""Issue 15, finding 10: numeric input that used to end in a traceback (or a silently garbage result).

``--ch-mul 1e309`` / ``inf`` was an OverflowError (CLI traceback, HTTP 500), a huge truncation a
RuntimeError deep in the model, ``truncation=nan`` a 200 with a garbage image.  Now: ValueError from the
parsers, a one-line ``zoo <command>: error: ...`` and exit status 2 from the CLI, and a 4xx JSON
``{"error": ...}`` from the server.  Truncation psi must be finite with |psi| <= 10 (zoo.sample.MAX_ABS_TRUNCATION).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.cli import main

NON_FINITE = ["1e309", "-1e309", "inf", "-inf", "Infinity", "nan", "NaN"]
TINY = dict(resolution=16, channel_base=256, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of ``zoo ARGV`` in-process; an uncaught exception fails the test."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    except Exception as exc:  # noqa: BLE001 - exactly what must not happen
        pytest.fail(f"zoo {' '.join(argv)}: uncaught {type(exc).__name__}: {exc}")
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, command: str, fragment: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"zoo {command}: error: "), err
    assert fragment in lines[0] and "Traceback" not in err


@pytest.fixture(autouse=True)
def _no_training(monkeypatch):
    """Argument validation must reject these before any training starts."""
    import zoo.train.loop as train_loop

    def refuse(spec):
        raise AssertionError(f"training started although the arguments are invalid: {spec}")

    monkeypatch.setattr(train_loop, "train", refuse)


# ------------------------------------------------------------------------------------------ parsers

@pytest.mark.parametrize("value", NON_FINITE + [math.inf, -math.inf, math.nan, 1e308, "1e308", " 1/0 ",
                                                 "9" * 5000, "1/" + "9" * 200, "1/2048", 10**400])
def test_parse_ch_mul_rejects_non_finite_and_absurd_values(value):
    from zoo.widths import parse_ch_mul

    with pytest.raises(ValueError, match="ch_mul must"):
        parse_ch_mul(value)


@pytest.mark.parametrize("value", ["1", 1, 0.5, "1/2", "1/3", "0.3333333", " 1/4 ", "0.125"])
def test_parse_ch_mul_still_accepts_widths(value):
    from zoo.widths import parse_ch_mul

    assert 0 < parse_ch_mul(value) <= 1


@pytest.mark.parametrize("value", NON_FINITE + ["1e308", "-1e308", "10.5", "-11", math.nan, "abc", "", None])
def test_parse_truncation_rejects_non_finite_and_huge(value):
    from zoo.sample import parse_truncation

    with pytest.raises(ValueError, match="truncation"):
        parse_truncation(value)


@pytest.mark.parametrize("value,psi", [("1", 1.0), (0.7, 0.7), ("-1", -1.0), (10, 10.0), ("0", 0.0)])
def test_parse_truncation_accepts_the_usual_range(value, psi):
    from zoo.sample import parse_truncation

    assert parse_truncation(value) == psi


# ---------------------------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("ch_mul", NON_FINITE + ["1e308", "-0.5"])
def test_cli_ch_mul_is_a_one_line_error(ch_mul, capsys, tmp_path):
    assert_one_line_error(*run_cli(["stats", "stylegan2-fashion-mnist", "--no-fvcore", f"--ch-mul={ch_mul}"],
                                   capsys), "stats", "ch_mul")
    assert_one_line_error(*run_cli(["sample", "stylegan2-fashion-mnist", f"--ch-mul={ch_mul}",
                                    "--out", str(tmp_path / "x.png")], capsys), "sample", "ch_mul")
    assert_one_line_error(*run_cli(["train", "--config", "stylegan2-emoji", "--preset", "demo", "--baseline",
                                    "--data", "random:8", "--out", str(tmp_path / "run"), f"--ch-mul={ch_mul}"],
                                   capsys), "train", "ch_mul")


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from zoo.checkpoint import save_checkpoint
    from zoo.models import build_generator, get_config

    root = tmp_path_factory.mktemp("ck")
    out = {}
    for name, extra in (("tiny", {}), ("tiny-cond", {"c_dim": 3})):
        cfg = get_config("stylegan2-emoji", "1/2", **TINY, **extra)
        out[name] = str(save_checkpoint(root / name, config=cfg, G_ema=build_generator(cfg)))
    return out


@pytest.mark.parametrize("args,fragment", [
    *[([f"--truncation={v}"], "truncation") for v in NON_FINITE + ["1e308", "-1e308", "11"]],
    (["--seeds", "0-99999999999"], "--seeds"),       # used to build a list of 10**11 ints
    (["--seeds", "4294967296"], "--seeds"),
    (["--class", str(10**30)], "class"),              # used to be an overflow RuntimeError in torch
    (["--class", "-1"], "class"),
    (["--scale", "0"], "--scale"), (["--scale", "9"], "--scale"),  # 9: past MAX_SCALE, an unbounded image
    (["--cols", "0"], "--cols"), (["--cols", "3"], "--cols"),      # 3 columns for 2 images
])
def test_cli_sample_numeric_args_are_one_line_errors(args, fragment, capsys, tmp_path, tiny_checkpoints):
    out = tmp_path / "grid.png"
    code, err = run_cli(["sample", tiny_checkpoints["tiny-cond"], "--seeds", "0-1", *args, "--out", str(out)],
                        capsys)
    assert_one_line_error(code, err, "sample", fragment)
    assert not out.exists()


def test_cli_sample_valid_truncation_still_works(capsys, tmp_path, tiny_checkpoints):
    out = tmp_path / "grid.png"
    code, err = run_cli(["sample", tiny_checkpoints["tiny"], "--seeds", "0-1", "--truncation", "0.7",
                         "--out", str(out)], capsys)
    assert code == 0 and out.is_file(), err


def test_cli_sample_cols_and_scale_lay_out_the_grid(capsys, tmp_path, tiny_checkpoints):
    from PIL import Image

    plain, big = tmp_path / "plain.png", tmp_path / "big.png"
    assert run_cli(["sample", tiny_checkpoints["tiny"], "--seeds", "0-1", "--out", str(plain)], capsys)[0] == 0
    assert run_cli(["sample", tiny_checkpoints["tiny"], "--seeds", "0-1", "--cols", "1", "--scale", "3",
                    "--out", str(big)], capsys)[0] == 0
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(big))
    h, w = a.shape[0], a.shape[1] // 2  # default: 2 images side by side
    assert b.shape[:2] == (2 * h * 3, w * 3)  # one column, every pixel 3 x 3
    stacked = np.concatenate([a[:, :w], a[:, w:]], axis=0)
    assert np.array_equal(b[::3, ::3], stacked) and np.array_equal(b[2::3, 1::3], stacked)


@pytest.mark.parametrize("args,fragment", [
    (["--stage1-kimg", "inf"], "--stage1-kimg"),       # used to be an OverflowError once training started
    (["--stage1-kimg", "nan"], "--stage1-kimg"),
    (["--stage1-kimg", "-1"], "--stage1-kimg"),
    (["--stage2-kimg", "1e309"], "--stage2-kimg"),
    (["--stage2-kimg", "nan"], "--stage2-kimg"),
    (["--stop-at-kimg", "inf"], "--stop-at-kimg"),
    (["--teacher", "x", "--lambda", "nan"], "--lambda"),  # nan passed `lam < 0` and trained with a nan loss
    (["--teacher", "x", "--lambda", "1e309"], "--lambda"),
    (["--batch", "0"], "--batch"),
    (["--batch", str(2**40)], "--batch"),
    (["--batch-gpu", "-3"], "--batch-gpu"),
    (["--dgl-interval", str(10**30)], "--dgl-interval"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**70)], "--seed"),
    (["--set", "stage1_kimg=NaN"], "stage1_kimg"),
    (["--set", "g_lr=Infinity"], "g_lr"),
    (["--set", 'g_lr="fast"'], "--set"),             # used to be a TypeError from a comparison
    (["--set", "batch=1.5"], "batch"),
    (["--arch", 'resolution="x"'], "--arch"),
])
def test_cli_train_numeric_args_are_one_line_errors(args, fragment, capsys, tmp_path):
    base = ["train", "--config", "stylegan2-emoji", "--preset", "demo", "--data", "random:8",
            "--out", str(tmp_path / "run")]
    if "--teacher" not in args:
        base.append("--baseline")
    assert_one_line_error(*run_cli(base + args, capsys), "train", fragment)


# -------------------------------------------------------------------------------------------- serve

@pytest.fixture(scope="module")
def client(tiny_checkpoints):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from zoo.serve.app import create_app

    return TestClient(create_app(tiny_checkpoints), raise_server_exceptions=False)


@pytest.mark.parametrize("params,fragment", [
    *[({"ch_mul": v}, "ch_mul") for v in NON_FINITE],               # OverflowError -> 500 before
    *[({"truncation": v}, "truncation") for v in NON_FINITE + ["1e308", "-1e308", "1e39", "11"]],
    ({"model": "tiny-cond", "class": str(10**30)}, "class"),       # overflow RuntimeError -> 500 before
    ({"model": "tiny-cond", "class": "3"}, "class"),
    ({"seed": str(2**32 - 1), "n": "2"}, "seed"),
])
def test_serve_numeric_params_are_4xx_json(client, params, fragment):
    r = client.get("/generate", params={"model": "tiny", "ch_mul": "1/2", **params})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/json" and fragment in r.json()["error"], r.text[:300]


def test_serve_framework_validation_errors_use_the_error_shape(client):
    for params in ({}, {"model": "tiny", "seed": "abc"}, {"model": "tiny", "n": "1e3"}):
        r = client.get("/generate", params=params)
        assert r.status_code == 422 and isinstance(r.json()["error"], str) and "detail" in r.json()


def test_serve_valid_truncation_still_works(client):
    r = client.get("/generate", params={"model": "tiny", "ch_mul": "1/2", "truncation": "-1", "n": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"


@pytest.mark.parametrize("argv", [
    ["sample", "stylegan2-fashion-mnist", "--seeds=--", "--out", "x.png"],   # found by the fuzzer: AttributeError
    ["sample", "stylegan2-fashion-mnist", "--class=--", "--out", "x.png"],   # TypeError
    ["train", "--config", "stylegan2-emoji", "--baseline", "--out", "run", "--stage2-kimg=--"],  # AttributeError
])
def test_cli_value_that_is_exactly_double_dash_is_a_usage_error(argv, capsys):
    # argparse stores [] for `--opt=--`; every command expected a string there
    code, err = run_cli(argv, capsys)
    assert code == 2 and err.strip().splitlines()[-1].endswith("expected one value"), err


@pytest.mark.parametrize("args,fragment", [
    (["--batch", "²"], "--batch"),                     # str.isdigit() accepted it, int() did not
    (["--batch", "9" * 5000], "--batch"),              # int() refuses > 4300 digits with another message
    (["--batch", "99999999999999"], "--batch"),        # would only fail deep inside an exporter
    (["--dynamic-batch", "1:8:99999999"], "--dynamic-batch"),
    (["--truncation-cutoff", "-1"], "--truncation-cutoff"),
])
def test_cli_export_numeric_args_are_one_line_errors(args, fragment, capsys, tmp_path):
    code, err = run_cli(["export", "stylegan2-fashion-mnist", "--backend", "onnx", "--out", str(tmp_path / "a"),
                         *args], capsys)
    assert_one_line_error(code, err, "export", fragment)
    assert not (tmp_path / "a").exists()
