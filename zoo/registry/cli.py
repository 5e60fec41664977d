"""``zoo publish | list | info | alias | verify | compare`` (each with ``--json``)."""
from __future__ import annotations

import json
from typing import Any


def _registry_arg(parser, help_extra: str = "") -> None:
    parser.add_argument("--registry", default=None,
                        help="registry URI: a directory, http(s)://... or hf://org/repo[@revision] "
                             f"(default $GANZOO_REGISTRY or $GANZOO_HOME/registry){help_extra}")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def format_count(n) -> str:
    """12.3G / 4.56M / 789k / 12: a count with an SI suffix."""
    if n is None:
        return "-"
    for unit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= unit:
            return f"{n / unit:.3g}{suffix}"
    return str(n)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) or "-"


# ---------------------------------------------------------------------------------------------- publish
def add_publish(parser) -> None:
    parser.add_argument("source",
                        help="checkpoint directory, or a training run directory holding final/ or checkpoint/")
    parser.add_argument("--name", default=None, help="entry name (default: the name in the checkpoint's config.json)")
    parser.add_argument("--ch-mul", default=None, help="width; must match the checkpoint (default: the checkpoint's)")
    parser.add_argument("--version", default=None, help="integer or semver (default: next integer)")
    parser.add_argument("--alias", action="append", default=[], help="alias to point at the new version (repeatable)")
    parser.add_argument("--no-discriminator", action="store_true", help="leave discriminator.safetensors out")
    parser.add_argument("--mlflow-uri", default=None,
                        help="also register in this MLflow Model Registry (default $MLFLOW_TRACKING_URI if set)")
    _registry_arg(parser)


def run_publish(args) -> int:
    from zoo.registry.publish import publish

    ref = publish(args.source, name=args.name, ch_mul=args.ch_mul, version=args.version, aliases=args.alias,
                  registry=args.registry, include_D=not args.no_discriminator, mlflow_uri=args.mlflow_uri)
    out = {"name": ref.name, "ch_mul": ref.ch_mul, "version": ref.version, "aliases": list(ref.aliases),
           "path": ref.path, "files": ref.files, "mlflow": ref.record.get("mlflow")}
    if args.json:
        _print_json(out)
    else:
        size = sum(f["size"] for f in ref.files.values())
        print(f"published {ref} ({len(ref.files)} files, {size / 1e6:.2f} MB) aliases: {', '.join(ref.aliases)}")
        if out["mlflow"]:
            print(f"registered in MLflow as {out['mlflow']['model_name']} version {out['mlflow']['version']}")
    return 0


# ------------------------------------------------------------------------------------------------- list
def add_list(parser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="only entries of this name")
    _registry_arg(parser)


def run_list(args) -> int:
    from zoo.registry.api import list_entries

    rows = list_entries(args.name, registry=args.registry)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no entries" + (f" named {args.name}" if args.name else ""))
        return 0
    print(_table([[r["name"], r["ch_mul"], r["version"], ",".join(r["aliases"]), format_count(r["params_G"]),
                   format_count(r["macs_G_paper"]), r["method"] or "-", _metrics_text(r["metrics"]),
                   (r["published"] or "-")[:10]] for r in rows],
                 ["name", "ch_mul", "version", "aliases", "params G", "MACs G (paper)", "method", "metrics",
                  "published"]))
    return 0


# ------------------------------------------------------------------------------------------------- info
def add_info(parser) -> None:
    parser.add_argument("name")
    parser.add_argument("--ch-mul", default="1", help="width (default 1)")
    parser.add_argument("--version", default=None, help="version or alias (default latest)")
    _registry_arg(parser)


def run_info(args) -> int:
    from zoo.registry.api import info

    data = info(args.name, args.ch_mul, args.version, registry=args.registry)
    if args.json:
        _print_json(data)
        return 0
    print(f"{data['name']}  ch_mul={data['ch_mul']}  version {data['version']}  aliases: {', '.join(data['aliases'])}")
    print(f"registry: {data['registry']}  ({data['path']}, published {data['published']})")
    if data["mlflow"]:
        ml = data["mlflow"]
        print(f"mlflow: {ml['model_name']} v{ml['version']} at {ml['tracking_uri']}")
    print("files:")
    for rel, f in sorted(data["files"].items()):
        print(f"  {rel:32s} {f['size']:>12,d}  sha256 {f['sha256']}")
    print("metadata:")
    print(json.dumps(data["metadata"], indent=2, sort_keys=True, default=str))
    return 0


# ------------------------------------------------------------------------------------------------ alias
def add_alias(parser) -> None:
    parser.add_argument("name")
    parser.add_argument("alias", help="alias name, e.g. stable ('latest' is automatic)")
    parser.add_argument("version", nargs="?", default=None, help="version (or another alias) to point at")
    parser.add_argument("--ch-mul", default="1", help="width (default 1)")
    parser.add_argument("--delete", action="store_true", help="remove the alias")
    parser.add_argument("--mlflow-uri", default=None,
                        help="mirror to this MLflow registry (default $MLFLOW_TRACKING_URI)")
    _registry_arg(parser)


