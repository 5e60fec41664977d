"""``zoo import``: turn an official StyleGAN2 / BigGAN file into a zoo checkpoint directory."""
from __future__ import annotations

import argparse

from zoo.convert import FORMAT_HELP, FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="the file to import (.pkl, .pt, G.pth / G_ema.pth)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="source format (default: detected). " +
                             "; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()))
    parser.add_argument("--d", dest="d", metavar="SRC_D", default=None,
                        help="BigGAN-PyTorch only: the discriminator D.pth (needed to use the import as a teacher)")
    parser.add_argument("--g-ema", dest="g_ema", metavar="SRC_GEMA", default=None,
                        help="BigGAN-PyTorch only: G_ema.pth, when SRC is the raw G.pth")
    parser.add_argument("--out", required=True, help="checkpoint directory to create (must not exist)")


def run(args: argparse.Namespace) -> int:
    from zoo.convert import import_to_dir

    ckpt = import_to_dir(args.src, args.out, format=args.format, d=args.d, g_ema=args.g_ema)
    meta = ckpt.metadata
    print(f"format:   {meta['source']['description']} ({meta['source']['format']})")
    labels = {"src": "source", "d": "--d", "g_ema": "--g-ema"}
    for role, info in meta["source"]["files"].items():
        print(f"{labels[role] + ':':9} {info['file']}  sha256 {info['sha256'][:16]}...  "
              f"({info['size'] / 2 ** 20:.1f} MiB)")
    print("found:")
    for key, value in meta["found"].items():
        print(f"  {key}: {value}")
    for name in ("G_ema", "G", "D"):
        module = getattr(ckpt, name)
        if module is not None and (name != "G" or module is not ckpt.G_ema):
            print(f"  {name} parameters: {sum(p.numel() for p in module.parameters()):,}")
    for note in meta["notes"]:
        print(f"note:     {note}")
    if meta["matches_config"]:
        print(f"matches:  the full-width (ch_mul 1) {meta['matches_config']} architecture: use it as that "
              f"configuration's teacher, or publish it as its ch_mul=1 entry")
    print(f"licence:  {meta['licence']}")
    print(f"wrote {ckpt.path}")
    return 0
