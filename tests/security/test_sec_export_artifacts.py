"""export.json is data, not a pointer to trust: its ``file`` must name a verified file inside the artifact.

The old loaders hashed ``exports/onnx/model.onnx`` (through the registry index) and then opened whatever
``file`` said: an absolute path, ``../..``, or a file dropped into the entry later.  Here each of those
points at a real, loadable model, so the old code loads it and the test fails; the fixed code refuses.
"""
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from test_registry import _default_registry_only, make_checkpoint, registry_root  # noqa: F401
from zoo.errors import ZooError
from zoo.registry import publish

ROOT = Path(__file__).resolve().parents[2]
Z_DIM = 4


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def onnx_model(value: float = 1.0) -> bytes:
    """A real ONNX graph img = z * value (z: [N, 4]); ONNX Runtime loads it."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["z", "k"], ["img"])], "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", Z_DIM])],
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", Z_DIM])],
        [helper.make_tensor("k", TensorProto.FLOAT, [1], [value])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model.SerializeToString()


class Scale(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.register_buffer("k", torch.tensor(value))

    def forward(self, z):
        return z * self.k


def torchscript_model(value: float = 1.0) -> bytes:
    """A real TorchScript module img = z * value (traced, as `zoo export` does)."""
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():  # TorchScript is deprecated upstream; it is one of the export back-ends
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(Scale(value), torch.ones(1, Z_DIM)), buf)
    return buf.getvalue()


def export_json(backend: str, file: str, data: bytes | None) -> dict:
    """The fields the runtimes read; file_sha256/size describe ``data`` (what an attacker controls)."""
    meta = {"format": "ganzoo-export/1", "backend": backend, "dtype": "fp32", "file": file,
            "model": {"z_dim": Z_DIM, "c_dim": 0, "img_resolution": 2, "img_channels": 1, "arch": None},
            "inputs": [{"name": "z", "shape": ["N", Z_DIM], "dtype": "float32"}],
            "batch": {"min": 1, "opt": 2, "max": 8, "dynamic": True}, "truncation": {"cutoff": None}}
    if data is not None:
        meta.update(file_sha256=sha(data), file_size=len(data))
    return meta


def write_artifact(directory: Path, backend: str, file: str, model: bytes, named: bytes | None = None,
                   model_name: str = "model.onnx") -> Path:
    """An artifact dir holding a genuine ``model_name`` plus an export.json whose ``file`` is ``file``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / model_name).write_bytes(model)
    (directory / "export.json").write_text(json.dumps(export_json(backend, file, named)))
    return directory


# ------------------------------------------------------------------------------ zoo.load(backend="onnx")
@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_registry_onnx_backend_never_opens_a_file_outside_the_entry(tmp_path, where):
    evil = onnx_model(666.0)
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(evil)
    directory, _ = make_checkpoint(tmp_path / "c")
    ref_name = str(outside) if where == "absolute" else "../" * 30 + str(outside).lstrip("/")
    write_artifact(directory / "exports" / "onnx", "onnx", ref_name, onnx_model(1.0), named=evil)
    ref = publish(directory, name="evil-onnx")
    assert "exports/onnx/model.onnx" in ref.files  # the genuine file is listed and verified ...
    with pytest.raises(ZooError, match=r"'file' .* is not a plain relative path"):  # ... the pointer is not
        zoo.load("evil-onnx", ch_mul="1/8", backend="onnx")


def test_registry_onnx_backend_never_opens_an_unlisted_file(tmp_path):
    """export.json names a file that is not in the entry at publish time and is dropped in afterwards."""
    evil = onnx_model(666.0)
    directory, _ = make_checkpoint(tmp_path / "c")
    write_artifact(directory / "exports" / "onnx", "onnx", "evil.onnx", onnx_model(1.0), named=evil)
    ref = publish(directory, name="evil-onnx")
    exports = registry_root() / ref.path / "exports" / "onnx"
    exports.chmod(0o755)
    (exports / "evil.onnx").write_bytes(evil)
    with pytest.raises(ZooError, match="names 'evil.onnx', which the registry index does not list"):
        zoo.load("evil-onnx", ch_mul="1/8", backend="onnx")


