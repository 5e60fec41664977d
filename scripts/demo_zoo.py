"""Helpers of ``scripts/demo.sh`` (``make demo``): what a registry holds, and one compact table per model.

    python scripts/demo_zoo.py bundled                      # the package's bundled registry directory
    python scripts/demo_zoo.py entries --registry DIR       # name ch_mul version classes: a line per width (latest)
    python scripts/demo_zoo.py table NAME [--registry DIR]  # params, MACs, KID (with its n), latency, speedup

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


def _count(n) -> str:
    from zoo.registry.cli import format_count

    return format_count(n)


def _latency(rows, batch: int):
    """(ms, speedup vs ch_mul 1, fingerprint) of the first eager fp32 row at ``batch``; Nones if none."""
    for r in rows:
        if r.backend == "eager" and r.dtype == "fp32" and r.batch == batch and r.ms is not None:
            return r.ms, r.speedup, r.fingerprint
    return None, None, None


def table(name: str, registry: str | None) -> str:
    from zoo.latency import parse_rows, quality
    from zoo.registry.api import bundled_registry, compare, info
    from zoo.registry.cli import _table

    bundled = str(bundled_registry())
    found = sorted(compare(name, registry=registry), key=lambda r: -Fraction(r["ch_mul"]))
    full_params = next((r["params_G"] for r in found if r["ch_mul"] == "1"), None)
    rows, fingerprints = [], set()
    for r in found:
        meta = info(name, r["ch_mul"], r["version"], registry=r["registry"])["metadata"]
        bundle = meta.get("bundle") or {}
        role = "DGL-GAN student" if r["method"] == "dgl" else bundle.get("role") or r["method"] or "-"
        kid, basis = quality(meta)
        kid_text = "-" if kid is None else f"{kid:.4f}" + (f" (n={basis[1]})" if basis and basis[1] else "")
        cells = []
        for batch in (1, 8):
            ms, speedup, fp = _latency(parse_rows(meta.get("latency")), batch)
            if fp:
                fingerprints.add(fp)
            cells += ["-" if ms is None else f"{ms:.3g}",
                      "-" if speedup is None else f"{speedup:.2f}x"]
        compression = (f"{full_params / r['params_G']:.2f}x" if full_params and r["params_G"] else "-")
        where = "shipped" if r["registry"] == bundled else r["registry"]
        rows.append([r["ch_mul"], f"v{r['version']}", role, _count(r["params_G"]), compression,
                     _count(r["macs_G_paper"]), kid_text, *cells, where])
    text = _table(rows, ["ch_mul", "version", "role", "params G", "compression", "MACs G (paper)", "KID",
                         "b1 ms", "b1 speedup", "b8 ms", "b8 speedup", "registry"])
    notes = ["KID: EfficientNet-Lite0 features against the training data, n generated images (lower is better);",
             "latency: eager fp32 per call (`zoo bench`), speedup vs ch_mul 1 measured in the same run"]
    if fingerprints:
        notes[-1] += f", on {', '.join(sorted(fingerprints))}"
    return text + "\n" + "\n".join("  " + n for n in notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("bundled")
    e = sub.add_parser("entries")
    e.add_argument("--registry", default=None)
    t = sub.add_parser("table")
    t.add_argument("name")
    t.add_argument("--registry", default=None)
    args = p.parse_args(argv)
    from zoo.errors import ZooError

    try:
        if args.command == "bundled":
            from zoo.registry.api import bundled_registry

            print(bundled_registry())
        elif args.command == "entries":
            for name, ch_mul, version, classes in entries(args.registry):
                print(f"{name} {ch_mul} {version} {classes}")
        else:
            print(table(args.name, args.registry))
    except ZooError as exc:
        print(f"demo_zoo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
