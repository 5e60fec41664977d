"""Measured latency: one typed row, the local calibration cache, and latency-budget selection.

A **latency row** is what ``zoo bench`` measures for one (model, width, back-end, dtype, batch) on one
machine, as :class:`LatencyRow`, the only shape a row has.  Bench writes rows with :meth:`LatencyRow.to_dict`;
the registry keeps them in an entry's ``metadata["latency"]``; ``zoo.load(..., max_latency_ms=...)``,
``zoo serve`` and ``zoo compare`` read them with :meth:`LatencyRow.from_dict` / :func:`parse_rows` and never
look at a row's keys themselves.  Rows stored in older shapes (``ms`` / ``latency_ms`` / ``mean_ms`` instead
of ``median_ms``, ``speedup`` instead of ``speedup_vs_full``, no ``fingerprint``) are brought to the current
one by :func:`migrate_row`, the only code that knows the old key names.

The **fingerprint** (``zoo.environment.hardware(device)["fingerprint"]``, e.g. ``cpu:AMD EPYC 7B13:avx512``
or ``cuda:NVIDIA H100 80GB HBM3``) says which hardware a row was measured on: ``"cpu"`` names no machine,
so a row counts for a budget only on hardware with the same fingerprint.  Rows without one (written
before fingerprints existed) still parse and are shown, but never count as measured *here*.

Where an entry holds no row for this machine, ``zoo bench NAME --calibrate`` measures every width once
and stores the rows in a **calibration cache**, ``$GANZOO_HOME/latency/<fingerprint hash>.json``, keyed
by the sha256 of each entry's ``config.json`` (latency depends on the architecture, not the weights, so
every version of one architecture shares its rows).

**Selection** (:func:`select`, :func:`select_entry`): among the variants whose measured latency for this
machine, back-end, dtype and batch fits the budget, the one with the lowest KID, compared only between
variants whose KID was computed on the same data (sha256) with the same n.  Figures are measured ones
only; MAC-based estimates are used only when asked (``allow_estimates=True``) and are labelled so.
Nothing here imports torch; the registry is imported only by :func:`select_entry`.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

from zoo.errors import ZooError

CALIBRATION_FORMAT = "ganzoo-calibration/1"
# Older shapes of a row still stored in entries' metadata (hand-written rows, early `zoo bench`, `zoo compare`'s
# report rows): their keys for the time per call and the speedup, in order of preference.  Only
# :func:`migrate_row` knows them; every reader goes through :meth:`LatencyRow.from_dict`.
_OLD_MS_KEYS = ("ms", "latency_ms", "mean_ms")
_OLD_SPEEDUP_KEYS = ("speedup",)
# the keys LatencyRow writes; every other key of a row dict (mean_ms, p99_ms, an old row's ms ...) is kept in
# ``extra`` and written back as it was
_OWN_KEYS = frozenset(("median_ms", "speedup_vs_full", "batch", "backend", "dtype", "fingerprint", "model", "ch_mul",
                       "device", "date"))


def migrate_row(data: dict[str, Any]) -> dict[str, Any]:
    """A stored row in the shape :meth:`LatencyRow.to_dict` writes, whatever shape it was stored in.

    Fills ``median_ms`` from ``ms`` / ``latency_ms`` / ``mean_ms``, ``speedup_vs_full`` from ``speedup`` and
    ``fingerprint`` from ``hardware.fingerprint`` where the row lacks them; the old keys stay (they are the
    row's ``extra``), so a migrated row written back still reads the same to old code."""
    out = dict(data)
    if out.get("median_ms") is None:
        out["median_ms"] = next((data[k] for k in _OLD_MS_KEYS if data.get(k) is not None), None)
    if out.get("speedup_vs_full") is None:
        out["speedup_vs_full"] = next((data[k] for k in _OLD_SPEEDUP_KEYS if data.get(k) is not None), None)
    if out.get("fingerprint") is None and isinstance(data.get("hardware"), dict):
        out["fingerprint"] = data["hardware"].get("fingerprint")
    return out


def _finite(value: Any, what: str, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"latency row: {what} must be a number, got {value!r:.40}")
    f = float(value)
    if not math.isfinite(f) or (positive and f <= 0):
        raise ValueError(f"latency row: {what} must be a finite{' positive' if positive else ''} number, got {value!r}")
    return f


@dataclass
class LatencyRow:
    """One measured latency: ``ms`` per call of ``batch`` images with ``backend``/``dtype`` on ``fingerprint``.

    Serialised with bench's key names: ``ms`` is ``median_ms`` and ``speedup`` is ``speedup_vs_full``
    (this width's time relative to the full-width model, measured in the same run)."""

    ms: float | None
    batch: int = 1
    backend: str = "eager"
    dtype: str = "fp32"
    fingerprint: str | None = None
    speedup: float | None = None
    model: str | None = None
    ch_mul: str | None = None
    device: str | None = None
    date: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, stored: Any) -> "LatencyRow":
        """A row from bench's dict or an older shape (:func:`migrate_row`); ValueError for anything that is
        not a usable row."""
        if not isinstance(stored, dict):
            raise ValueError(f"latency row must be a mapping, got {type(stored).__name__}")
        data = migrate_row(stored)
        ms, speedup = data["median_ms"], data["speedup_vs_full"]
        batch = data.get("batch", 1)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1 << 20:
            raise ValueError(f"latency row: batch must be a positive integer, got {batch!r:.40}")
        fingerprint = data.get("fingerprint")
        text = {}
        for key in ("backend", "dtype", "model", "ch_mul", "device", "date"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"latency row: {key} must be text, got {value!r:.40}")
            text[key] = value
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise ValueError(f"latency row: fingerprint must be text, got {fingerprint!r:.40}")
        return cls(ms=_finite(ms, "ms", positive=True), batch=batch, backend=text["backend"] or "eager",
                   dtype=text["dtype"] or "fp32", fingerprint=fingerprint, speedup=_finite(speedup, "speedup", True),
                   model=text["model"], ch_mul=text["ch_mul"], device=text["device"], date=text["date"],
                   extra={k: v for k, v in stored.items() if k not in _OWN_KEYS})

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        for key in ("model", "ch_mul", "device", "date"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update({"backend": self.backend, "dtype": self.dtype, "batch": self.batch, "median_ms": self.ms,
                    "speedup_vs_full": self.speedup, "fingerprint": self.fingerprint})
        return out

    def matches(self, fingerprint: str | None, backend: str = "eager", dtype: str = "fp32") -> bool:
        return (self.ms is not None and self.fingerprint is not None and self.fingerprint == fingerprint
                and self.backend == backend and self.dtype == dtype)

    def describe(self) -> str:
        where = self.fingerprint or "an unrecorded machine"
        ms = f"{self.ms:.2f} ms" if self.ms is not None else "no time"
        return f"{ms} at batch {self.batch} ({self.backend}, {self.dtype}, {where})"


def latency_for(table: dict[str, Any], ch_mul: str, model: str | None = None) -> list[dict[str, Any]]:
    """The rows of one width as self-contained records, for a registry entry's ``metadata["latency"]``.

    Each row carries the table's context (device name, date, threads, allocator env, versions) next
    to backend, dtype, batch and the figures, so rows from different runs can be stored together."""
    context = {"device": table["device"]["name"], "device_type": table["device"]["type"], "date": table["date"],
               "threads": table["threads"], "env": table["env"], "versions": table["versions"],
               "timer": table["settings"]["timer"]}
    fingerprint = (table.get("hardware") or {}).get("fingerprint")
    return [LatencyRow.from_dict({**r, **context, "fingerprint": r.get("fingerprint") or fingerprint}).to_dict()
            for r in table["rows"] if r["ch_mul"] == ch_mul and (model is None or r["model"] == model)]


def parse_rows(value: Any) -> list[LatencyRow]:
    """The usable rows of a ``metadata["latency"]`` value (a list of rows, or a bench table with
    ``rows``); rows that do not parse are skipped (an entry's metadata is free-form)."""
    if isinstance(value, dict):
        value = value.get("rows") or value.get("results") or []
    if not isinstance(value, list):
        return []
    rows = []
    for item in value:
        try:
            rows.append(LatencyRow.from_dict(item))
        except ValueError:
            continue
    return rows


def pick_row(rows: Iterable[LatencyRow], fingerprint: str | None, backend: str = "eager", dtype: str = "fp32",
             batch: int = 1) -> LatencyRow | None:
    """The row that answers "how long does a call of ``batch`` images take here": measured on this
    fingerprint with this back-end and dtype, at the smallest measured batch >= ``batch`` (a larger batch
    bounds the time from above); among equal batches the most recent."""
    usable = [r for r in rows if r.matches(fingerprint, backend, dtype) and r.batch >= batch]
    if not usable:
        return None
    smallest = min(r.batch for r in usable)
    return max((r for r in usable if r.batch == smallest), key=lambda r: r.date or "")


def speedup_row(rows: Iterable[LatencyRow], fingerprint: str | None, batch: int = 1,
                backend: str = "eager") -> LatencyRow | None:
    """The row whose measured speedup best describes a call of ``batch`` images: rows of this machine if
    any (else any machine's), of ``backend`` if any, at the batch nearest to ``batch`` (ties: the larger)."""
    rows = [r for r in rows if r.speedup is not None]
    here = [r for r in rows if r.fingerprint is not None and r.fingerprint == fingerprint]
    rows = here or rows
    rows = [r for r in rows if r.backend == backend] or rows
    if not rows:
        return None
    return min(rows, key=lambda r: (abs(r.batch - batch), -r.batch, r.date or ""))


# --------------------------------------------------------------------------------- calibration cache

def calibration_path(fingerprint: str) -> Path:
    """``$GANZOO_HOME/latency/<sha256(fingerprint)[:16]>.json``."""
    from zoo.registry.model import ganzoo_home

    digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16]
    return ganzoo_home() / "latency" / f"{digest}.json"


