"""Parameter and MAC counts (``zoo stats``).

Two MAC conventions, always labelled:

* ``macs_G_fvcore``: multiply-accumulates fvcore counts when it traces the real module (non-fused
  modulated conv, batch 1, per image).  Elementwise ops (bias, activation, demodulation) count 0.
  This is the real cost.
* ``macs_G_paper``: the DGL-GAN paper's analytic convention (each family's ``paper_macs``, described by
  its ``paper_macs_note``), which reproduces its tables, quirks included (StyleGAN2 counts the up-conv at
  output resolution and the constant as a conv; BigGAN's counter inflates the attention term, see
  ``zoo.models.biggan``).  None for a family without one.
"""
from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import torch

from zoo.families import family_of, get_family
from zoo.models import build_discriminator, build_generator, get_config
from zoo.widths import ChMul


def count_params(module: torch.nn.Module) -> int:
    """Trainable parameters (buffers such as noise, w_avg, spectral-norm u/sv are not counted)."""
    return sum(p.numel() for p in module.parameters())


def state_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's saved state (parameters + persistent buffers, fp32): its safetensors file
    size, less the small JSON header."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def example_inputs(G) -> tuple:
    """Batch-1 inputs (z[, c]) for tracing a generator."""
    z = torch.randn(1, G.z_dim)
    if G.c_dim:
        return (z, family_of(G).condition(torch.zeros(1, dtype=torch.long), G.c_dim))
    return (z,)


def fvcore_macs(G) -> int:
    """MACs per image counted by fvcore on the eval-mode module (non-fused path, constant noise)."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(G.eval(), example_inputs(G))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


def model_stats(name: str, ch_mul: ChMul = 1, fvcore: bool = True, **overrides) -> dict[str, Any]:
    """Params of G and D and MACs of G (both conventions) for a named configuration."""
    cfg = get_config(name, ch_mul, **overrides)
    return config_stats(cfg, name=name, fvcore=fvcore)


def config_stats(cfg, name: str | None = None, fvcore: bool = True) -> dict[str, Any]:
    """As :func:`model_stats`, for an architecture config object."""
    G = build_generator(cfg)
    D = build_discriminator(cfg)
    family = get_family(cfg.family)
    stats = {
        "name": name,
        "family": cfg.family,
        "ch_mul": cfg.ch_mul,
        "resolution": cfg.resolution,
        "params_G": count_params(G),
        "params_D": count_params(D),
        "params_G_mapping": count_params(G.mapping) if hasattr(G, "mapping") else None,
        "size_G_bytes": state_bytes(G),
        "size_D_bytes": state_bytes(D),
        "macs_G_fvcore": fvcore_macs(G) if fvcore else None,
        "macs_G_paper": int(family.paper_macs(cfg)) if family.paper_macs is not None else None,
        "macs_convention": {
            "macs_G_fvcore": "fvcore FlopCountAnalysis, 1 MAC per multiply-add, batch 1, eval, non-fused",
            "macs_G_paper": family.paper_macs_note if family.paper_macs is not None else None,
        },
    }
    return stats


def add_arguments(parser) -> None:
    parser.add_argument("name", help="named configuration, e.g. stylegan2-ffhq (see `zoo stats --list`)",
                        nargs="?")
    parser.add_argument("--ch-mul", default="1", help="width multiplier: 1, 1/2, 0.25, ... (default 1)")
    parser.add_argument("--all-widths", action="store_true", help="every width the configuration ships")
    parser.add_argument("--no-fvcore", action="store_true", help="skip the fvcore trace (fast)")
    parser.add_argument("--json", action="store_true", help="print JSON (one object, or a list with --all-widths)")
    parser.add_argument("--list", action="store_true", help="list the named configurations")


def _fmt(n: int | None, unit: float, suffix: str) -> str:
    return "-" if n is None else f"{n / unit:,.2f} {suffix}"


def run(args) -> int:
    from zoo.models import CATALOG, get_spec

    if args.list or not args.name:
        for spec in CATALOG.values():
            print(f"{spec.name:24s} {spec.family:9s} ch_mul {', '.join(spec.ch_muls):18s} {spec.description}")
        return 0
    widths = get_spec(args.name).ch_muls if args.all_widths else [args.ch_mul]
    rows = [model_stats(args.name, w, fvcore=not args.no_fvcore) for w in widths]
    if args.json:
        print(json.dumps(rows if args.all_widths else rows[0], indent=2))
        return 0
    print(f"{'name':22s} {'ch_mul':>6s} {'params G':>14s} {'params D':>14s} {'MACs G (fvcore)':>16s} "
          f"{'MACs G (paper)':>15s}")
    for r in rows:
        print(f"{r['name']:22s} {r['ch_mul']:>6s} {r['params_G']:>14,d} {r['params_D']:>14,d} "
              f"{_fmt(r['macs_G_fvcore'], 1e9, 'G'):>16s} {_fmt(r['macs_G_paper'], 1e9, 'G'):>15s}")
    note = rows[0]["macs_convention"]["macs_G_paper"]
    print("\n" + (f"paper MACs: {note}.\n" if note else "") + "fvcore MACs: the real cost of the module as built.")
    return 0
