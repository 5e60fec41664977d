"""The registry's data model: entry keys, versions, aliases, the index, and the interface every store has.

A registry is a directory tree plus one JSON index that any store (local directory, static HTTP
server, Hugging Face Hub repo) lays out the same way::

    index.json                              the index (below); the only file a reader must fetch first
    <name>/<ch_mul, '/' -> '_'>/<version>/  one immutable entry: the checkpoint files
        config.json  generator.safetensors  [generator_raw.safetensors]  [discriminator.safetensors]
        metadata.json  manifest.json  [exports/<backend>/...]

    index.json = {"format": "ganzoo-registry/1",
                  "models": {name: {ch_mul: {"aliases": {alias: version},
                                             "versions": {version: record}}}}}
    record     = {"path": "<name>/<ch>/<version>", "published": ISO time,
                  "files": {relpath: {"sha256", "size"}}, "metadata": {...full metadata.json...}}

The index holds the sha256 of every file, so it is the trust anchor: every load re-hashes the files it
is about to use against it.  Its *names* are not trusted: an index read from a server or a Hub repo is
checked by :func:`check_index` before anything is downloaded or written, and every record's ``path``
must be exactly ``<name>/<ch>/<version>`` and every file name a plain relative path inside the entry.
Versions are integers ("1", "2", ... auto-incremented) or semver ("1.2.0"); one (name, ch_mul) uses one
scheme.  ``latest`` is not stored: it is always the highest version.

This module imports no store (they import it; :mod:`zoo.registry.schemes` maps URIs to them) and
nothing here imports torch.  Hashing, manifests and file checks come from :mod:`zoo.integrity`.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

from zoo.errors import ZooError
from zoo.integrity import (MANIFEST_FILE, check_file_record, check_relpath, hash_tree, manifest_for, verify_files,
                           write_json)
from zoo.widths import ChMul, format_ch_mul, parse_ch_mul

INDEX_FILE = "index.json"
INDEX_FORMAT = "ganzoo-registry/1"
LATEST = "latest"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_INT_RE = re.compile(r"^[1-9][0-9]{0,8}$")
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


# ----------------------------------------------------------------------------------------- validation
def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ZooError(
            f"bad entry name {name!r}: use lower-case letters, digits, '.', '_' and '-' (e.g. stylegan2-emoji)"
        )
    return name


def split_ref(ref: str) -> tuple[str, str | None]:
    """``NAME[@VERSION]`` -> (name, version or None), as `zoo train --teacher`, a sweep file's ``teacher.entry``
    and scripts take an entry; the version may be an alias ("stable").  ZooError on a bad name or an empty
    version, so that a typo names itself instead of surfacing as "no entry"."""
    name, at, version = str(ref).partition("@")
    check_name(name)
    if at and not version:
        raise ZooError(f"bad entry reference {ref!r}: nothing after '@' (use NAME or NAME@VERSION)")
    return name, version or None


def ch_key(ch_mul: ChMul) -> str:
    """Canonical text of a width ('1', '1/2', '1/3'); accepts 0.5, Fraction(1, 2), '1/2'."""
    return format_ch_mul(parse_ch_mul(ch_mul))


def ch_dir(ch_mul: ChMul) -> str:
    """Directory name of a width: '1/2' -> '1_2'."""
    return ch_key(ch_mul).replace("/", "_")


def version_kind(version: str) -> str:
    if _INT_RE.match(version):
        return "int"
    if _SEMVER_RE.match(version):
        return "semver"
    raise ZooError(f"bad version {version!r}: use a positive integer (1, 2, ...) or semver (1.2.0)")


def check_version(version: Any) -> str:
    """A version as its canonical string; ints and digit strings are integer versions."""
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise ZooError(f"bad version {version!r}: use a positive integer or a semver string")
    text = str(version).strip()
    version_kind(text)
    return text


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise ZooError(f"bad alias {alias!r}: start with a letter, then letters, digits, '_' or '-'")
    if alias == LATEST:
        raise ZooError("'latest' is not settable: it always points at the highest version")
    return alias


def version_key(version: str) -> tuple:
    """Sort key: integers numerically; semver by precedence (a pre-release sorts before its release)."""
    if _INT_RE.match(version):
        return (int(version),)
    m = _SEMVER_RE.match(version)
    if not m:
        return (-1,)
    major, minor, patch, pre, _build = m.groups()
    if pre is None:
        pre_key: tuple = (1,)
    else:
        pre_key = (0,) + tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), pre_key, version)


def sorted_versions(versions) -> list[str]:
    return sorted(versions, key=version_key)


# ----------------------------------------------------------------------------------------------- index
def empty_index() -> dict[str, Any]:
    return {"format": INDEX_FORMAT, "models": {}}


def check_index(index: Any, where: str) -> dict[str, Any]:
    """``index`` if it is a well-formed registry index, else a ZooError naming ``where``.

    Beyond the top level, every entry is checked (:func:`check_record`): an index comes from whoever
    serves it, and its paths are joined to local directories when entries are downloaded.
    """
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("models"), dict):
        raise ZooError(f"{where}: not a ganzoo registry index (expected format {INDEX_FORMAT!r})")
    for name, widths in index["models"].items():
        if not isinstance(widths, dict):
            raise ZooError(f"{where}: models[{name!r}] is not a mapping of widths")
        for ch, slot in widths.items():
            if (not isinstance(slot, dict) or not isinstance(slot.get("versions"), dict) or not slot["versions"]
                    or not isinstance(slot.get("aliases", {}), dict)):
                raise ZooError(f"{where}: models[{name!r}][{ch!r}] has no 'versions' / 'aliases' mappings")
            for version, record in slot["versions"].items():
                check_record(name, ch, version, record, where)
            for alias, target in slot.get("aliases", {}).items():
                if target not in slot["versions"]:
                    raise ZooError(f"{where}: {name} ch_mul={ch}: alias {alias!r} points at no version ({target!r})")
    return index


def check_record(name: str, ch: str, version: str, record: Any, where: str) -> dict[str, Any]:
    """One index record, checked before any of its names touches a file system.

    ``path`` must be the entry's own ``<name>/<ch>/<version>`` (what every publisher writes), so an
    entry can neither leave the registry/cache nor land in another entry's directory; each file name
    must be a plain relative path (:func:`zoo.integrity.check_relpath`) with a sha256 and a size.
    """
    what = f"{where}: {name} ch_mul={ch} version {version}"
    if not isinstance(record, dict):
        raise ZooError(f"{what}: the record is not a mapping")
    try:
        expected = entry_path(check_name(name), ch, check_version(version))
    except (ZooError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise ZooError(f"{what}: bad entry key ({exc})") from None
    if record.get("path") != expected:
        raise ZooError(f"{what}: path {record.get('path')!r} is not {expected!r}; refusing the entry")
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        raise ZooError(f"{what}: no 'files' mapping")
    for rel, info in files.items():
        check_relpath(rel, f"{what}: file name")
        check_file_record(info, f"{what}: file {rel!r}")
    if not isinstance(record.get("metadata", {}), dict):
        raise ZooError(f"{what}: 'metadata' is not a mapping")
    return record


def check_entry(ref: "EntryRef", where: str = "registry") -> "EntryRef":
    """The same checks for a resolved entry, done again right before its files are fetched or read."""
    check_record(ref.name, ref.ch_mul, ref.version, ref.record, where)
    return ref


@dataclass(frozen=True)
class EntryRef:
    """A resolved entry: its key and its index record."""

    name: str
    ch_mul: str
    version: str
    record: dict[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return self.record["path"]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.record["files"]

    @property
    def metadata(self) -> dict[str, Any]:
        return self.record.get("metadata", {})

    def __str__(self) -> str:
        return f"{self.name} ch_mul={self.ch_mul} v{self.version}"


def entry_path(name: str, ch_mul: str, version: str) -> str:
    return f"{name}/{ch_dir(ch_mul)}/{version}"


def aliases_of(slot: dict[str, Any], version: str) -> tuple[str, ...]:
    names = [a for a, v in slot.get("aliases", {}).items() if v == version]
    if slot.get("versions") and sorted_versions(slot["versions"])[-1] == version:
        names.append(LATEST)
    return tuple(sorted(names))


def iter_entries(index: dict[str, Any], name: str | None = None) -> Iterator[EntryRef]:
    """Every entry of an index (optionally of one name), by name, width (widest first), version."""
    models = index["models"]
    names = [name] if name is not None else sorted(models)
    for n in names:
        widths = models.get(n, {})
        for ch in sorted(widths, key=lambda k: -Fraction(k)):
            slot = widths[ch]
            for v in sorted_versions(slot["versions"]):
                yield EntryRef(n, ch, v, slot["versions"][v], aliases_of(slot, v))


def _catalog():
    from zoo.models import CATALOG

    return CATALOG


def _no_weights_hint(name: str) -> str:
    spec = _catalog().get(name)
    if spec is None:
        return ""
    from zoo.families import get_family

    family = get_family(spec.family).reference
    return (
        f" '{name}' is a catalogue configuration ({spec.dataset}); weights are not bundled. To obtain them: "
        f"convert the official {family} teacher with `zoo import ... --config {name} --out DIR` and "
        f"`zoo publish DIR --name {name}`; train DGL-GAN students with `zoo train --config {name} --ch-mul 1/2 "
        f"--teacher {name} --out RUN` and `zoo publish RUN --name {name}`."
    )


def resolve(index: dict[str, Any], name: str, ch_mul: ChMul = 1, version: Any = None,
            where: str = "registry") -> EntryRef:
    """Find (name, ch_mul, version|alias|'latest'|None) in an index, or raise an error listing what exists."""
    check_name(name)
    key = ch_key(ch_mul)
    models = index["models"]
    if name not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ZooError(f"no entry named {name!r} in {where} (published names: {known}).{_no_weights_hint(name)}")
    widths = models[name]
    if key not in widths:
        have = ", ".join(sorted(widths, key=lambda k: -Fraction(k)))
        hint = f" Train that width with `zoo train --config {name} --ch-mul {key} ...` and publish it." \
            if name in _catalog() else ""
        raise ZooError(f"{name} has no published ch_mul={key} in {where} (published widths: {have}).{hint}")
    slot = widths[key]
    versions = slot["versions"]
    available = sorted_versions(versions)
    if version is None or version == LATEST:
        chosen = available[-1]
    else:
        text = str(version).strip() if isinstance(version, (int, str)) and not isinstance(version, bool) else None
        if text in versions:
            chosen = text
        elif text in slot.get("aliases", {}):
            chosen = slot["aliases"][text]
        else:
            aliases = ", ".join(f"{a}->{v}" for a, v in sorted(slot.get("aliases", {}).items())) or "none"
            raise ZooError(
                f"{name} ch_mul={key} has no version or alias {str(version)!r} in {where} "
                f"(versions: {', '.join(available)}; aliases: {aliases}; or 'latest')."
            )
    return EntryRef(name, key, chosen, versions[chosen], aliases_of(slot, chosen))


def add_version(index: dict[str, Any], name: str, ch_mul: str, version: str | None,
                record_fn) -> EntryRef:
    """Add a new version to ``index`` in place (``version=None``: the next integer).

    ``record_fn(version) -> record`` builds the record once the version is known.  Existing versions
    are never replaced.
    """
    key = ch_key(ch_mul)
    slot = index["models"].setdefault(check_name(name), {}).setdefault(key, {"aliases": {}, "versions": {}})
    versions = slot["versions"]
    kinds = {version_kind(v) for v in versions}
    if version is None:
        if "semver" in kinds:
            raise ZooError(f"{name} ch_mul={key} uses semver versions: pass --version explicitly")
        version = str(max((int(v) for v in versions), default=0) + 1)
    version = check_version(version)
    if version in versions:
        raise ZooError(f"{name} ch_mul={key} version {version} already exists; versions are never overwritten")
    if kinds and version_kind(version) not in kinds:
        raise ZooError(f"{name} ch_mul={key} uses {kinds.pop()} versions; {version!r} would mix schemes")
    if version in slot["aliases"]:
        raise ZooError(f"{version!r} is already an alias of {name} ch_mul={key}")
    versions[version] = record_fn(version)
    return EntryRef(name, key, version, versions[version], aliases_of(slot, version))


def set_alias(index: dict[str, Any], name: str, ch_mul: ChMul, alias: str, version: Any | None) -> str | None:
    """Point ``alias`` at ``version`` (``None`` removes it) in place; returns the previous target."""
    check_alias(alias)
    ref = resolve(index, name, ch_mul, LATEST)  # validates name and width
    slot = index["models"][name][ref.ch_mul]
    if alias in slot["versions"]:
        raise ZooError(f"alias {alias!r} would shadow a version of the same name")
    previous = slot["aliases"].get(alias)
    if version is None:
        if previous is None:
            raise ZooError(f"{name} ch_mul={ref.ch_mul} has no alias {alias!r}")
        del slot["aliases"][alias]
    else:
        slot["aliases"][alias] = resolve(index, name, ch_mul, version).version
    return previous


# ------------------------------------------------------------------------------------------ entries
def seal_entry(staged: Path, name: str, ch_mul: str, version: str,
               finalize: Callable[[Path, str], dict[str, Any]]) -> dict[str, Any]:
    """The index record of a staged entry, once its version is known.

    ``finalize(staged, version) -> metadata`` writes the version-dependent files (metadata.json); then
    the entry's manifest.json is written and every file hashed, so the record lists exactly what is there.
    """
    metadata = finalize(staged, version)
    write_json(staged / MANIFEST_FILE, manifest_for(staged))
    return {"path": entry_path(name, ch_mul, version), "published": metadata["registry"]["published"],
            "files": hash_tree(staged), "metadata": metadata}


def require_verified(directory: Path, ref: EntryRef) -> Path:
    """``directory`` when every file of ``ref`` in it matches the index, else a ZooError listing what does not."""
    problems = verify_files(directory, ref.files)
    if problems:
        raise ZooError(f"{ref} at {directory} failed verification: " + "; ".join(problems))
    return Path(directory)


# --------------------------------------------------------------------------------- headline metadata
def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
        return value["value"]
    return None


def headline(metadata: dict[str, Any]) -> dict[str, Any]:
    """The few facts ``zoo list`` / ``zoo compare`` show: params, MACs, method, numeric metrics."""
    training = metadata.get("training") or {}
    metrics = metadata.get("metrics") or {}
    out = {k: metadata.get(k) for k in ("params_G", "params_D", "macs_G_paper", "macs_G_fvcore", "resolution")}
    out["method"] = training.get("method") if isinstance(training, dict) else None
    out["metrics"] = ({k: _number(v) for k, v in metrics.items() if _number(v) is not None}
                      if isinstance(metrics, dict) else {})
    return out


# -------------------------------------------------------------------------------- the store interface
class Store:
    """Where entries live.  Read side shared by all stores; writable stores add publish/alias."""

    location: str = ""
    writable: bool = False

    def read_index(self) -> dict[str, Any]:
        raise NotImplementedError

    def fetch(self, ref: EntryRef) -> Path:
        """A local directory holding ``ref``'s files, each verified against the index."""
        raise NotImplementedError

    def resolve(self, name: str, ch_mul: ChMul = 1, version: Any = None) -> EntryRef:
        return resolve(self.read_index(), name, ch_mul, version, where=self.location)

    def verify(self, ref: EntryRef) -> list[str]:
        """Problems of one entry (empty when every file matches the index)."""
        try:
            self.fetch(ref)
        except ZooError as exc:
            return [str(exc)]
        return []

    # Writable stores override these.
    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="ganzoo-publish-"))

    def publish_dir(self, staged: Path, name: str, ch_mul: str, version: str | None,
                    finalize: Callable[[Path, str], dict[str, Any]], aliases=()) -> EntryRef:
        """Make ``staged`` (from :meth:`staging_dir`) a new version; records come from :func:`seal_entry`."""
        raise ZooError(f"{self.location} is a read-only store")

    def set_alias(self, name: str, ch_mul: ChMul, alias: str, version: Any):
        raise ZooError(f"{self.location} is a read-only store: set aliases where the registry is published")

    def set_record_field(self, ref: EntryRef, key: str, value: Any) -> None:
        raise ZooError(f"{self.location} is a read-only store")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


# ----------------------------------------------------------------------------------- where things live
def ganzoo_home() -> Path:
    """``$GANZOO_HOME`` (default ~/.cache/ganzoo): the default registry and the download caches live here."""
    return Path(os.environ.get("GANZOO_HOME") or Path.home() / ".cache" / "ganzoo").expanduser()


def default_registry_uri() -> str:
    """``$GANZOO_REGISTRY`` if set, else ``$GANZOO_HOME/registry`` (default ~/.cache/ganzoo/registry)."""
    return os.environ.get("GANZOO_REGISTRY") or str(ganzoo_home() / "registry")
