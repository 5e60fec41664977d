"""``zoo data``: build the embedded datasets, import your own images, describe a dataset.

    zoo data build emoji --res 64 --subset portrait --out data/emoji-portrait-64
    zoo data build emoji --res 32 --subset groups --out data/emoji-groups-32
    zoo data build fashion-mnist --res 32 --out data/fashion-mnist-32
    zoo data import my_photos.zip --res 64 --out data/mine-64
    zoo data info data/emoji-portrait-64 [--json]
"""
from __future__ import annotations

import argparse
import json
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,import,info}")

    build = sub.add_parser("build", help="build an embedded dataset (emoji, fashion-mnist)",
                           description="Build an embedded dataset from installed Debian packages (no network).")
    build.add_argument("kind", choices=["emoji", "fashion-mnist"])
    build.add_argument("--res", type=int, default=None,
                       help="resolution in pixels (emoji: default 64; fashion-mnist: default 32)")
    build.add_argument("--subset", choices=["portrait", "groups", "all"], default="portrait",
                       help="emoji only: portrait (faces/people, unlabelled), groups (9 labelled groups, no "
                            "skin-tone variants) or all (every unique emoji, labelled by group)")
    build.add_argument("--split", choices=["all", "train", "test"], default="all",
                       help="fashion-mnist only: which images (default all 70,000)")
    build.add_argument("--source", default=None, help="fashion-mnist only: directory of the idx files "
                                                      "(default /usr/share/datasets/fashion-mnist)")
    build.add_argument("--limit", type=int, default=None, help="emoji only: keep the first N emoji (quick looks)")
    _common(build)

    imp = sub.add_parser("import", help="import an image folder or zip", description=(
        "Import your own images (a folder, searched recursively, or a zip). Labels come from a dataset.json "
        "(StyleGAN2-ADA convention) or from sub-directory names. Unreadable files are skipped and counted."))
    imp.add_argument("src", help="image folder or .zip")
    imp.add_argument("--res", type=int, required=True, help="output resolution (square)")
    imp.add_argument("--channels", type=int, choices=[1, 3], default=None,
                     help="1 (grey) or 3 (RGB); default: 1 if every image is greyscale, else 3")
    imp.add_argument("--fit", choices=["crop", "pad"], default="crop",
                     help="make non-square images square by centre crop (default) or white padding")
    imp.add_argument("--labels-from-dirs", action="store_true",
                     help="use the first-level sub-directory names as class labels")
    imp.add_argument("--name", default=None, help="dataset name recorded in the manifest")
    _common(imp)

    info = sub.add_parser("info", help="describe a dataset directory")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.add_argument("--no-verify", action="store_true", help="do not re-hash the content")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output directory (default: data/<dataset name>)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _default_name(args) -> str:
    if args.action == "import":
        from pathlib import Path

        return args.name or f"{Path(args.src).stem}-{args.res}"
    if args.kind == "emoji":
        return f"emoji-{args.subset}-{args.res}"
    return f"fashion-mnist-{args.res}" + ("" if args.split == "all" else f"-{args.split}")


def run(args) -> int:
    from zoo.train.data import build_dataset, load_dataset

    if args.action == "info":
        ds = load_dataset(args.path, verify=not args.no_verify)
        if args.json:
            print(json.dumps(ds.manifest, indent=2, ensure_ascii=False))
        else:
            print(_summary(ds))
        return 0
    if args.action == "build":
        if args.res is None:
            args.res = 64 if args.kind == "emoji" else 32
        params = {"resolution": args.res}
        if args.kind == "emoji":
            params.update(subset=args.subset, limit=args.limit, progress=not args.quiet)
        else:
            params.update(split=args.split, **({"source": args.source} if args.source else {}))
        kind = args.kind
    else:
        params = dict(src=args.src, resolution=args.res, channels=args.channels, fit=args.fit,
                      labels_from_dirs=args.labels_from_dirs, name=args.name, progress=not args.quiet)
        kind = "import"
    out = args.out or f"data/{_default_name(args)}"
    t0 = time.perf_counter()
    ds = build_dataset(kind, out, overwrite=args.force, **params)
    print(_summary(ds))
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _summary(ds) -> str:
    m = ds.manifest
    lines = [f"{ds.name}: {len(ds)} images, {ds.resolution}x{ds.resolution}, {ds.channels} channel(s), "
             f"{ds.num_classes or 'no'} classes",
             f"  sha256 {ds.sha256}"]
    if ds.num_classes:
        counts = m.get("class_counts") or [0] * ds.num_classes
        lines.append("  classes: " + ", ".join(f"{n} ({c})" for n, c in zip(ds.label_names, counts)))
    build, source = m.get("build", {}), m.get("source", {})
    if build.get("not_ligated") or build.get("duplicates_removed"):
        lines.append(f"  skipped: {build.get('not_ligated', 0)} not ligated, "
                     f"{build.get('duplicates_removed', 0)} duplicate renders")
    if source.get("files_skipped"):
        lines.append(f"  skipped {source['files_skipped']} unreadable file(s), e.g. {source['skipped'][0]}")
    return "\n".join(lines)
