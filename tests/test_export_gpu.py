"""GPU checks of export and bench (marked gpu: skipped without CUDA; run with `pytest -m gpu`).

CUDA eager vs torch.compile vs an AOTInductor package vs ONNX Runtime's CUDA provider (when
onnxruntime-gpu is installed), TensorRT FP16 (when torch-tensorrt is installed), and the CUDA-event
timer of `zoo bench`.  Tiny configurations keep compilation to seconds.
"""
import importlib.util

import pytest
import torch

from zoo.export.graph import build_graph, fixed_inputs, input_specs
from zoo.models import build_generator
from zoo.runtime import BatchRange

pytestmark = pytest.mark.gpu
CUDA = "cuda"


@pytest.fixture(scope="module")
def sg2():
    torch.manual_seed(0)
    return build_generator("stylegan2-emoji", ch_mul="1/8", resolution=32).eval().to(CUDA)


@pytest.fixture(scope="module")
def biggan():
    torch.manual_seed(0)
    return build_generator("biggan-emoji", ch_mul="1/4").eval().to(CUDA)


def _feeds(G, n):
    return fixed_inputs(input_specs(G), n, G.c_dim, CUDA)


def test_cuda_eager_graph_matches_cpu(sg2):
    feeds = _feeds(sg2, 3)
    with torch.no_grad():
        gpu = build_graph(sg2)(*feeds.values()).cpu()
        cpu = build_graph(sg2.cpu())(*[t.cpu() for t in feeds.values()])
    sg2.to(CUDA)
    assert (gpu - cpu).abs().max() < 2e-2  # TF32 convolutions on the GPU


@pytest.mark.parametrize("which", ["sg2", "biggan"])
def test_torch_compile_matches_eager_two_batch_sizes(which, request):
    from zoo.export.compile import compile_at_load

    G = request.getfixturevalue(which)
    eager = build_graph(G)
    compiled = compile_at_load(build_graph(G))
    with torch.no_grad():
        for n in (2, 5):
            feeds = _feeds(G, n)
            assert (compiled(*feeds.values()) - eager(*feeds.values())).abs().max() < 2e-2


def test_aot_inductor_cuda_package(sg2, tmp_path):
    from zoo.export.artifact import load_export
    from zoo.export.exporter import export_generator

    path, meta = export_generator(sg2, tmp_path / "aoti", backend="compile", device=CUDA, batch=BatchRange(1, 4, 16))
    assert meta["device"] == CUDA and meta["verification"]["passed"]
    G = load_export(path, device=CUDA)
    z = torch.randn(6, sg2.z_dim, device=CUDA)
    with torch.no_grad():
        assert (G(z, truncation_psi=0.7) - sg2(z, truncation_psi=0.7)).abs().max() < 2e-2


def test_onnx_runtime_cuda_provider(sg2, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed (no CUDAExecutionProvider)")
    from zoo.export.exporter import export_generator
    from zoo.export.onnx import OnnxGenerator

    for dtype in ("fp32", "fp16"):
        path, meta = export_generator(sg2, tmp_path / dtype, backend="onnx", dtype=dtype, device=CUDA)
        G = OnnxGenerator(path, device=CUDA)
        assert G.providers[0] == "CUDAExecutionProvider"
        z = torch.randn(3, sg2.z_dim, device=CUDA)
        with torch.no_grad():
            ref = sg2(z, truncation_psi=0.7)
        out = G(z, truncation_psi=0.7)
        assert out.device.type == "cuda" and (out - ref).abs().max() < (2e-2 if dtype == "fp32" else 0.25)


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is None, reason="torch-tensorrt is not installed")
def test_tensorrt_fp16_engine(sg2, tmp_path):
    from zoo.export.artifact import load_export
    from zoo.export.exporter import export_generator

    path, meta = export_generator(sg2, tmp_path / "trt", backend="tensorrt", dtype="fp16", device=CUDA,
                                  batch=BatchRange(1, 4, 8))
    check = meta["engine_check"]
    assert check["graph_convolutions_by_dtype"].keys() == {"float16"} and check["output_dtype"] == "torch.float16"
    assert meta["versions"]["tensorrt_runtime"] and meta["versions"]["gpu"]
    G = load_export(path, device=CUDA)
    z = torch.randn(5, sg2.z_dim, device=CUDA)
    with torch.no_grad():
        assert (G(z) - sg2(z)).abs().max() < 0.25


def test_bench_on_cuda_uses_cuda_events():
    from zoo.export.bench import run_bench

    table = run_bench(["stylegan2-fashion-mnist"], backends=["eager"], batches=[1, 4], ch_muls=["1", "1/2"],
                      device=CUDA, warmup=1, iters=3, progress=False)
    assert table["settings"]["timer"] == "CUDA events" and table["device"]["type"] == "cuda"
    for r in table["rows"]:
        assert r["mem_kind"].startswith("cuda") and r["peak_mem_mb"] > 0 and r["median_ms"] > 0
