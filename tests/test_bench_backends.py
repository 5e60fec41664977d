"""zoo.backends.BACKENDS: the one back-end table that export, bench, runtime, registry and serve read."""
import importlib
import subprocess
import sys

import pytest

from zoo.backends import BACKENDS, BENCH_BACKENDS, EAGER, Backend, check_backend, get_backend
from zoo.errors import ZooError


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_row_names_modules_that_implement_it(name):
    b = get_backend(name)
    assert isinstance(b, Backend) and b.name == name
    export = importlib.import_module(b.export_module)
    runtime = importlib.import_module(b.runtime_module)
    assert export.FILE == b.artifact_file  # the exporter writes the file the table (and the registry) names
    assert callable(export.export) and callable(export.check_available) and callable(runtime.load)
    from zoo.runtime import runtime_module

    assert runtime_module(name) is runtime
    assert b.registry_file == f"exports/{name}/{b.artifact_file}"
    if b.extra is not None:
        assert b.extra in _extras(), f"{name}: extra {b.extra!r} is not declared in pyproject.toml"


def _extras() -> set[str]:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def test_names_checks_and_defaults():
    assert BENCH_BACKENDS == (EAGER, "onnx", "torchscript", "compile", "tensorrt")
    assert get_backend("tensorrt").default_device == "cuda" and get_backend("tensorrt").default_dtype == "fp16"
    assert get_backend("onnx").default_dtype == "fp32"
    with pytest.raises(ZooError, match="unknown backend 'eager'; choose from: onnx, torchscript, compile, tensorrt"):
        get_backend(EAGER)  # eager has no artifact: not a row of the table
    assert check_backend(EAGER, BENCH_BACKENDS) == EAGER
    with pytest.raises(ZooError, match="unknown backend 'nope'"):
        check_backend("nope")
    with pytest.raises(ZooError, match="unknown backend"):
        get_backend(["onnx"])


def test_cli_help_and_errors_come_from_the_table(capsys):
    from zoo.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    for b in BACKENDS.values():
        assert b.name in out
    assert main(["export", "stylegan2-fashion-mnist", "--backend", "eager", "--out", "x"]) == 2
    assert "choose from: onnx, torchscript, compile, tensorrt" in capsys.readouterr().err


def test_the_table_is_light():
    """zoo may not import zoo.export: the table names modules as strings and imports neither them nor torch."""
    code = ("import sys, zoo.backends, zoo.runtime, zoo.latency, zoo.metrics; "
            "bad = [m for m in ('torch', 'zoo.export', 'zoo.train', 'zoo.serve') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
