"""The CPU inference fast path of StyleGAN2 generators: ``prepare(G) -> G``.

``zoo.models.stylegan2`` computes each layer's styles and demodulation factors from w with ~10 small
ops per layer, as the paper writes them.  At narrow widths those small ops cost as much as a
resolution's convolutions.  For inference, :func:`prepare` gives the synthesis network a forward that
takes every layer's modulation from a :class:`ModulationTable` (a few batched matmuls per network, the
constants precomputed), the same function within float32 rounding::

    G = prepare(build_generator("stylegan2-church", ch_mul="1/8").eval())
    with torch.inference_mode():
        img = G(z)

``zoo.load`` and the server apply it (through ``family_of(G).prepare``); training never does.  The
table is used only in eager eval mode without autograd and with the non-fused modulated conv: in
training mode, with autograd, or while tracing / compiling / exporting, a prepared network runs the
paper's forward (which reads the parameters themselves), so prepare never changes gradients or
exported graphs.  Parameters, buffers and the state dict are untouched (checkpoints are the same).
Figures and history: docs/performance.md ("Inference modulation table").
"""
from __future__ import annotations

import torch

from zoo.models.stylegan2 import Generator, SynthesisLayer, SynthesisNetwork, ToRGBLayer, demod_matrix

# memory the table may spend on precomputed (bias + const noise) maps, per synthesis network
OFFSET_CACHE_BYTES = 32 * 2 ** 20


def _tracing() -> bool:
    """Inside torch.jit tracing, torch.compile / torch.export or an ONNX export."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


class _ModulationGroup:
    """The layers of a ModulationTable that read the same number of channels: stacked affines
    [L, in, w_dim] (gains folded in), biases, and for the convs among them (first) the demodulation
    matrices sum_k w[o, i, k]^2 / 2, zero-padded to the group's widest output."""

    def __init__(self, layers: list, positions: list[int], ws_index: list[int], w_dim: int):
        convs = [layer for layer in layers if isinstance(layer, SynthesisLayer)]
        ref, width = layers[0].affine.weight, layers[0].affine.out_features
        self.positions, self.n_convs = positions, len(convs)
        self.out_channels = [conv.out_channels for conv in convs]
        o_max = max(self.out_channels, default=0)
        self.ws_index = torch.tensor(ws_index, device=ref.device)
        affine = ref.new_empty([len(layers), width, w_dim])
        self.bias = ref.new_empty([len(layers), 1, width])
        self.demod = ref.new_zeros([len(convs), width, o_max])
        for k, layer in enumerate(layers):
            fc, gain = layer.affine, (layer.weight_gain if isinstance(layer, ToRGBLayer) else 1.0)
            affine[k] = fc.weight * (fc.weight_gain * gain)
            self.bias[k, 0] = fc.bias * (fc.bias_gain * gain)
        for k, conv in enumerate(convs):
            self.demod[k, :, :conv.out_channels] = demod_matrix(conv.weight) / 2
        self.affine_t = affine.transpose(1, 2)

    def __call__(self, ws: torch.Tensor) -> tuple[tuple, tuple]:
        """(styles [N, in] per layer, output scales [N, out] per conv): views of two batched products."""
        picked = ws.index_select(1, self.ws_index).transpose(0, 1)            # [L, N, w_dim]
        styles = torch.baddbmm(self.bias, picked, self.affine_t)              # [L, N, in]
        if not self.n_convs:
            return styles.unbind(0), ()
        # sqrt(2) * rsqrt(s^2 . sum w^2 + 1e-8) = rsqrt(s^2 . (sum w^2 / 2) + 1e-8 / 2): demod x lrelu gain
        scales = torch.baddbmm(styles.new_full([1, 1, 1], 0.5e-8), styles[:self.n_convs].square(),
                               self.demod).rsqrt_()                           # [L_conv, N, out_max]
        o_max = scales.shape[2]
        return styles.unbind(0), tuple(s if o == o_max else s[:, :o]
                                       for s, o in zip(scales.unbind(0), self.out_channels))


