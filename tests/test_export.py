"""zoo export: ONNX parity from one dynamic-batch artifact, metadata, verification failures, clear errors."""
import json
import sys

import pytest
import torch

from zoo.export.artifact import load_export, read_export_json
from zoo.export.exporter import export_generator
from zoo.export.options import parse_batch_list
from zoo.export.verify import VerificationError
from zoo.runtime import BatchRange
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models import build_generator


@pytest.fixture(scope="module")
def sg2():
    torch.manual_seed(0)
    return build_generator("stylegan2-emoji", ch_mul="1/8", resolution=32).eval()


@pytest.fixture(scope="module")
def biggan():
    torch.manual_seed(0)
    return build_generator("biggan-emoji", ch_mul="1/4").eval()


@pytest.fixture(scope="module")
def sg2_onnx(sg2, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "sg2-onnx"
    return export_generator(sg2, out, backend="onnx", batch=BatchRange(1, 4, 16))


def test_onnx_stylegan2_parity_two_batch_sizes_one_artifact(sg2, sg2_onnx):
    from zoo.export.onnx import OnnxGenerator

    path, meta = sg2_onnx
    G = OnnxGenerator(path, threads=1)
    assert G.session.get_inputs()[0].shape[0] == "batch"  # symbolic batch axis
    for n in (1, 3):
        z = torch.randn(n, sg2.z_dim)
        with torch.no_grad():
            ref = sg2(z, truncation_psi=0.7, noise_mode="const")  # the model's own (default) forward
        out = G(z, truncation_psi=0.7)
        assert out.shape == ref.shape == (n, 3, 32, 32)
        assert (out - ref).abs().max() < 1e-4
    # per-sample psi: each row equals a separate call with its own psi
    z = torch.randn(2, sg2.z_dim)
    mixed = G(z, truncation_psi=torch.tensor([1.0, 0.5]))
    with torch.no_grad():
        assert (mixed[1] - sg2(z[1:], truncation_psi=0.5)[0]).abs().max() < 1e-4
        assert (mixed[0] - sg2(z[:1], truncation_psi=1.0)[0]).abs().max() < 1e-4


def test_onnx_export_json_records_everything(sg2_onnx):
    from zoo.integrity import sha256_file

    path, meta = sg2_onnx
    assert meta["backend"] == "onnx" and meta["dtype"] == "fp32" and meta["opset"] >= 17
    assert meta["exporter"] in ("dynamo", "torchscript")
    assert meta["batch"] == {"min": 1, "opt": 4, "max": 16, "dynamic": True}
    assert [i["name"] for i in meta["inputs"]] == ["z", "psi"]
    assert meta["outputs"][0]["shape"] == ["N", 3, 32, 32]
    assert meta["noise_mode"] == "const" and meta["fused_modconv"] is False
    v = meta["verification"]
    assert v["passed"] and v["batch_sizes"] == [1, 2] and v["max_abs"] <= v["thresholds"]["max_abs"] == 1e-3
    assert meta["file_sha256"] == sha256_file(path / "model.onnx")
    assert meta["versions"]["torch"] and meta["versions"]["onnxruntime"]
    assert meta["model"]["family"] == "stylegan2" and meta["model"]["ch_mul"] == "1/8"
    assert json.loads((path / "export.json").read_text())["format"] == "ganzoo-export/1"


def test_onnx_biggan_parity_indices_and_one_hot(biggan, tmp_path):
    path, meta = export_generator(biggan, tmp_path / "bg", backend="onnx")
    assert [i["name"] for i in meta["inputs"]] == ["z", "c", "psi"] and meta["inputs"][1]["dtype"] == "int64"
    G = load_export(path)
    for n in (2, 5):
        z = torch.randn(n, biggan.z_dim)
        c = torch.arange(n) % biggan.c_dim
        with torch.no_grad():
            ref = biggan(z, c, truncation_psi=0.6)
        assert (G(z, c, truncation_psi=0.6) - ref).abs().max() < 1e-4
        assert (G(z, torch.nn.functional.one_hot(c, biggan.c_dim), truncation_psi=0.6) - ref).abs().max() < 1e-4
    with pytest.raises(ValueError, match="class-conditional"):
        G(torch.randn(1, biggan.z_dim))


def test_fp16_onnx_is_verified_against_fp32(sg2, tmp_path):
    _, meta = export_generator(sg2, tmp_path / "h", backend="onnx", dtype="fp16")
    v = meta["verification"]
    assert meta["dtype"] == "fp16" and meta["precision"].startswith("fp16 synthesis")
    assert v["thresholds"]["psnr_db"] == 30.0 and v["psnr_db"] >= 30 and 0 < v["max_abs"] <= 0.25


def test_torchscript_roundtrip_and_static_batch(sg2, tmp_path):
    path, meta = export_generator(sg2, tmp_path / "ts", backend="torchscript", batch=BatchRange.static(2))
    assert meta["batch"]["dynamic"] is False and meta["verification"]["batch_sizes"] == [2]
    G = load_export(path)
    z = torch.randn(2, sg2.z_dim)
    with torch.no_grad():
        assert (G(z) - sg2(z)).abs().max() < 1e-5
    with pytest.raises(ValueError, match="static batch of 2"):
        G(torch.randn(3, sg2.z_dim))
    with pytest.raises(ValueError, match="constant noise"):
        G(z, noise_mode="random")


def test_failed_verification_is_an_error_and_leaves_nothing(sg2, tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(VerificationError, match="does not match eager"):
        export_generator(sg2, out, backend="torchscript", thresholds={"max_abs": -1.0, "psnr_db": 1e9})
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no half-written temporary directory either


def test_existing_output_needs_overwrite(sg2_onnx, sg2):
    path, _ = sg2_onnx
    with pytest.raises(ZooError, match="already exists"):
        export_generator(sg2, path, backend="onnx")


def test_cli_export_from_checkpoint_records_source_sha(sg2, tmp_path, capsys):
    from zoo.checkpoint import save_checkpoint
    from zoo.integrity import read_json

    ckpt = save_checkpoint(tmp_path / "ckpt", config=sg2.config, G_ema=sg2, name="tiny")
    out = tmp_path / "onnx"
    assert main(["export", str(ckpt), "--backend", "torchscript", "--dynamic-batch", "1:2:8", "--out", str(out)]) == 0
    assert "verified against eager PyTorch" in capsys.readouterr().out
    _, meta = read_export_json(out)
    manifest = read_json(ckpt / "manifest.json")
    assert meta["source"]["kind"] == "checkpoint"
    assert meta["source"]["generator_sha256"] == manifest["files"]["generator.safetensors"]["sha256"]


@pytest.mark.parametrize("args, message", [
    (["--backend", "frobnicate"], "unknown backend 'frobnicate'"),
    (["--backend", "onnx", "--batch", "0"], "bad --batch '0'"),
    (["--backend", "onnx", "--batch", "a"], "bad --batch 'a'"),
    (["--backend", "onnx", "--dynamic-batch", "8:1:4"], "need 1 <= MIN <= OPT <= MAX"),
    (["--backend", "onnx", "--dynamic-batch", "x"], "use MIN:OPT:MAX"),
    (["--backend", "onnx", "--dtype", "int8"], "unknown dtype 'int8'"),
    (["--backend", "onnx", "--opset", "13"], "opset must be >= 17"),
])
def test_cli_export_clear_errors(args, message, tmp_path, capsys):
    assert main(["export", "stylegan2-emoji", "--ch-mul", "1/8", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_export_missing_extra_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    assert main(["export", "stylegan2-emoji", "--backend", "onnx", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "pip install 'dglgan-zoo[onnx]'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cli_tensorrt_without_cuda_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "stylegan2-emoji", "--backend", "tensorrt", "--out", str(tmp_path / "x")]) == 2
    assert "needs an NVIDIA GPU with CUDA" in capsys.readouterr().err


def test_batch_specs():
    assert parse_batch_list("1,8,48") == [1, 8, 48]
    assert parse_batch_list(" 8, 1 ,8") == [8, 1]
    for bad in ("0", "a", "", "1,,2", "-1", "1.5"):
        with pytest.raises(ZooError, match="bad batch spec"):
            parse_batch_list(bad)
    assert BatchRange.parse("1:8:64") == BatchRange(1, 8, 64) and BatchRange.parse("2:16").opt == 2
    assert BatchRange.static(4).verification_sizes() == [4] and BatchRange(1, 8, 64).verification_sizes() == [1, 2]


@pytest.mark.slow
def test_compile_aot_inductor_package(sg2, tmp_path):
    """AOTInductor compiles C++ (about a minute on 2 cores), hence slow."""
    path, meta = export_generator(sg2, tmp_path / "aoti", backend="compile", batch=BatchRange(1, 2, 8))
    assert meta["file"] == "model.pt2" and meta["verification"]["passed"]
    G = load_export(path)
    z = torch.randn(3, sg2.z_dim)
    with torch.no_grad():
        assert (G(z, truncation_psi=0.8) - sg2(z, truncation_psi=0.8)).abs().max() < 1e-4
    with pytest.raises(ValueError, match="outside this artifact's range"):
        G(torch.randn(9, sg2.z_dim))
