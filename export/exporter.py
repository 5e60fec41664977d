"""``export_generator``: one generator -> one verified artifact directory, for any back-end.

    >>> from export.exporter import export_generator
    >>> path, meta = export_generator(G, "out/onnx", backend="onnx")       # dynamic batch 1..64
    >>> from export.onnx import OnnxGenerator
    >>> img = OnnxGenerator(path)(z, truncation_psi=0.7)
"""
from __future__ import annotations

import importlib
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoo.export.artifact import model_info, now, software_versions, write_export_json
from zoo.integrity import staging_dir
from zoo.export.graph import build_graph, family_of, fixed_inputs, input_specs, output_spec
from zoo.backends import get_backend
from zoo.export.options import check_dtype, torch_dtype
from zoo.runtime.base import BatchRange
from zoo.export.verify import default_thresholds, verify

log = logging.getLogger(__name__)


def backend_module(name: str):
    """The module implementing a back-end (``export(...)``, ``load(...)``, ``check_available(...)``)."""
    return importlib.import_module(get_backend(name).export_module)


@contextmanager
def quiet():
    """Silence the exporters' progress chatter and warnings (errors still propagate)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch._export",
                                              "torch.fx.experimental.symbolic_shapes", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def example_batch(batch: BatchRange) -> int:
    """Trace with batch >= 2 when the batch is dynamic: torch.export specialises a size-1 axis."""
    return max(2, batch.min) if batch.dynamic else batch.min


def export_generator(G, out: str | os.PathLike, backend: str = "onnx", dtype: str = "fp32",
                     batch: BatchRange | None = None, device: str = "cpu", source: dict | None = None,
                     opset: int = 18, truncation_cutoff: int | None = None, overwrite: bool = False,
                     thresholds: dict[str, float] | None = None) -> tuple[Path, dict[str, Any]]:
    """Export ``G`` (eval, constant noise, non-fused modconv) and verify it against eager PyTorch.

    The directory ``out`` appears only when verification passed; on any failure nothing is left.
    Returns (path, export.json contents)."""
    check_dtype(dtype)
    batch = batch or BatchRange()
    module = backend_module(backend)
    module.check_available(device=device, dtype=dtype)
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    G = G.to(device).eval()
    specs = input_specs(G)
    out_dtype = getattr(module, "output_dtype", lambda d: torch.float32)(dtype)
    graph = build_graph(G, torch_dtype(dtype), out_dtype, truncation_cutoff).to(device)
    reference = build_graph(G, torch.float32, torch.float32, truncation_cutoff).to(device)
    c_dim = int(getattr(G, "c_dim", 0))

    def make_inputs(n: int) -> dict:
        return fixed_inputs(specs, n, c_dim, device)

    example = tuple(make_inputs(example_batch(batch)).values())
    record: dict[str, Any] = {
        "backend": backend,
        "dtype": dtype,
        "device": device,
        "batch": batch.to_dict(),
        "inputs": [s.to_dict() for s in specs],
        "outputs": [output_spec(G, out_dtype).to_dict()],
        "truncation": {"psi": "input 'psi' [N]" if any(s.name == "psi" for s in specs)
                       else "none in the graph (truncate z before calling)", "cutoff": truncation_cutoff},
        "noise_mode": "const",
        "fused_modconv": False,
        "precision": "fp32" if dtype == "fp32" else family_of(G).export.fp16_parts,
        "model": model_info(G),
        "source": source or {"kind": "module"},
        "created": now(),
    }
    with staging_dir(out, overwrite=overwrite) as tmp, quiet(), torch.inference_mode(False), torch.no_grad():
        info = module.export(graph, example, specs, batch, tmp, dtype=dtype, device=device, opset=opset)
        versions = info.pop("versions", {})
        record.update(info)
        record["versions"] = {**software_versions(), **versions}
        write_export_json(tmp, record)  # needed by the loader; rewritten below with the verification
        runner = module.load(tmp, device=device)
        names = [s.name for s in specs]
        record["verification"] = verify(
            lambda feeds: reference(*[feeds[n] for n in names]),
            runner._run, make_inputs, batch.verification_sizes(), dtype,
            thresholds or default_thresholds(dtype, device), what=f"{backend} {dtype} export",
        )
        write_export_json(tmp, record)
        del runner
    log.info("exported %s %s to %s", backend, dtype, out)
    from zoo.export.artifact import read_export_json

    return Path(out), read_export_json(out)[1]