def read_calibration(fingerprint: str) -> dict[str, dict[str, Any]]:
    """{config sha256: {"name", "ch_mul", "version", "rows": [LatencyRow, ...]}} measured on this machine
    by ``zoo bench --calibrate`` (empty when nothing was).  A damaged cache is an error naming the file."""
    from zoo.integrity import read_json

    path = calibration_path(fingerprint)
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT or not isinstance(
            data.get("entries"), dict):
        raise ZooError(f"{path}: not a {CALIBRATION_FORMAT} file; delete it and run `zoo bench --calibrate` again")
    out = {}
    for sha, entry in data["entries"].items():
        if isinstance(entry, dict):
            rows = [r for r in parse_rows(entry.get("rows")) if r.fingerprint == fingerprint]
            out[sha] = {**{k: entry.get(k) for k in ("name", "ch_mul", "version")}, "rows": rows}
    return out


def record_calibration(fingerprint: str, measured: dict[str, dict[str, Any]]) -> Path:
    """Merge ``{config sha256: {"name", "ch_mul", "version", "rows": [LatencyRow]}}`` into the cache of this
    fingerprint (rows of the same back-end, dtype and batch are replaced) and write it atomically."""
    from zoo.integrity import read_json, write_json

    path = calibration_path(fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = read_json(path) if path.is_file() else {}
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        data = {}
    entries = data.get("entries") if isinstance(data.get("entries"), dict) else {}
    for sha, new in measured.items():
        old = entries.get(sha) if isinstance(entries.get(sha), dict) else {}
        fresh = {(r.backend, r.dtype, r.batch) for r in new["rows"]}
        kept = [r for r in parse_rows(old.get("rows")) if (r.backend, r.dtype, r.batch) not in fresh]
        entries[sha] = {"name": new.get("name"), "ch_mul": new.get("ch_mul"), "version": new.get("version"),
                        "rows": [r.to_dict() for r in kept + list(new["rows"])]}
    write_json(path, {"format": CALIBRATION_FORMAT, "fingerprint": fingerprint, "entries": entries})
    return path


# ------------------------------------------------------------------------------------------ selection

@dataclass
class Candidate:
    """A servable variant as selection sees it: its key, metadata (metrics, latency rows, MACs) and the
    sha256 of its config.json (the calibration cache key)."""

    model: str
    ch_mul: str
    version: str | None
    metadata: dict[str, Any]
    config_sha256: str | None = None

    @property
    def label(self) -> str:
        return f"ch_mul={self.ch_mul}" + (f" v{self.version}" if self.version else "")


@dataclass
class Option:
    candidate: Candidate
    row: LatencyRow | None
    origin: str | None  # "entry", "calibration", "estimate from ch_mul=..." or None (not measured)
    kid: float | None
    comparable: bool = False
    fits: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.candidate.model, "ch_mul": self.candidate.ch_mul, "version": self.candidate.version,
                "ms": self.row.ms if self.row else None, "batch": self.row.batch if self.row else None,
                "measured_by": self.origin, "kid": self.kid, "kid_comparable": self.comparable, "fits": self.fits}

    def text(self) -> str:
        if self.row is None:
            return f"{self.candidate.label}: not measured here"
        est = " (estimated)" if self.origin and self.origin.startswith("estimate") else ""
        kid = f", KID {self.kid:.4g}" if self.kid is not None else ""
        return f"{self.candidate.label}: {self.row.ms:.2f} ms{est} at batch {self.row.batch}{kid}"


