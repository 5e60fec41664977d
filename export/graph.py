"""The function every back-end exports: ``(z[, c][, psi]) -> img`` as one traceable graph.

What is fixed at export time (and recorded in export.json):

* eval mode, ``noise_mode='const'`` (per-layer noise buffers become constants), spectral-norm
  parametrizations folded into plain weights, and a frozen spectral norm: each SN layer's normalised
  weight becomes a constant buffer (what eval mode computes on every call, so outputs are unchanged);
* what the family's :class:`zoo.families.ExportHints` say: whether the truncation ``psi`` is an **input**
  (one value per sample, ``[N]`` float32; the truncation cutoff is baked), which parts run in the export
  dtype, and the traced function.  StyleGAN2 truncates w toward ``w_avg`` with mapping and truncation in
  fp32 and the synthesis network (non-fused modulated conv: the fused grouped conv has ``groups=batch``
  and cannot have a dynamic batch) in the export dtype, as NVlabs does for fp16; BigGAN scales z by psi
  (``G.truncate``; sample z from a truncated normal yourself if you want BigGAN's other truncation trick)
  and runs wholly in the export dtype.

Inputs, in this order: ``z [N, z_dim] float32``; ``c`` only for conditional models, as the family's
``label_format`` says (``onehot``: ``[N, c_dim] float32``, StyleGAN2; ``index``: class indices ``[N] int64``,
BigGAN); ``psi [N] float32`` when the family's hints take it.
Output: ``img [N, C, R, R]`` in ``out_dtype`` (float32 unless asked otherwise).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from zoo.families import family_of
# inputs/outputs are recorded in export.json, which zoo.runtime reads back; TensorSignature is defined there
from zoo.runtime.base import TensorSignature

# the psi values the fixed verification/benchmark inputs cycle through
FIXED_PSI = (1.0, 0.7)


def has_psi_input(G) -> bool:
    """Whether the graph of ``G`` takes the truncation psi as an input (the family's export hints)."""
    return family_of(G).export.psi_input


def input_specs(G) -> list[TensorSignature]:
    specs = [TensorSignature("z", ("N", int(G.z_dim)), "float32")]
    if getattr(G, "c_dim", 0):
        if family_of(G).label_format == "index":
            specs.append(TensorSignature("c", ("N",), "int64"))
        else:
            specs.append(TensorSignature("c", ("N", int(G.c_dim)), "float32"))
    if has_psi_input(G):
        specs.append(TensorSignature("psi", ("N",), "float32"))
    return specs


def output_spec(G, out_dtype: torch.dtype = torch.float32) -> TensorSignature:
    dtype = "float16" if out_dtype == torch.float16 else "float32"
    return TensorSignature("img", ("N", int(G.img_channels), int(G.img_resolution), int(G.img_resolution)), dtype)


def fixed_inputs(specs: list[TensorSignature], batch: int, c_dim: int = 0, device="cpu") -> dict[str, torch.Tensor]:
    """Deterministic inputs for verification and benchmarks: z from seeds 0..N-1 (as ``zoo sample``),
    classes i % c_dim, psi cycling through :data:`FIXED_PSI`."""
    out: dict[str, torch.Tensor] = {}
    for spec in specs:
        if spec.name == "z":
            z = np.stack([np.random.RandomState(seed).randn(spec.shape[1]) for seed in range(batch)])
            out["z"] = torch.from_numpy(z).float()
        elif spec.name == "c":
            labels = torch.arange(batch) % max(c_dim, 1)
            out["c"] = labels if spec.dtype == "int64" else nn.functional.one_hot(labels, c_dim).float()
        elif spec.name == "psi":
            out["psi"] = torch.tensor([FIXED_PSI[i % len(FIXED_PSI)] for i in range(batch)], dtype=torch.float32)
    return {k: v.to(device) for k, v in out.items()}


def _freeze_spectral_norm(G: nn.Module) -> None:
    """BigGAN SN layers: store the eval-mode normalised weight as a buffer that ``sn_weight()`` returns."""
    for m in G.modules():
        if hasattr(m, "sn_weight") and hasattr(m, "frozen_weight"):
            with torch.no_grad():
                w = m.sn_weight().detach().clone()
            del m.frozen_weight
            m.register_buffer("frozen_weight", w, persistent=False)


def _fold_parametrizations(module: nn.Module) -> None:
    """Replace parametrized weights (e.g. spectral norm) by their current value, as plain parameters."""
    from torch.nn.utils import parametrize

    for sub in list(module.modules()):
        if parametrize.is_parametrized(sub):
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)


class _GeneratorGraph(nn.Module):
    """Holds the generator and implements the computation; subclasses fix the positional signature."""

    def __init__(self, G, dtype: torch.dtype, out_dtype: torch.dtype, truncation_cutoff: int | None):
        super().__init__()
        G = copy.deepcopy(G).eval()
        _fold_parametrizations(G)
        _freeze_spectral_norm(G)
        self.hints = family_of(G).export
        self.compute_dtype, self.out_dtype = dtype, out_dtype
        self.truncation_cutoff = truncation_cutoff
        self.hints.cast(G, dtype)
        self.G = G
        for p in self.parameters():
            p.requires_grad_(False)

    def generate(self, z, c=None, psi=None) -> torch.Tensor:
        img = self.hints.generate(self.G, z, c, psi, dtype=self.compute_dtype,
                                  truncation_cutoff=self.truncation_cutoff)
        return img.to(self.out_dtype)


class _Z(_GeneratorGraph):
    def forward(self, z):
        return self.generate(z)


class _ZC(_GeneratorGraph):
    def forward(self, z, c):
        return self.generate(z, c)


class _ZPsi(_GeneratorGraph):
    def forward(self, z, psi):
        return self.generate(z, psi=psi)


class _ZCPsi(_GeneratorGraph):
    def forward(self, z, c, psi):
        return self.generate(z, c, psi)


def build_graph(G, dtype: torch.dtype = torch.float32, out_dtype: torch.dtype = torch.float32,
                truncation_cutoff: int | None = None) -> nn.Module:
    """An eval-mode module whose ``forward`` takes the inputs of :func:`input_specs` positionally.

    ``G`` itself is left untouched (the module holds a copy)."""
    names = tuple(s.name for s in input_specs(G))
    cls = {("z",): _Z, ("z", "c"): _ZC, ("z", "psi"): _ZPsi, ("z", "c", "psi"): _ZCPsi}[names]
    return cls(G, dtype, out_dtype, truncation_cutoff).eval()
