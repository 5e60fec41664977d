"""What can be served: registry entries and checkpoints pinned on the command line, nothing else.

A request names a model, a width and optionally a version or alias; :meth:`Catalog.find` resolves that
to a :class:`Variant` or raises a 404 :class:`~serve.core.Problem` listing what exists.  A request never
names a path: a model name is only ever looked up in this catalogue.

The registry's index is read by :meth:`Catalog.refresh` (blocking I/O: the app calls it from a worker
thread, never on the event loop) and kept as a snapshot; a slow or unreachable registry keeps the last
snapshot and is reported by ``/readyz``.  Pinned checkpoints are read once, at start.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from zoo.serve.core import Problem, short
from zoo.errors import ZooError

log = logging.getLogger("serve")
PINNED = "pinned"


@dataclass(eq=False)
class Variant:
    """One servable (model, width, version).  ``version`` is None for a pinned checkpoint."""

    model: str
    ch_mul: str
    version: str | None
    source: str                      # "registry" or "pinned"
    metadata: dict[str, Any]
    aliases: tuple[str, ...] = ()
    config_sha256: str | None = None
    path: Path | None = None         # pinned only; never shown to clients
    store: Any = None                # registry only: the store it is loaded from
    facts: dict[str, Any] = field(default_factory=dict)  # family, resolution, c_dim, params... when known

    @property
    def key(self) -> str:
        """Stable text key ("model|ch_mul|version"): metrics label, Ray multiplexed model id."""
        return f"{self.model}|{self.ch_mul}|{self.version or PINNED}"

    @property
    def label(self) -> str:
        return f"{self.model} ch_mul={self.ch_mul}" + (f" v{self.version}" if self.version else " (pinned)")

    @property
    def family(self) -> str | None:
        return self.facts.get("family") or self.metadata.get("family")

    def public(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says about it (no server path)."""
        from zoo.latency import parse_rows, quality
        from zoo.registry.model import headline

        head = headline(self.metadata)
        kid, key = quality(self.metadata)
        out = {"model": self.model, "ch_mul": self.ch_mul, "version": self.version, "aliases": list(self.aliases),
               "source": self.source, "family": self.family,
               "resolution": self.facts.get("resolution") or head.get("resolution"),
               "c_dim": self.facts.get("c_dim"), "z_dim": self.facts.get("z_dim"),
               "params_G": head.get("params_G") or self.facts.get("params_G"),
               "macs_G_paper": head.get("macs_G_paper") or self.facts.get("macs_G_paper"),
               "macs_G_fvcore": head.get("macs_G_fvcore"), "method": head.get("method"),
               "metrics": head.get("metrics") or {},
               "quality": {"kid": kid, "data_sha256": key[0] if key else None, "n": key[1] if key else None},
               "latency": [r.to_dict() for r in parse_rows(self.metadata.get("latency"))]}
        return out


def _pinned_variant(name: str, path: Path) -> Variant:
    """A pinned checkpoint directory as a Variant (config read, architecture counted on the meta device)."""
    import torch

    from zoo.checkpoint import read_config
    from zoo.families import get_family
    from zoo.integrity import read_json, read_manifest, sha256_file
    from zoo.models import build_generator

    _, cfg = read_config(path)
    meta = read_json(path / "metadata.json") if (path / "metadata.json").is_file() else {}
    sha = ((read_manifest(path) or {}).get("config.json") or {}).get("sha256") or sha256_file(path / "config.json")
    with torch.device("meta"):
        G = build_generator(cfg)
    paper_macs = get_family(cfg.family).paper_macs
    facts = {"family": cfg.family, "resolution": int(G.img_resolution), "c_dim": int(getattr(G, "c_dim", 0) or 0),
             "z_dim": int(G.z_dim), "params_G": sum(p.numel() for p in G.parameters()),
             "macs_G_paper": int(paper_macs(cfg)) if paper_macs else None}
    return Variant(name, str(cfg.ch_mul), None, PINNED, meta if isinstance(meta, dict) else {}, (), sha, path,
                   facts=facts)