@dataclass
class Selection:
    """What :func:`select` picked and why (``reason``), with every option it weighed."""

    candidate: Candidate
    row: LatencyRow
    reason: str
    options: list[Option]
    max_latency_ms: float
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.candidate.model, "ch_mul": self.candidate.ch_mul, "version": self.candidate.version,
                "ms": self.row.ms, "batch": self.row.batch, "reason": self.reason,
                "max_latency_ms": self.max_latency_ms,
                "fingerprint": self.fingerprint, "options": [o.to_dict() for o in self.options]}


def _number(value) -> float | None:
    """A finite number, or the finite ``value`` of a stored ``{"value": ...}`` metric; else None."""
    from zoo.metrics import finite_number

    return finite_number(value.get("value") if isinstance(value, dict) else value)


def quality(metadata: dict[str, Any]) -> tuple[float | None, tuple | None]:
    """(KID, (real data sha256, n)) of an entry, from its ``metrics.kid`` as a
    :class:`zoo.metrics.MetricValue` with the provenance ``zoo train`` records as ``metrics_info`` (top level or
    under ``training``).  The key is None when the provenance was not recorded."""
    from zoo.metrics import MetricValue

    metrics = metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {}
    info = metadata.get("metrics_info")
    if not isinstance(info, dict):
        training = metadata.get("training") if isinstance(metadata.get("training"), dict) else {}
        info = training.get("metrics_info") if isinstance(training.get("metrics_info"), dict) else None
    kid = MetricValue.from_stored("kid", metrics.get("kid"), info)
    return (kid.value, kid.data_and_n) if kid is not None else (None, None)


