"""The GAN-family contract: everything the pipeline needs to know about one architecture family.

A family is one module that ends with one line, ``register_family(GANFamily(...))``.  The pipeline
(training, export, registry, serving) asks the family object and never branches on a family's name.
Built-in families are listed in :data:`BUILTIN`; families outside the package are discovered through the
Python entry-point group ``zoo.families`` (an entry point names a module; importing it registers)::

    [project.entry-points."zoo.families"]
    dcgan = "my_dcgan.family"

A family's networks follow one calling convention, which training, export, ``zoo.load`` and the server
rely on: ``G(z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="const")`` -> images NCHW
in [-1, 1], with attributes ``z_dim``, ``c_dim``, ``img_resolution``, ``img_channels`` and ``config``;
``D(img, c=None)`` -> logits [N] or [N, 1].  Configs subclass ``zoo.models.base.ArchConfig`` with
fields ``resolution``, ``img_channels`` and ``ch_mul``.

>>> from zoo.families import get_family
>>> get_family("stylegan2").label_format
'onehot'
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

ENTRY_POINT_GROUP = "zoo.families"
# name -> module; importing the module registers the family
BUILTIN = {"stylegan2": "zoo.families.stylegan2", "biggan": "zoo.families.biggan"}


def _identity(G):
    return G


@dataclass(frozen=True)
class ModelSpec:
    """One named configuration of a family's catalogue: a full-width architecture plus the widths it ships.

    arch:     ``Config`` fields at full width (``ch_mul`` is given separately).
    ch_muls:  the widths a user may ask for (``"1"``, ``"1/2"``, ...); any other is an error.
    paper:    published figures, for reference only.
    default_data: (dataset directory relative to the working directory, the command that builds it) that
              ``zoo train`` uses without ``--data``; None: the data is not embedded (``--data`` required).
    """

    name: str
    family: str
    arch: dict[str, Any]
    ch_muls: tuple[str, ...]
    dataset: str
    description: str
    paper: dict[str, Any] = field(default_factory=dict)
    default_data: tuple[str, str] | None = None


def _cast_all(G, dtype) -> None:
    G.to(dtype)


def _call_generator(G, z, c, psi, *, dtype, truncation_cutoff):
    """The generator's own call with constant noise, the whole computation in ``dtype``."""
    z = z.to(dtype)
    if c is not None and c.is_floating_point():
        c = c.to(dtype)
    if psi is not None:
        return G(z, c, truncation_psi=psi.to(dtype), truncation_cutoff=truncation_cutoff, noise_mode="const")
    return G(z, c, noise_mode="const")


@dataclass(frozen=True)
class ExportHints:
    """How ``zoo.export`` turns a family's eval-mode generator into one traceable graph ``(z[, c][, psi]) -> img``.

    psi_input:  the graph takes the truncation ``psi`` as an input ``[N] float32`` (the generator must then
                accept a per-sample tensor as ``truncation_psi``); False: no psi in the graph.
    cast:       ``(G, dtype) -> None``: move the parts that run in the export dtype (in place); the rest
                stays fp32.
    fp16_parts: what an fp16 export runs in fp16, as export.json records it.
    generate:   ``(G, z, c, psi, *, dtype, truncation_cutoff) -> img``, the traced function; ``c`` is None
                for an unconditional model, ``psi`` None without ``psi_input``.
    """

    psi_input: bool = False
    cast: Callable[[Any, Any], None] = _cast_all
    fp16_parts: str = "fp16"
    generate: Callable[..., Any] = _call_generator


def _config_signature(config) -> tuple:
    """Every field but the width rule: two configs with equal signatures build the same network."""
    data = config.to_dict()
    data.pop("ch_mul", None)
    return tuple(sorted(data.items()))


