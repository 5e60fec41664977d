"""Architectures and the catalogue of named configurations.

A *named configuration* (``stylegan2-ffhq``, ``biggan-imagenet``, ``stylegan2-emoji``, ...) fixes an
architecture at full width; ``ch_mul`` divides its widths the way DGL-GAN does.  The catalogue is
data (:data:`CATALOG`), one family module per architecture builds the networks:

    >>> from zoo.models import build_generator, get_config
    >>> cfg = get_config("stylegan2-ffhq", ch_mul="1/2")
    >>> G = build_generator("stylegan2-ffhq", ch_mul=0.5)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from zoo.widths import ChMul, format_ch_mul, parse_ch_mul

# family name -> module providing `Config`, `Generator`, `Discriminator`
FAMILIES = {"stylegan2": "zoo.models.stylegan2", "biggan": "zoo.models.biggan"}


@dataclass(frozen=True)
class ModelSpec:
    """One named configuration: a full-width architecture plus the widths DGL-GAN ships."""

    name: str
    family: str
    arch: dict[str, Any]
    ch_muls: tuple[str, ...]
    dataset: str
    description: str
    paper: dict[str, Any] = field(default_factory=dict)  # published figures, for reference only


_SG2_PAPER_CHMULS = ("1", "1/2", "1/4", "1/8")
_BIGGAN_PAPER_CHMULS = ("1", "1/2", "1/3", "1/4")

CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="stylegan2-ffhq",
            family="stylegan2",
            arch=dict(resolution=1024, channel_base=32768, channel_max=512, mapping_layers=8),
            ch_muls=_SG2_PAPER_CHMULS,
            dataset="FFHQ 1024x1024 (not embedded: import the official teacher)",
            description="StyleGAN2 config F at 1024 px, the paper's FFHQ target (Table 2).",
            paper=dict(params_G_M=[30.37, 11.08, 5.39, 3.55], macs_G_paper_G=[142.02, 35.61, 8.97, 2.28],
                       speedup_v100_b48=[1.0, 2.22, 3.47, 4.38]),
        ),
        ModelSpec(
            name="stylegan2-church",
            family="stylegan2",
            arch=dict(resolution=256, channel_base=32768, channel_max=512, mapping_layers=8),
            ch_muls=_SG2_PAPER_CHMULS,
            dataset="LSUN church 256x256 (not embedded: import the official teacher)",
            description="StyleGAN2 config F at 256 px, the paper's LSUN-church target (Table 3).",
            paper=dict(params_G_M=[30.03, 10.93, 5.33, 3.52], macs_G_paper_G=[83.79, 20.99, 5.28, 1.34]),
        ),
        ModelSpec(
            name="biggan-imagenet",
            family="biggan",
            arch=dict(resolution=128, n_classes=1000, G_ch=96, D_ch=96, dim_z=120, shared_dim=128,
                      G_attn="64", D_attn="64"),
            ch_muls=_BIGGAN_PAPER_CHMULS,
            dataset="ImageNet 128x128 (not embedded: import the BigGAN-PyTorch teacher)",
            description="BigGAN at 128 px (BigGAN-PyTorch launch_BigGAN_bs256x8), the paper's ImageNet target (Table 4).",
            paper=dict(params_G_M=[70.33, 18.38, 8.54, 5.03], macs_G_paper_G=[432.98, 211.35, 139.76, 104.39]),
        ),
        ModelSpec(
            name="stylegan2-emoji",
            family="stylegan2",
            arch=dict(resolution=64, channel_base=8192, channel_max=128, mapping_layers=2),
            ch_muls=_SG2_PAPER_CHMULS,
            dataset="emoji-portrait-64 (built offline by `zoo data build emoji`)",
            description=(
                "Embedded StyleGAN2 at 64 px (channel_base 8192, channel_max 128, 2 mapping layers, ~2.8 M "
                "params): the FFHQ stand-in, small enough for a 2-core CPU to train a teacher in about an hour."
            ),
        ),
        ModelSpec(
            name="biggan-emoji",
            family="biggan",
            arch=dict(resolution=32, n_classes=9, G_ch=48, D_ch=48, dim_z=120, shared_dim=128,
                      G_attn="16", D_attn="16"),
            ch_muls=_BIGGAN_PAPER_CHMULS,
            dataset="emoji-groups-32 (9 Unicode emoji groups, built offline by `zoo data build emoji`)",
            description=(
                "Embedded class-conditional BigGAN at 32 px with 9 classes and G_ch = D_ch = 48 (so 1/2, 1/3 and "
                "1/4 give whole widths 24/16/12): the ImageNet stand-in."
            ),
        ),
        ModelSpec(
            name="stylegan2-fashion-mnist",
            family="stylegan2",
            arch=dict(resolution=32, img_channels=1, channel_base=4096, channel_max=128, mapping_layers=2),
            ch_muls=_SG2_PAPER_CHMULS,
            dataset="fashion-mnist-32 (Debian dataset-fashion-mnist, 70k images, built by `zoo data build fashion-mnist`)",
            description="Embedded unconditional StyleGAN2 at 32 px, 1 channel: a large real dataset for metric noise floors.",
        ),
        ModelSpec(
            name="biggan-fashion-mnist",
            family="biggan",
            arch=dict(resolution=32, img_channels=1, n_classes=10, G_ch=48, D_ch=48, dim_z=120, shared_dim=128,
                      G_attn="16", D_attn="16"),
            ch_muls=_BIGGAN_PAPER_CHMULS,
            dataset="fashion-mnist-32 (10 classes)",
            description="Embedded class-conditional BigGAN at 32 px, 1 channel, 10 classes.",
        ),
    ]
}


def family_module(family: str):
    """The module implementing an architecture family (`Config`, `Generator`, `Discriminator`)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[family])


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
    module = family_module(spec.family)
    return module.Config(**{**spec.arch, **overrides, "ch_mul": format_ch_mul(frac)})


def config_from_dict(data: dict[str, Any]):
    """Rebuild an architecture config from its ``to_dict()`` form (as stored in config.json)."""
    data = dict(data)
    family = data.pop("family", None)
    if family is None:
        raise ValueError("architecture config has no 'family' field")
    return family_module(family).Config.from_dict(data)


def _resolve_config(name_or_config, ch_mul: ChMul, overrides: dict):
    if isinstance(name_or_config, str):
        return get_config(name_or_config, ch_mul, **overrides)
    if overrides:
        raise ValueError("overrides are only accepted together with a configuration name")
    return name_or_config


def build_generator(name_or_config, ch_mul: ChMul = 1, **overrides):
    """A freshly initialised generator for a named configuration (or a config object)."""
    cfg = _resolve_config(name_or_config, ch_mul, overrides)
    return family_module(cfg.family).Generator(cfg)


def build_discriminator(name_or_config, ch_mul: ChMul = 1, **overrides):
    """A freshly initialised discriminator for a named configuration (or a config object)."""
    cfg = _resolve_config(name_or_config, ch_mul, overrides)
    return family_module(cfg.family).Discriminator(cfg)


__all__ = [
    "CATALOG", "FAMILIES", "ModelSpec", "build_discriminator", "build_generator", "config_from_dict",
    "family_module", "get_config", "get_spec", "list_configs", "Fraction",
]