class ModulationTable:
    """Inference constants of a synthesis network, so that all its styles and demodulation factors
    come from a few batched matmuls instead of ~10 small ops per layer.

    Layers are grouped by input width (:class:`_ModulationGroup`, no padding of the big affines);
    each conv's (bias + const noise) offset is precomputed per noise mode (the [C, H, W] const-noise
    maps within ``OFFSET_CACHE_BYTES``).  Built from the current parameters; ``is_current`` says
    whether every tensor it was built from is still the same object with the same data and version
    (optimiser steps, ``load_state_dict``, ``.to()`` all change that).
    """

    def __init__(self, net: SynthesisNetwork):
        layers, ws_index = [], []
        w_idx = 0
        for block in net.blocks:
            layers += [*block.convs, block.torgb]
            ws_index += [w_idx + i for i in range(block.num_conv + 1)]
            w_idx += block.num_conv
        self.kinds = ["conv" if isinstance(layer, SynthesisLayer) else "rgb" for layer in layers]
        by_width: dict[int, list[int]] = {}
        for pos, layer in enumerate(layers):  # convs first within a group
            by_width.setdefault(layer.affine.out_features, []).append(pos)
        with torch.no_grad():
            self.groups = []
            for positions in by_width.values():
                positions = sorted(positions, key=lambda p: self.kinds[p] != "conv")
                self.groups.append(_ModulationGroup([layers[p] for p in positions], positions,
                                                    [ws_index[p] for p in positions], net.w_dim))
            # const-noise offsets are [C, H, W] (two 134 MB maps at 1024 px): cached within a budget, from
            # the lowest resolution up; the rest are built when their layer runs (None)
            self.offsets = {"const": [], "none": []}
            budget = OFFSET_CACHE_BYTES
            for layer, kind in zip(layers, self.kinds):
                const = none = None
                if kind == "conv":
                    none = layer.offset("none")
                    size = layer.out_channels * layer.resolution ** 2 * layer.weight.element_size()
                    if size <= budget:
                        const, budget = layer.offset("const"), budget - size
                self.offsets["const"].append(const)
                self.offsets["none"].append(none)
        sources = []  # what it was built from: (owner dict, name, tensor, data pointer, version)
        for layer in layers:
            for module, names in ((layer.affine, ("weight", "bias")),
                                  (layer, ("weight", "bias", "noise_strength", "noise_const"))):
                for name in names:
                    owner = module._parameters if name in module._parameters else module._buffers
                    if name in owner:
                        sources.append((owner, name, owner[name], owner[name].data_ptr(), owner[name]._version))
        self.sources = sources

    def is_current(self) -> bool:
        return all(owner.get(name) is t and t.data_ptr() == ptr and t._version == version
                   for owner, name, t, ptr, version in self.sources)

    def __call__(self, ws: torch.Tensor, noise_mode: str) -> list:
        """Per layer in forward order: ``(styles [N, in], scale [N, out], offset)`` for convs, styles for toRGBs."""
        out: list = [None] * len(self.kinds)
        offsets = self.offsets["const" if noise_mode == "const" else "none"]
        for group in self.groups:
            styles, scales = group(ws)
            for k, pos in enumerate(group.positions):
                out[pos] = (styles[k], scales[k], offsets[pos]) if k < group.n_convs else styles[k]
        return out


class PreparedSynthesisNetwork(SynthesisNetwork):
    """A :class:`SynthesisNetwork` (same modules, parameters and state dict) whose eager inference
    forward reads every layer's modulation from a :class:`ModulationTable`; made by :func:`prepare`."""

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused_modconv: bool | None = None) -> torch.Tensor:
        fused = self.fused_modconv if fused_modconv is None else fused_modconv
        if fused or self.training or torch.is_grad_enabled() or _tracing():
            return super().forward(ws, noise_mode, fused_modconv)
        self.check_inputs(ws, noise_mode)
        modulations = iter(self.modulation_table()(ws, noise_mode))
        x = img = None
        for block in self.blocks:  # SynthesisBlock.forward with the table's modulations
            if block.is_first:
                x = block.const_input(ws.shape[0])
            for conv in block.convs:
                styles, scale, offset = next(modulations)
                x = conv.modulated_conv(x, styles, scale, offset, noise_mode)
            img = block.skip(img, block.torgb.modulated_conv(x, next(modulations)))
        return img

    def modulation_table(self) -> ModulationTable:
        """The table for the current parameters (rebuilt when any of them changed)."""
        table = self.__dict__.get("_modulation_table")
        if table is None or not table.is_current():
            table = self.__dict__["_modulation_table"] = ModulationTable(self)
        return table

    def _apply(self, fn, *args, **kwargs):  # .to() / .float() / .cuda(): drop the table (and its old tensors)
        self.__dict__.pop("_modulation_table", None)
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self):  # copy.deepcopy / pickle: the table is a cache, not state
        state = super().__getstate__()
        state.pop("_modulation_table", None)
        return state


def prepare(G: Generator) -> Generator:
    """``G`` with the inference fast path (in place; returns ``G``).  Idempotent.

    Only the synthesis network's class changes (to :class:`PreparedSynthesisNetwork`, a subclass with no
    state of its own), so ``G`` is still a :class:`Generator` called the same way, with the same state
    dict; it builds its table on the first eligible call.  A ``G`` that is trained afterwards keeps
    working: training mode and autograd run the paper's forward."""
    synthesis = getattr(G, "synthesis", None)
    if not isinstance(G, Generator) or not isinstance(synthesis, SynthesisNetwork):
        raise TypeError(f"prepare expects a StyleGAN2 Generator, got {type(G).__name__}")
    if type(synthesis) is SynthesisNetwork:
        synthesis.__class__ = PreparedSynthesisNetwork
    elif not isinstance(synthesis, PreparedSynthesisNetwork):
        raise TypeError(f"prepare cannot replace the forward of {type(synthesis).__name__} "
                        "(a subclass of SynthesisNetwork with its own forward)")
    return G


__all__ = ["OFFSET_CACHE_BYTES", "ModulationTable", "PreparedSynthesisNetwork", "prepare"]