def _macs(metadata: dict[str, Any]) -> float | None:
    return _number(metadata.get("macs_G_fvcore")) or _number(metadata.get("macs_G_paper"))


def check_budget(max_latency_ms: Any) -> float:
    """A latency budget in ms: a finite number in (0, 1e7], else ZooError."""
    try:
        budget = _finite(max_latency_ms, "max_latency_ms", positive=True)
    except ValueError:
        budget = None
    if budget is None or budget > 1e7:
        raise ZooError("max_latency_ms must be a finite number of milliseconds in (0, 1e7], "
                       f"got {max_latency_ms!r:.40}")
    return budget


def select(candidates: list[Candidate], max_latency_ms: float, fingerprint: str, backend: str = "eager",
           dtype: str = "fp32", batch: int = 1, calibration: dict[str, dict[str, Any]] | None = None,
           allow_estimates: bool = False) -> Selection:
    """The best-quality candidate whose measured latency here fits ``max_latency_ms`` (see module doc)."""
    budget = check_budget(max_latency_ms)
    if not candidates:
        raise ZooError("nothing to choose from: no variants")
    name = candidates[0].model
    calibration = calibration or {}
    where = f"batch {batch}, {backend}, {dtype}, on {fingerprint}"
    options = []
    for cand in candidates:
        row = pick_row(parse_rows(cand.metadata.get("latency")), fingerprint, backend, dtype, batch)
        origin = "entry" if row else None
        if row is None and cand.config_sha256 in calibration:
            row = pick_row(calibration[cand.config_sha256]["rows"], fingerprint, backend, dtype, batch)
            origin = "calibration" if row else None
        options.append(Option(cand, row, origin, quality(cand.metadata)[0]))
    if allow_estimates:
        measured = [o for o in options if o.row is not None and _macs(o.candidate.metadata)]
        for o in options:
            macs = _macs(o.candidate.metadata)
            if o.row is None and macs and measured:
                ref = min(measured, key=lambda m: abs(math.log(_macs(m.candidate.metadata) / macs)))
                ms = ref.row.ms * macs / _macs(ref.candidate.metadata)
                o.row = LatencyRow(ms=ms, batch=ref.row.batch, backend=backend, dtype=dtype, fingerprint=fingerprint)
                o.origin = f"estimate from {ref.candidate.label}'s measured time scaled by MACs"
    measured = [o for o in options if o.row is not None]
    if not measured:
        elsewhere = sorted({r.fingerprint or "no fingerprint recorded" for c in candidates
                            for r in parse_rows(c.metadata.get("latency"))})
        raise ZooError(
            f"no latency of {name} was measured for this machine ({where}); the entries hold rows for: "
            f"{', '.join(elsewhere) or 'nothing'}. Measure the widths here once with `zoo bench {name} --calibrate` "
            f"(cached under $GANZOO_HOME/latency), or pick a width with ch_mul=.")
    for o in measured:
        o.fits = o.row.ms <= budget
    fits = [o for o in measured if o.fits]
    if not fits:
        listing = "; ".join(o.text() for o in sorted(measured, key=lambda o: o.row.ms))
        raise ZooError(f"no variant of {name} fits max_latency_ms={budget:g} ({where}). Measured: {listing}. "
                       "Raise the budget, or measure a smaller width.")
    # KIDs are compared only within one (data sha256, n): the group most variants share (ties: the widest's)
    keyed = [(quality(o.candidate.metadata), o) for o in options]
    groups: dict[tuple, list[Option]] = {}
    for (kid, key), o in keyed:
        if kid is not None and key is not None:
            groups.setdefault(key, []).append(o)
    group = max(groups.values(), key=lambda g: (len(g), max(Fraction(o.candidate.ch_mul) for o in g)), default=[])
    for o in group:
        o.comparable = True
    ranked = [o for o in fits if o.comparable]
    listing = "; ".join(o.text() + ("" if o.row is None or o.fits else " (too slow)")
                        for o in sorted(options, key=lambda o: -Fraction(o.candidate.ch_mul)))
    if ranked:
        best = min(ranked, key=lambda o: (o.kid, -Fraction(o.candidate.ch_mul)))
        data, n = quality(best.candidate.metadata)[1]
        why = (f"lowest KID ({best.kid:.4g}, data sha256 {data[:12]}, n={n}) among the variants that fit "
               f"{budget:g} ms")
    else:
        best = max(fits, key=lambda o: Fraction(o.candidate.ch_mul))
        why = (f"widest variant that fits {budget:g} ms (no KID computed on the same data and n for the "
               "variants that fit, so quality could not be compared)")
    how = "measured" if best.origin in ("entry", "calibration") else best.origin
    reason = (f"picked {best.candidate.model} {best.candidate.label}: {why}; its latency {best.row.ms:.2f} ms "
              f"({how}, {where}). Options: {listing}")
    return Selection(best.candidate, best.row, reason, options, budget, fingerprint)


