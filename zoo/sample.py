"""``zoo sample``: an image grid from a named configuration (random weights), a checkpoint or a zoo entry."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from zoo.errors import ZooError

# Latent seeds index numpy's RandomState (zoo.images.seeded_latents), which takes [0, 2**32 - 1].
MAX_SEED = 2**32 - 1
# One PNG grid: 1024 images is a 32 x 32 grid, already 32k pixels wide at 1024 px.  The cap is checked
# before a range is expanded, so '0-99999999999' is an error, not a list of 10**11 ints.
MAX_SEEDS = 1024
MAX_SCALE = 8  # for small models shown on a page: 64 images of 32 px at 8x are a 2048-px grid
# Truncation psi.  StyleGAN2: w = w_avg + psi (w - w_avg), psi = 1 is no truncation, 0 the average image,
# psi > 1 or < 0 extrapolates (published uses stay within [-1, 2]); BigGAN: psi scales z (its std, usual
# values 0.04 .. 2).  Beyond a few units the latents are far outside anything the generator was trained
# on (the images are saturated noise), and large values overflow: float32 at |psi| > ~1e38 (a
# RuntimeError deep in the model), fp16 exports much sooner (|psi * w| > 65504).  |psi| <= 10 keeps ample
# room for extrapolation experiments and rejects nan, inf and nonsense with a clear message.
MAX_ABS_TRUNCATION = 10.0


def parse_truncation(value) -> float:
    """Truncation psi as a float: a finite number with ``|psi| <= MAX_ABS_TRUNCATION``, else ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"truncation must be a number, got {value!r}")
    try:
        psi = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"truncation must be a number, got {value!r:.80}") from None
    if not math.isfinite(psi) or abs(psi) > MAX_ABS_TRUNCATION:
        raise ValueError(f"truncation psi must be a finite number in [-{MAX_ABS_TRUNCATION:g}, "
                         f"{MAX_ABS_TRUNCATION:g}] (1 = no truncation), got {value!r:.80}")
    return psi


def check_class(label: int | None, c_dim: int) -> None:
    """A class index of a conditional generator, checked before it reaches torch (where an int beyond
    int64 is an overflow RuntimeError, not a message)."""
    if label is not None and c_dim and not 0 <= label < c_dim:
        raise ValueError(f"class must be in [0, {c_dim - 1}] for this model, got {label}")


def parse_seeds(text: str) -> list[int]:
    """'0-15' or '1,5,9' -> list of seeds, each in [0, MAX_SEED], at most MAX_SEEDS of them."""
    def bad(why: str):
        raise ZooError(f"bad --seeds {text!r:.80}: {why}")

    usage = "use e.g. '0-15' or '1,5,9'"
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                span = [(lo, hi)]
            else:
                span = [(int(part), int(part))]
            for lo, hi in span:
                if lo < 0 or hi > MAX_SEED:
                    bad(f"seeds must be in [0, {MAX_SEED}]")
                if len(seeds) + hi - lo + 1 > MAX_SEEDS:
                    bad(f"at most {MAX_SEEDS} images per grid")
                seeds.extend(range(lo, hi + 1))
    except ValueError:
        bad(usage)
    if not seeds:
        bad("give non-negative seeds")
    return seeds


def resolve_generator(source: str, ch_mul: str, version: str | None = None):
    """A checkpoint dir, a zoo entry, or a catalogue name (random init), as an eval-mode generator
    prepared for inference (its family's ``prepare``: StyleGAN2's CPU fast path)."""
    from zoo.families import family_of

    G = _load_generator(source, ch_mul, version)
    return family_of(G).prepare(G)


def _load_generator(source: str, ch_mul: str, version: str | None):
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
    parser.add_argument("--truncation", type=float, default=1.0,
                        help=f"truncation psi in [-{MAX_ABS_TRUNCATION:g}, {MAX_ABS_TRUNCATION:g}] (default 1 = none)")
    parser.add_argument("--class", dest="label", type=int, default=None,
                        help="class for conditional models (default: cycle through the classes)")
    parser.add_argument("--cols", type=int, default=None,
                        help="images per row (default: a square grid; 10 puts one class per column for 10 classes)")
    parser.add_argument("--scale", type=int, default=1,
                        help=f"nearest-neighbour upscale of every pixel, 1..{MAX_SCALE} (default 1)")
    parser.add_argument("--out", required=True, help="output PNG path")


def run(args) -> int:
    from zoo.images import class_inputs, make_grid, save_png, seeded_latents

    seeds = parse_seeds(args.seeds)
    psi = parse_truncation(args.truncation)  # all numeric input is checked before any weights are loaded
    if not 1 <= args.scale <= MAX_SCALE:
        raise ZooError(f"--scale must be in [1, {MAX_SCALE}], got {args.scale}")
    if args.cols is not None and not 1 <= args.cols <= len(seeds):
        raise ZooError(f"--cols must be in [1, {len(seeds)}] (the number of images), got {args.cols}")
    G = resolve_generator(args.source, args.ch_mul, args.version)
    check_class(args.label, G.c_dim)
    z = seeded_latents(G, seeds)
    labels = [args.label if args.label is not None else i % max(G.c_dim, 1) for i in range(len(seeds))]
    c = class_inputs(G, labels)
    with torch.inference_mode():
        images = G(z, c, truncation_psi=psi, noise_mode="const")
    path = save_png(make_grid(images, cols=args.cols, scale=args.scale), args.out)
    print(f"wrote {path} ({len(seeds)} images, {images.shape[-1]}x{images.shape[-2]})")
    return 0
