"""``zoo sample``: an image grid from a named configuration (random weights), a checkpoint or a zoo entry."""
from __future__ import annotations

from pathlib import Path

import torch

from zoo.errors import ZooError


def parse_seeds(text: str) -> list[int]:
    """'0-15' or '1,5,9' -> list of seeds."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ZooError(f"bad --seeds {text!r}: use e.g. '0-15' or '1,5,9'") from None
    if not seeds or min(seeds) < 0:
        raise ZooError(f"bad --seeds {text!r}: give non-negative seeds")
    return seeds


def resolve_generator(source: str, ch_mul: str, version: str | None = None):
    """A checkpoint dir, a zoo entry, or a catalogue name (random init), as an eval-mode generator."""
    from zoo.models import CATALOG, build_generator

    if Path(source).is_dir():
        from zoo.checkpoint import load_checkpoint

        return load_checkpoint(source, load_D=False).G_ema
    try:
        from zoo.registry import load
    except ImportError:
        load = None
    if load is not None:
        try:
            return load(source, ch_mul=ch_mul, version=version)
        except ZooError:
            if source not in CATALOG:
                raise
    if source in CATALOG:
        torch.manual_seed(0)
        return build_generator(source, ch_mul=ch_mul).eval()
    raise ZooError(f"{source!r} is neither a checkpoint directory, a zoo entry nor a configuration name")


def add_arguments(parser) -> None:
    parser.add_argument("source", help="checkpoint directory, zoo entry name, or configuration name (random weights)")
    parser.add_argument("--ch-mul", default="1", help="width of the zoo entry / configuration (default 1)")
    parser.add_argument("--version", default=None, help="zoo entry version or alias")
    parser.add_argument("--seeds", default="0-15", help="latent seeds, e.g. 0-15 or 1,5,9")
    parser.add_argument("--truncation", type=float, default=1.0, help="truncation psi (default 1)")
    parser.add_argument("--class", dest="label", type=int, default=None,
                        help="class for conditional models (default: cycle through the classes)")
    parser.add_argument("--out", required=True, help="output PNG path")


def run(args) -> int:
    from zoo.images import class_inputs, make_grid, save_png, seeded_latents

    seeds = parse_seeds(args.seeds)
    G = resolve_generator(args.source, args.ch_mul, args.version)
    z = seeded_latents(G, seeds)
    labels = [args.label if args.label is not None else i % max(G.c_dim, 1) for i in range(len(seeds))]
    c = class_inputs(G, labels)
    with torch.inference_mode():
        images = G(z, c, truncation_psi=args.truncation, noise_mode="const")
    path = save_png(make_grid(images), args.out)
    print(f"wrote {path} ({len(seeds)} images, {images.shape[-1]}x{images.shape[-2]})")
    return 0
