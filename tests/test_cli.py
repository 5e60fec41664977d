"""The `zoo` console script: version, help, stats output, lazy imports, clear errors."""
import json
import subprocess
import sys

import pytest

from zoo.cli import COMMANDS, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True, timeout=300)


def test_version(capsys):
    import zoo

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ganzoo {zoo.__version__}"


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ["train", "eval", "export", "publish", "list", "serve", "compare", "import", "data", "stats"]:
        assert name in COMMANDS and f"  {name}" in out


def test_unknown_command_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_import_zoo_is_light():
    code = ("import sys, zoo, zoo.cli; heavy = [m for m in ('torch', 'onnxruntime', 'mlflow', 'fastapi', 'zoo.train', "
            "'zoo.export', 'zoo.serve', 'huggingface_hub', 'tensorrt', 'ray') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stats_json_church_half():
    proc = run_cli("stats", "stylegan2-church", "--ch-mul", "1/2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["name"] == "stylegan2-church" and data["ch_mul"] == "1/2"
    assert data["params_G"] == 10_931_682 and data["params_D"] == 7_219_009
    assert round(data["macs_G_paper"] / 1e9, 2) == 20.99
    # fvcore counts the real module: the up-conv at input resolution, so about half the paper's figure
    assert 0.45 < data["macs_G_fvcore"] / data["macs_G_paper"] < 0.6


def test_stats_bad_input_exits_nonzero_without_traceback():
    for args in (["stats", "stylegan2-ffhq", "--ch-mul", "1/3"], ["stats", "nope"]):
        proc = run_cli(*args)
        assert proc.returncode == 2
        assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_fvcore_agrees_with_flop_counter_mode():
    """fvcore counts MACs; torch's FlopCounterMode counts 2 flops per MAC. A torch upgrade that breaks
    fvcore's tracing would show up here."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zoo.export.stats import example_inputs, fvcore_macs
    from zoo.models import build_generator

    G = build_generator("stylegan2-emoji", ch_mul="1/4").eval()
    macs = fvcore_macs(G)
    with FlopCounterMode(display=False) as counter:  # (its module tracker needs grad mode on)
        G(*example_inputs(G))
    assert counter.get_total_flops() == pytest.approx(2 * macs, rel=0.02)


def test_train_without_data_names_the_catalogue_default_or_asks_for_data(tmp_path, monkeypatch, capsys):
    """Without --data, `zoo train` uses the catalogue entry's default_data and says how to build it; a
    configuration whose data is not embedded asks for --data."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "biggan-emoji", "--baseline", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "data/emoji-groups-32" in err and "zoo data build emoji --subset groups --res 32" in err
    assert main(["train", "--config", "stylegan2-church", "--baseline", "--out", str(tmp_path / "run2")]) == 2
    assert "--data is required for stylegan2-church" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()