def test_registry_onnx_backend_still_loads_a_genuine_artifact(tmp_path):
    model = onnx_model(2.0)
    directory, _ = make_checkpoint(tmp_path / "c")
    write_artifact(directory / "exports" / "onnx", "onnx", "model.onnx", model, named=model)
    publish(directory, name="good-onnx")
    G = zoo.load("good-onnx", ch_mul="1/8", backend="onnx")
    assert torch.equal(G._run({"z": torch.ones(1, Z_DIM)}), torch.full((1, Z_DIM), 2.0))


# ------------------------------------------------------------------------------ standalone artifacts
@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_torchscript_artifact_never_opens_a_file_outside_it(tmp_path, where):
    from zoo.export.artifact import load_export

    evil = torchscript_model(666.0)
    outside = tmp_path / "outside.ts"
    outside.write_bytes(evil)
    name = str(outside) if where == "absolute" else "../outside.ts"
    artifact = write_artifact(tmp_path / "art", "torchscript", name, torchscript_model(1.0), named=evil,
                              model_name="model.ts")
    with pytest.raises(ZooError, match="not a plain relative path"):
        load_export(artifact)


def test_artifact_model_must_match_export_json_hash(tmp_path):
    from zoo.export.artifact import load_export

    genuine, evil = torchscript_model(1.0), torchscript_model(666.0)
    artifact = write_artifact(tmp_path / "art", "torchscript", "model.ts", evil, named=genuine,
                              model_name="model.ts")
    with pytest.raises(ZooError, match=r"model.ts: (size|sha256).*checked against export.json"):
        load_export(artifact)


def test_artifact_without_a_recorded_hash_is_refused(tmp_path):
    from zoo.export.artifact import load_export

    artifact = write_artifact(tmp_path / "art", "torchscript", "model.ts", torchscript_model(1.0), named=None,
                              model_name="model.ts")
    with pytest.raises(ZooError, match="records no file_sha256"):
        load_export(artifact)


def test_artifact_model_behind_a_symlinked_directory_is_refused(tmp_path):
    from zoo.export.artifact import load_export

    evil = torchscript_model(666.0)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "model.ts").write_bytes(evil)
    artifact = write_artifact(tmp_path / "art", "torchscript", "sub/model.ts", evil, named=evil,
                              model_name="unused.ts")
    (artifact / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ZooError, match="'sub' on its path is a symlink"):
        load_export(artifact)


def test_artifact_model_that_is_a_fifo_is_an_error_not_a_hang(tmp_path):
    artifact = write_artifact(tmp_path / "art", "torchscript", "model.ts", b"", named=b"", model_name="x.ts")
    os.mkfifo(artifact / "model.ts")
    code = ("import sys\nfrom zoo.runtime import load_artifact\nfrom zoo.errors import ZooError\n"
            "try:\n    load_artifact(sys.argv[1])\nexcept ZooError as e:\n    print('ZooError:', e); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", code, str(artifact)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 3 and "model.ts: a FIFO" in result.stdout, result.stdout + result.stderr[-2000:]


def test_tensorrt_and_compile_runtimes_check_the_file_before_anything_else(tmp_path):
    """The TensorRT and AOTInductor wrappers share the check (it runs before their CUDA / device checks)."""
    from zoo.runtime.compile import CompiledGenerator
    from zoo.runtime.tensorrt import TrtGenerator

    for cls, backend in ((TrtGenerator, "tensorrt"), (CompiledGenerator, "compile")):
        artifact = write_artifact(tmp_path / backend, backend, "/etc/passwd", b"engine", named=b"engine",
                                  model_name="model.ep")
        with pytest.raises(ZooError, match="not a plain relative path"):
            cls(artifact, device="cpu")


def test_exporter_writes_what_the_loader_accepts(tmp_path):
    """A real `zoo export` artifact passes the new checks (format unchanged), and its files follow the umask."""
    from zoo.export.artifact import load_export
    from zoo.export.exporter import export_generator
    from zoo.runtime.base import BatchRange
    from zoo.models import build_generator

    G = build_generator("stylegan2-emoji", "1/8", resolution=16, z_dim=32, w_dim=32, mapping_layers=1).eval()
    saved = os.umask(0o022)
    try:
        path, meta = export_generator(G, tmp_path / "ts", backend="torchscript", batch=BatchRange.static(1))
    finally:
        os.umask(saved)
    assert meta["file"] == "model.ts" and meta["file_sha256"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert stat.S_IMODE((path / "export.json").stat().st_mode) == 0o644
    load_export(path)
