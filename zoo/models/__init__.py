"""Architectures and the catalogue of named configurations.

A *named configuration* (``stylegan2-ffhq``, ``biggan-imagenet``, ``stylegan2-emoji``, ...) fixes an
architecture at full width; ``ch_mul`` divides its widths the way DGL-GAN does.  Each GAN family
(``zoo.families``) brings its networks and its catalogue entries; :data:`CATALOG` is the union of them:

    >>> from zoo.models import build_generator, get_config
    >>> cfg = get_config("stylegan2-ffhq", ch_mul="1/2")
    >>> G = build_generator("stylegan2-ffhq", ch_mul=0.5)
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

from zoo.families import GANFamily, ModelSpec, families, get_family
from zoo.widths import ChMul, format_ch_mul, parse_ch_mul


class _Catalogue(Mapping[str, ModelSpec]):
    """Every registered family's catalogue entries by name, read when first asked (registering the
    families imports torch, which ``import zoo.models`` must not)."""

    def _entries(self) -> dict[str, ModelSpec]:
        return {spec.name: spec for family in families().values() for spec in family.catalogue}

    def __getitem__(self, name: str) -> ModelSpec:
        return self._entries()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __repr__(self) -> str:
        return f"CATALOG({', '.join(self)})"


CATALOG: Mapping[str, ModelSpec] = _Catalogue()


def list_configs() -> list[str]:
    """Names of the catalogue's configurations."""
    return list(CATALOG)


def get_spec(name: str) -> ModelSpec:
    if name not in CATALOG:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CATALOG)}")
    return CATALOG[name]


def get_config(name: str, ch_mul: ChMul = 1, **overrides):
    """The architecture config of a named configuration at width ``ch_mul``.

    ``ch_mul`` must be one of the widths the configuration ships (an unsupported value is an error,
    never a silently different network).  ``overrides`` replace architecture fields (e.g. for tests).
    """
    spec = get_spec(name)
    frac = parse_ch_mul(ch_mul)
    if format_ch_mul(frac) not in spec.ch_muls:
        raise ValueError(
            f"ch_mul={format_ch_mul(frac)} is not a supported width of {name}; supported: {', '.join(spec.ch_muls)}"
        )
    return get_family(spec.family).Config(**{**spec.arch, **overrides, "ch_mul": format_ch_mul(frac)})


def config_from_dict(data: dict[str, Any]):
    """Rebuild an architecture config from its ``to_dict()`` form (as stored in config.json)."""
    data = dict(data)
    family = data.pop("family", None)
    if family is None:
        raise ValueError("architecture config has no 'family' field")
    return get_family(family).Config.from_dict(data)


def _resolve_config(name_or_config, ch_mul: ChMul, overrides: dict):
    if isinstance(name_or_config, str):
        return get_config(name_or_config, ch_mul, **overrides)
    if overrides:
        raise ValueError("overrides are only accepted together with a configuration name")
    return name_or_config


def build_generator(name_or_config, ch_mul: ChMul = 1, **overrides):
    """A freshly initialised generator for a named configuration (or a config object)."""
    cfg = _resolve_config(name_or_config, ch_mul, overrides)
    return get_family(cfg.family).build_generator(cfg)


def build_discriminator(name_or_config, ch_mul: ChMul = 1, **overrides):
    """A freshly initialised discriminator for a named configuration (or a config object)."""
    cfg = _resolve_config(name_or_config, ch_mul, overrides)
    return get_family(cfg.family).build_discriminator(cfg)


__all__ = [
    "CATALOG", "ModelSpec", "build_discriminator", "build_generator", "config_from_dict",
    "get_config", "get_spec", "list_configs", "Fraction",
]