def run_alias(args) -> int:
    from zoo.errors import ZooError
    from zoo.registry.api import set_alias

    if args.delete == (args.version is not None):
        raise ZooError("give a VERSION to point the alias at, or --delete (not both)")
    previous, new = set_alias(args.name, args.ch_mul, args.alias, args.version, registry=args.registry,
                              mlflow_uri=args.mlflow_uri)
    if args.json:
        _print_json({"name": args.name, "alias": args.alias, "previous": previous, "version": new})
    else:
        print(f"{args.name} ch_mul={args.ch_mul}: {args.alias} {previous or '(unset)'} -> {new or '(removed)'}")
    return 0


# ----------------------------------------------------------------------------------------------- verify
def add_verify(parser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="only entries of this name")
    _registry_arg(parser)


def run_verify(args) -> int:
    """Exit 0 when every file matches, 1 when something is missing or tampered with."""
    from zoo.registry.api import verify

    results = verify(args.name, registry=args.registry)
    if args.json:
        _print_json(results)
    else:
        for r in results:
            status = "ok" if r["ok"] else "FAILED"
            print(f"{status:6s} {r['name']} ch_mul={r['ch_mul']} v{r['version']}")
            for problem in r["problems"]:
                print(f"         {problem}")
        bad = sum(not r["ok"] for r in results)
        print(f"{len(results)} entries checked, {bad} failed")
    return 0 if all(r["ok"] for r in results) else 1


# ---------------------------------------------------------------------------------------------- compare
def add_compare(parser) -> None:
    parser.add_argument("name")
    parser.add_argument("--version", default=None, help="version or alias to compare at each width (default latest)")
    _registry_arg(parser)


def _eager_row(rows, batch: int):
    """The first eager fp32 row at ``batch`` with a time, on whatever machine measured it."""
    return next((r for r in rows if r.backend == "eager" and r.dtype == "fp32" and r.batch == batch
                 and r.ms is not None), None)


def run_compare(args) -> int:
    """The widths of one model side by side: role, size, KID with its n, eager latency and the speedup
    over ch_mul 1 measured in the same run.  Rows measured on different machines are never mixed in one
    cell unmarked: with more than one machine each time carries a tag [a], [b], ... named below."""
    from zoo.latency import parse_rows, quality
    from zoo.registry.api import bundled_registry, compare, info

    rows = compare(args.name, args.version, registry=args.registry)
    if args.json:
        _print_json(rows)
        return 0
    bundled = str(bundled_registry())
    full_params = next((r["params_G"] for r in rows if r["ch_mul"] == "1"), None)
    entries = []  # (compare row, metadata, {batch: eager row or None})
    for r in rows:
        meta = info(args.name, r["ch_mul"], r["version"], registry=r["registry"])["metadata"]
        latency = parse_rows(meta.get("latency"))
        entries.append((r, meta, {batch: _eager_row(latency, batch) for batch in (1, 8)}))
    machines: list[str] = []  # fingerprints in order of appearance: the tags
    for _, _, picked in entries:
        for row in picked.values():
            if row is not None and row.fingerprint not in machines:
                machines.append(row.fingerprint)
    table = []
    for r, meta, picked in entries:
        kid, basis = quality(meta)
        role = "DGL-GAN student" if r["method"] == "dgl" else (meta.get("bundle") or {}).get("role") \
            or r["method"] or "-"
        cells = []
        for row in picked.values():
            tag = f" [{chr(97 + machines.index(row.fingerprint))}]" if row is not None and len(machines) > 1 else ""
            cells += ["-" if row is None else f"{row.ms:.3g}{tag}",
                      "-" if row is None or row.speedup is None else f"{row.speedup:.2f}x"]
        table.append([r["ch_mul"], f"v{r['version']}", role, format_count(r["params_G"]),
                      f"{full_params / r['params_G']:.2f}x" if full_params and r["params_G"] else "-",
                      format_count(r["macs_G_paper"]),
                      "-" if kid is None else f"{kid:.4f}" + (f" (n={basis[1]})" if basis and basis[1] else ""),
                      *cells, "shipped" if r["registry"] == bundled else r["registry"]])
    print(_table(table, ["ch_mul", "version", "role", "params G", "compression", "MACs G (paper)", "KID", "b1 ms",
                         "b1 speedup", "b8 ms", "b8 speedup", "registry"]))
    print("  KID: EfficientNet-Lite0 features against the training data, n generated images (lower is better)")
    print("  latency: eager fp32 per call (`zoo bench`); speedup: vs ch_mul 1, measured in the same run on the same "
          "machine")
    for i, fingerprint in enumerate(machines):
        print(f"  {f'[{chr(97 + i)}] ' if len(machines) > 1 else 'measured on '}{fingerprint or 'an unrecorded machine'}")
    if len(machines) > 1:
        print("  times from different machines are not comparable with each other; each speedup is (same run, "
              "same machine)")
    return 0


commands = {
    "publish": (add_publish, run_publish),
    "list": (add_list, run_list),
    "info": (add_info, run_info),
    "alias": (add_alias, run_alias),
    "verify": (add_verify, run_verify),
    "compare": (add_compare, run_compare),
}
