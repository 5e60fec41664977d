"""The local-directory store: the embedded default (``$GANZOO_HOME/registry``), no server needed.

Publishing stages the entry in ``<root>/.staging/``, then, holding an exclusive ``fcntl`` lock on
``<root>/.lock``, picks the version, renames the staged directory into ``<name>/<ch>/<version>`` and
replaces ``index.json`` atomically.  Readers never lock: they read ``index.json`` (always a complete
file) and only ever see directories the index already lists.  The same tree served by any static web
server is an HTTP store.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError
from zoo.integrity import (current_umask, file_lock, fsync_dir, fsync_tree, read_json, verify_files, walk_tree,
                           write_json)
from zoo.registry.model import (
    INDEX_FILE, EntryRef, Store, add_version, ch_key, check_entry, check_index, empty_index, require_verified,
    resolve, seal_entry, set_alias,
)

LOCK_FILE = ".lock"
STAGING_DIR = ".staging"


def _make_read_only(directory: Path) -> None:
    """Files read-only, with the modes the umask gives (not the source's: mkstemp / safetensors make 0600
    files, which a web server serving the registry, or another user sharing it, could not read)."""
    umask = current_umask()
    for p in directory.rglob("*"):
        if p.is_symlink():  # chmod follows symlinks: never touch a target elsewhere (hash_tree refused them)
            continue
        if p.is_dir():
            p.chmod(0o777 & ~umask)
        elif p.is_file():
            p.chmod(0o444 & ~umask)


class LocalStore(Store):
    """A registry in a local directory (created on first publish); ``read_only`` refuses writes."""

    def __init__(self, root: str | os.PathLike, read_only: bool = False):
        self.root = Path(root).expanduser().resolve()
        self.location = str(self.root)
        self.writable = not read_only

    # ------------------------------------------------------------------ read
    def read_index(self) -> dict[str, Any]:
        path = self.root / INDEX_FILE
        if not path.exists():
            return empty_index()
        return check_index(read_json(path), str(path))

    def entry_dir(self, ref: EntryRef) -> Path:
        return self.root / ref.path

    def fetch(self, ref: EntryRef) -> Path:
        check_entry(ref, self.location)
        return require_verified(self.entry_dir(ref), ref)

    # ----------------------------------------------------------------- write
    def _lock(self):
        return file_lock(self.root / LOCK_FILE)

    def _update_index(self, mutate: Callable[[dict[str, Any]], Any]) -> Any:
        """Read-modify-write the index under the lock; ``mutate`` edits it in place."""
        if not self.writable:
            raise ZooError(f"{self.location} is a read-only store")
        with self._lock():
            index = self.read_index()
            result = mutate(index)
            write_json(self.root / INDEX_FILE, index)
            return result

    def publish_dir(self, staged: Path, name: str, ch_mul: str, version: str | None,
                    finalize: Callable[[Path, str], dict[str, Any]], aliases=()) -> EntryRef:
        """Move a staged entry directory into place as a new version.

        ``staged`` must live under ``<root>/.staging`` (same file system, so the move is a rename).
        ``finalize(dir, version) -> metadata`` runs under the lock once the version is known, to write
        the version-dependent files (metadata.json); manifest and hashes are computed after it.
        """
        def mutate(index):
            def record(v: str) -> dict[str, Any]:
                sealed = seal_entry(staged, name, ch_mul, v, finalize)
                target = self.root / sealed["path"]
                if target.exists():  # left by a publisher that died before updating the index
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                fsync_tree(staged)
                os.replace(staged, target)
                fsync_dir(target.parent)  # the entry is on disk before the index that lists it
                _make_read_only(target)
                return sealed

            ref = add_version(index, name, ch_mul, version, record)
            for alias in aliases:
                set_alias(index, name, ch_mul, alias, ref.version)
            return resolve(index, name, ch_mul, ref.version, where=self.location)

        return self._update_index(mutate)

    def staging_dir(self) -> Path:
        base = self.root / STAGING_DIR
        base.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=base))
        # mkdtemp makes it 0700 and it becomes the entry directory: give it the mode mkdir would
        os.chmod(staged, 0o777 & ~current_umask())
        return staged

    def set_alias(self, name: str, ch_mul, alias: str, version) -> tuple[str | None, str | None]:
        """Point (or with ``version=None`` remove) an alias; returns (previous, new) target."""
        def mutate(index):
            previous = set_alias(index, name, ch_mul, alias, version)
            return previous, index["models"][name][ch_key(ch_mul)]["aliases"].get(alias)

        return self._update_index(mutate)

    def set_record_field(self, ref: EntryRef, key: str, value: Any) -> None:
        """Attach mutable bookkeeping (e.g. the MLflow model version) to an entry's index record."""
        if key in ("path", "files", "metadata", "published"):
            raise ZooError(f"index field {key!r} is immutable")

        def mutate(index):
            index["models"][ref.name][ref.ch_mul]["versions"][ref.version][key] = value

        self._update_index(mutate)

    def verify(self, ref: EntryRef) -> list[str]:
        """Problems of one entry: files in the index that are missing or differ, and unlisted extra files."""
        try:
            check_entry(ref, self.location)
        except ZooError as exc:
            return [str(exc)]
        directory = self.entry_dir(ref)
        if not directory.is_dir():
            return [f"{ref.path}: directory missing"]
        problems = verify_files(directory, ref.files)
        tree = walk_tree(directory)  # never follows a symlink nor opens a special file
        problems += [f"{rel}: not listed in the index (added after publishing)" + ("" if kind == "file" else
                     f", {kind}") for rel, kind in tree.items() if rel not in ref.files]
        return problems