class Catalog:
    """Registry entries (``registry``: a URI, None for the default chain, False for none) and pinned
    checkpoints (``pinned``: [(name, directory)]; a name may be pinned at several widths)."""

    def __init__(self, pinned: list[tuple[str, str]] | dict[str, str] | None = None, registry: Any = None,
                 refresh_s: float = 30.0):
        from zoo.registry.model import check_name

        self.registry, self.refresh_s = registry, refresh_s
        self.pinned: dict[str, dict[str, Variant]] = {}
        items = list(pinned.items()) if isinstance(pinned, dict) else list(pinned or [])
        for name, directory in items:
            check_name(name)
            variant = _pinned_variant(name, Path(directory))
            widths = self.pinned.setdefault(name, {})
            if variant.ch_mul in widths:
                raise ZooError(f"--checkpoint {name}: two checkpoints pinned at ch_mul={variant.ch_mul}")
            widths[variant.ch_mul] = variant
        # registry snapshot: name -> ch -> {"versions": {v: Variant}, "aliases": {a: v}, "latest": v}
        self._registry: dict[str, dict[str, dict[str, Any]]] = {}
        self.refreshed_at: float | None = None if registry is not False else time.monotonic()
        self.error: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ registry snapshot
    def refresh(self) -> None:
        """Read the registry's index (blocking; call from a worker thread).  Errors keep the old snapshot."""
        if self.registry is False:
            return
        from zoo.registry.api import stores
        from zoo.registry.model import iter_entries

        snapshot: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            for store in stores(self.registry):
                index = store.read_index()
                for ref in iter_entries(index):
                    if ref.name in self.pinned:
                        continue  # a pinned name shadows the registry's
                    slot = snapshot.setdefault(ref.name, {})
                    if ref.ch_mul in slot and slot[ref.ch_mul]["store"] is not store:
                        continue  # the first store of the chain that has a width wins (as zoo.load)
                    width = slot.setdefault(ref.ch_mul, {"store": store, "versions": {}, "aliases": {}, "latest": None})
                    width["versions"][ref.version] = Variant(
                        ref.name, ref.ch_mul, ref.version, "registry", ref.metadata, ref.aliases,
                        (ref.files.get("config.json") or {}).get("sha256"), store=store)
                    width["latest"] = ref.version  # iter_entries yields versions in ascending order
                    for alias in ref.aliases:
                        if alias != "latest":
                            width["aliases"][alias] = ref.version
        except Exception as exc:  # noqa: BLE001 - a broken or unreachable registry must not take the server down
            self.error = str(exc) if isinstance(exc, (ZooError, OSError, ValueError)) else type(exc).__name__
            log.warning("registry index not read (keeping the last one): %s", exc,
                        exc_info=not isinstance(exc, (ZooError, OSError, ValueError)))
            with self._lock:
                if self.refreshed_at is None:
                    self.refreshed_at = time.monotonic()
            return
        with self._lock:
            # keep what earlier loads learnt about a variant (c_dim, resolution, ...)
            for name, widths in snapshot.items():
                for ch, width in widths.items():
                    for v, variant in width["versions"].items():
                        old = self._registry.get(name, {}).get(ch, {}).get("versions", {}).get(v)
                        if old is not None:
                            variant.facts = old.facts
            self._registry, self.refreshed_at, self.error = snapshot, time.monotonic(), None

    def stale(self) -> bool:
        return self.refreshed_at is None or time.monotonic() - self.refreshed_at > self.refresh_s

    # ------------------------------------------------------------------ lookups
    def names(self) -> list[str]:
        return sorted(set(self.pinned) | set(self._registry))

    def variants(self) -> list[Variant]:
        """Every servable variant: pinned, then registry entries by name, width (widest first), version."""
        out = [v for name in sorted(self.pinned) for v in
               sorted(self.pinned[name].values(), key=lambda v: -Fraction(v.ch_mul))]
        registry = self._registry
        for name in sorted(registry):
            for ch in sorted(registry[name], key=lambda k: -Fraction(k)):
                out.extend(registry[name][ch]["versions"].values())
        return out

    def unknown(self, model: str) -> Problem:
        served = ", ".join(self.names()) or "none"
        if any(c in model for c in "/\\") or model.startswith("."):
            return Problem(404, f"unknown model: a model is a name from GET /v1/models, never a path; served: {served}")
        return Problem(404, f"unknown model {short(model, 60)}; served models: {served}")

    def find(self, model: str, ch_mul: str, version: str | None) -> Variant:
        """The variant a request names, or a 404 Problem that lists what exists."""
        if model in self.pinned:
            widths = self.pinned[model]
            if ch_mul not in widths:
                have = ", ".join(sorted(widths, key=lambda k: -Fraction(k)))
                raise Problem(404, f"model {model!r} is pinned at ch_mul={have}, not {ch_mul}")
            if version not in (None, "latest", PINNED):
                raise Problem(404, f"model {model!r} is a pinned checkpoint: it has no version {short(version, 40)} "
                                   "(leave version out)")
            return widths[ch_mul]
        registry = self._registry
        if model not in registry:
            raise self.unknown(model)
        widths = registry[model]
        if ch_mul not in widths:
            have = ", ".join(sorted(widths, key=lambda k: -Fraction(k)))
            raise Problem(404, f"{model} has no ch_mul={ch_mul} (served widths: {have})")
        width = widths[ch_mul]
        if version is None or version == "latest":
            return width["versions"][width["latest"]]
        if version in width["versions"]:
            return width["versions"][version]
        if version in width["aliases"]:
            return width["versions"][width["aliases"][version]]
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(width["aliases"].items())) or "none"
        raise Problem(404, f"{model} ch_mul={ch_mul} has no version or alias {short(version, 40)} "
                           f"(versions: {', '.join(width['versions'])}; aliases: {aliases}; or 'latest')")

    def widths(self, model: str, version: str | None) -> list[Variant]:
        """One variant per width of ``model`` (at ``version``: widths without it are left out), widest first."""
        if model in self.pinned:
            return sorted(self.pinned[model].values(), key=lambda v: -Fraction(v.ch_mul))
        if model not in self._registry:
            raise self.unknown(model)
        out = []
        for ch in sorted(self._registry[model], key=lambda k: -Fraction(k)):
            try:
                out.append(self.find(model, ch, version))
            except Problem:
                continue
        if not out:
            raise Problem(404, f"no width of {model} has version or alias {short(version, 40)}")
        return out
