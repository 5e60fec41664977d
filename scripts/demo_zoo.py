"""Helpers of ``scripts/demo.sh`` (``make demo``) and ``scripts/figures.sh``: what a registry holds (the
table per model is ``zoo compare NAME``).

    python scripts/demo_zoo.py bundled                      # the package's bundled registry directory
    python scripts/demo_zoo.py entries --registry DIR       # name ch_mul version classes: a line per width (latest)

``--registry`` omitted means the default chain (``$GANZOO_REGISTRY``, then the bundled entries), as
``zoo.load`` searches it.  Everything is read from the registry index and each entry's ``config.json``;
nothing is measured here.
"""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction


def _widest_first(rows):
    return sorted(rows, key=lambda r: (r["name"], -Fraction(r["ch_mul"])))


def entries(registry: str | None) -> list[tuple[str, str, str, int]]:
    """(name, ch_mul, latest version, number of classes) of every (name, width) the registry holds."""
    from zoo.checkpoint import read_config
    from zoo.registry.api import list_entries, resolve

    seen, out = set(), []
    for row in _widest_first(list_entries(registry=registry)):
        key = (row["name"], row["ch_mul"])
        if key in seen:
            continue
        seen.add(key)
        store, ref = resolve(row["name"], row["ch_mul"], None, registry)
        _, cfg = read_config(store.fetch(ref))
        classes = int(getattr(cfg, "c_dim", 0) or getattr(cfg, "n_classes", 0) or 0)
        out.append((row["name"], row["ch_mul"], str(ref.version), classes))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("bundled")
    e = sub.add_parser("entries")
    e.add_argument("--registry", default=None)
    args = p.parse_args(argv)
    from zoo.errors import ZooError

    try:
        if args.command == "bundled":
            from zoo.registry.api import bundled_registry

            print(bundled_registry())
        else:
            for name, ch_mul, version, classes in entries(args.registry):
                print(f"{name} {ch_mul} {version} {classes}")
    except ZooError as exc:
        print(f"demo_zoo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