@dataclass(frozen=True)
class GANFamily:
    """One GAN architecture family.

    name:          the ``family`` field of every config.json of this family.
    Config:        frozen dataclass (``zoo.models.base.ArchConfig``) describing one network pair exactly.
    Generator, Discriminator: ``cls(config) -> nn.Module``.
    label_format:  how class labels condition G and D: ``"index"`` (int64 [N], BigGAN's shared embedding)
                   or ``"onehot"`` (float [N, c_dim], StyleGAN2's mapping input).
    class_conditional: every network of the family takes class labels (BigGAN); False where that depends
                   on the config (StyleGAN2's c_dim) or never happens.  Hub cards tag such entries.
    reference:     the implementation this family follows (model cards, Hub cards).
    paper_macs:    ``config -> int``, generator MACs per image in the paper's counting convention, or None.
    paper_macs_note: what that convention counts (printed beside the number).
    d_first:       the training step runs D's phases before G's (BigGAN-PyTorch) instead of after.
    ema_averages_buffers: G_ema averages floating buffers too (BigGAN-PyTorch: BN stats, SN u) instead of
                   copying them (StyleGAN2-ADA).
    loss:          the adversarial objective the training loop calls per phase, a
                   ``zoo.families.losses.AdversarialLoss`` (g_adv, d_adv, dgl_term); None = not trainable.
    prepare:       ``G -> G`` for inference (a CPU fast path, say); ``zoo.load`` and the server apply it to
                   an eval-mode generator; training never does.
    catalogue:     the family's named configurations (``zoo.models.get_config(name, ch_mul)`` builds them).
    presets:       training presets as plain data, ``{config name: {preset: {TrainConfig field: value}}}``;
                   ``stage1_kimg`` / ``stage2_kimg`` may be ``{ch_mul: kimg}`` tables (``zoo.train.config``).
    export:        :class:`ExportHints`.
    signature:     ``config -> tuple``: what determines the network's function (widths as built, not the
                   rule that produced them); ``zoo import`` matches imported weights to the catalogue with it.
    """

    name: str
    Config: type
    Generator: Callable[[Any], Any]
    Discriminator: Callable[[Any], Any]
    label_format: Literal["index", "onehot"] = "onehot"
    class_conditional: bool = False
    reference: str = ""
    paper_macs: Callable[[Any], int] | None = None
    paper_macs_note: str = ""
    d_first: bool = False
    ema_averages_buffers: bool = False
    loss: Any = None
    prepare: Callable[[Any], Any] = _identity
    catalogue: tuple[ModelSpec, ...] = ()
    presets: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    export: ExportHints = ExportHints()
    signature: Callable[[Any], tuple] = _config_signature
    extras: Mapping[str, Any] = field(default_factory=dict)

    def build_generator(self, config):
        return self.Generator(config)

    def build_discriminator(self, config):
        return self.Discriminator(config)

    def condition(self, labels, n_classes: int):
        """Class labels (int64 [N]) as this family's G and D take them; None when unconditional."""
        if labels is None or not n_classes:
            return None
        if self.label_format == "index":
            return labels
        import torch

        return torch.nn.functional.one_hot(labels.long(), n_classes).float()


_REGISTRY: dict[str, GANFamily] = {}
_discovered = False


def register_family(family: GANFamily) -> GANFamily:
    """Make ``family`` known under ``family.name`` (the last line of a family module)."""
    if not isinstance(family, GANFamily):
        raise TypeError(f"register_family expects a GANFamily, got {type(family).__name__}")
    _check_family(family)
    known = _REGISTRY.get(family.name)
    if known is not None and known is not family and known.Config is not family.Config:
        raise ValueError(f"GAN family {family.name!r} is registered twice ({known.Config.__module__} and "
                         f"{family.Config.__module__})")
    _REGISTRY[family.name] = family
    return family


def _check_family(family: GANFamily) -> None:
    """A family's data agrees with itself and with the families registered before it."""
    if getattr(family.Config, "family", None) != family.name:
        raise ValueError(f"GAN family {family.name!r}: its Config says family = "
                         f"{getattr(family.Config, 'family', None)!r}")
    if family.label_format not in ("index", "onehot"):
        raise ValueError(f"GAN family {family.name!r}: label_format must be 'index' or 'onehot', "
                         f"got {family.label_format!r}")
    names = [spec.name for spec in family.catalogue]
    if len(set(names)) != len(names):
        raise ValueError(f"GAN family {family.name!r}: a catalogue name appears twice ({', '.join(names)})")
    for spec in family.catalogue:
        if spec.family != family.name:
            raise ValueError(f"catalogue entry {spec.name!r} says family {spec.family!r}, registered by "
                             f"{family.name!r}")
        owner = next((f.name for f in _REGISTRY.values() if f.name != family.name
                      and any(s.name == spec.name for s in f.catalogue)), None)
        if owner is not None:
            raise ValueError(f"catalogue entry {spec.name!r} of family {family.name!r} is already one of {owner!r}")
    unknown = sorted(set(family.presets) - set(names))
    if unknown:
        raise ValueError(f"GAN family {family.name!r} has presets for {', '.join(unknown)}, not in its catalogue")


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in BUILTIN.values():
        importlib.import_module(module)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            ep.load()
        except Exception as exc:  # an outside package must not break the built-in families
            import warnings

            warnings.warn(f"GAN family entry point {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)


def get_family(name: str) -> GANFamily:
    """The registered family called ``name`` (built-in or from an installed entry point)."""
    if name not in _REGISTRY:
        _discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(families()))}")
    return _REGISTRY[name]


def families() -> dict[str, GANFamily]:
    """Every known family by name: the built-in ones first (in :data:`BUILTIN` order), then the others by name."""
    _discover()
    order = list(BUILTIN) + sorted(set(_REGISTRY) - set(BUILTIN))
    return {name: _REGISTRY[name] for name in order if name in _REGISTRY}


def family_of(net) -> GANFamily:
    """The family of a network built by one (its ``config.family``)."""
    config = getattr(net, "config", None)
    name = getattr(config, "family", None)
    if name is None:
        raise ValueError(f"{type(net).__name__} has no config.family: not built by a registered GAN family")
    return get_family(name)


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "ExportHints", "GANFamily", "ModelSpec", "families", "family_of",
           "get_family", "register_family"]
