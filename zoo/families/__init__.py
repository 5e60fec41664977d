"""The GAN-family contract: everything the pipeline needs to know about one architecture family.

A family is one module that ends with one line, ``register_family(GANFamily(...))``.  The pipeline
(training, export, registry, serving) asks the family object and never branches on a family's name.
Built-in families are listed in :data:`BUILTIN`; families outside the package are discovered through the
Python entry-point group ``zoo.families`` (an entry point names a module; importing it registers)::

    [project.entry-points."zoo.families"]
    dcgan = "my_dcgan.family"

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
class GANFamily:
    """One GAN architecture family.

    name:          the ``family`` field of every config.json of this family.
    Config:        frozen dataclass (``zoo.models.base.ArchConfig``) describing one network pair exactly.
    Generator, Discriminator: ``cls(config) -> nn.Module``.
    label_format:  how class labels condition G and D: ``"index"`` (int64 [N], BigGAN's shared embedding)
                   or ``"onehot"`` (float [N, c_dim], StyleGAN2's mapping input).
    reference:     the implementation this family follows (model cards, Hub cards).
    paper_macs:    ``config -> int``, generator MACs per image in the paper's counting convention, or None.
    paper_macs_note: what that convention counts (printed beside the number).
    d_first:       the training step runs D's phases before G's (BigGAN-PyTorch) instead of after.
    ema_averages_buffers: G_ema averages floating buffers too (BigGAN-PyTorch: BN stats, SN u) instead of
                   copying them (StyleGAN2-ADA).
    prepare:       ``G -> G`` for inference (a CPU fast path, say); ``zoo.load`` and the server apply it to
                   an eval-mode generator; training never does.
    """

    name: str
    Config: type
    Generator: Callable[[Any], Any]
    Discriminator: Callable[[Any], Any]
    label_format: Literal["index", "onehot"] = "onehot"
    reference: str = ""
    paper_macs: Callable[[Any], int] | None = None
    paper_macs_note: str = ""
    d_first: bool = False
    ema_averages_buffers: bool = False
    prepare: Callable[[Any], Any] = _identity
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
    known = _REGISTRY.get(family.name)
    if known is not None and known is not family and known.Config is not family.Config:
        raise ValueError(f"GAN family {family.name!r} is registered twice ({known.Config.__module__} and "
                         f"{family.Config.__module__})")
    _REGISTRY[family.name] = family
    return family


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
    """Every known family by name."""
    _discover()
    return dict(_REGISTRY)


def family_of(net) -> GANFamily:
    """The family of a network built by one (its ``config.family``)."""
    config = getattr(net, "config", None)
    name = getattr(config, "family", None)
    if name is None:
        raise ValueError(f"{type(net).__name__} has no config.family: not built by a registered GAN family")
    return get_family(name)


__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "GANFamily", "families", "family_of", "get_family", "register_family"]