def candidates_from_registry(name: str, version: Any = None, registry=None) -> list[Candidate]:
    """One candidate per published width of ``name`` (at ``version``, default latest), first store wins."""
    from zoo.registry.api import stores
    from zoo.registry.model import check_name, resolve

    check_name(name)
    out: dict[str, Candidate] = {}
    for store in stores(registry):
        index = store.read_index()
        for ch in index["models"].get(name, {}):
            if ch in out:
                continue
            try:
                ref = resolve(index, name, ch, version, where=store.location)
            except ZooError:
                continue  # that width has no such version or alias
            sha = (ref.files.get("config.json") or {}).get("sha256")
            out[ch] = Candidate(name, ref.ch_mul, ref.version, ref.metadata, sha)
    return sorted(out.values(), key=lambda c: -Fraction(c.ch_mul))


def select_entry(name: str, max_latency_ms: float, device: str = "cpu", batch: int = 1, backend: str = "eager",
                 dtype: str = "fp32", version: Any = None, registry=None, allow_estimates: bool = False) -> Selection:
    """:func:`select` over the published widths of a registry entry, for this machine's hardware."""
    from zoo.environment import hardware

    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 65536:
        raise ZooError(f"batch must be an integer in [1, 65536], got {batch!r:.40}")
    candidates = candidates_from_registry(name, version, registry)
    if not candidates:
        from zoo.registry.api import resolve

        resolve(name, 1, version, registry)  # raises the error that lists what exists
        raise ZooError(f"no width of {name} has version {version!r}")
    fingerprint = hardware(device)["fingerprint"]
    return select(candidates, max_latency_ms, fingerprint, backend, dtype, batch, read_calibration(fingerprint),
                  allow_estimates)


def dtype_name(dtype: Any) -> str:
    """'fp32' / 'fp16' / 'bf16' for None, a torch dtype or its usual spellings (what latency rows record)."""
    text = str(dtype or "fp32").replace("torch.", "")
    return {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}.get(text, text)

