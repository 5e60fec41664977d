"""A Hugging Face Hub store (optional extra ``dglgan-zoo[hub]``): ``hf://org/repo[@revision]``.

The Hub repo (type "model") holds the same tree as a local registry -- ``index.json`` plus one folder
per variant, ``<name>/<ch_mul>/<version>/`` -- and a ``README.md`` model card generated from the index.

* Reading resolves ``index.json`` at the revision (branch, tag or commit; default ``main``) and then
  downloads every file of an entry *at the commit that index came from*, so an entry is always pinned to
  one immutable commit.  Files land in the Hugging Face cache (``HF_HUB_CACHE``) and are re-hashed
  against the index's sha256 on every load (the Hub client does not check content hashes itself).
  ``HF_HUB_OFFLINE=1`` loads from the cache alone.  The index's names are checked (``check_index``:
  plain relative paths, each record's path its own ``<name>/<ch>/<version>``) before any file is
  requested, so an index cannot make the client write outside its cache.
* Publishing makes one commit holding the entry's files, the new index and the regenerated card, with
  ``parent_commit`` set to the commit the index was read from: a concurrent publisher makes the
  commit fail instead of silently overwriting the index (re-run to publish on top).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError, require
from zoo.integrity import read_json, verify_files
from zoo.registry.card import model_card  # the README.md card every commit regenerates
from zoo.registry.model import (
    INDEX_FILE, EntryRef, Store, add_version, check_entry, check_index, empty_index, resolve, seal_entry, set_alias,
)

CARD_FILE = "README.md"


class _Missing(ZooError):
    """The repo, revision or file does not exist on the Hub."""


def _hub():
    return require("huggingface_hub", "hub", "Hugging Face Hub registries")


class HfStore(Store):
    """A registry in a Hugging Face Hub model repo."""

    writable = True

    def __init__(self, repo_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                 token: str | None = None):
        if not repo_id or repo_id.count("/") != 1:
            raise ZooError(f"bad Hugging Face repo {repo_id!r}: use hf://org/repo[@revision]")
        self.repo_id = repo_id
        self.revision = revision or "main"
        self.cache_dir = str(cache_dir) if cache_dir else None
        self.token = token
        self.location = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
        self._index: dict[str, Any] | None = None
        self.commit: str | None = None  # the commit the index was read from

    @classmethod
    def from_uri(cls, uri: str) -> "HfStore":
        body = uri[len("hf://"):]
        repo_id, _, revision = body.partition("@")
        return cls(repo_id.strip("/"), revision or None)

    def _download(self, filename: str, revision: str, force: bool = False) -> Path:
        hub = _hub()
        from huggingface_hub import errors

        try:
            return Path(hub.hf_hub_download(self.repo_id, filename, revision=revision, cache_dir=self.cache_dir,
                                            token=self.token, force_download=force, library_name="ganzoo"))
        except errors.LocalEntryNotFoundError as exc:
            raise ZooError(f"{self.location}: {filename} is not in the local Hugging Face cache and the Hub is "
                           f"unreachable or HF_HUB_OFFLINE is set ({exc.__class__.__name__})") from None
        except (errors.EntryNotFoundError, errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as exc:
            raise _Missing(f"{self.location}: {filename} not found ({exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0]})") from None

    # ------------------------------------------------------------------ read
    def read_index(self) -> dict[str, Any]:
        if self._index is None:
            path = self._download(INDEX_FILE, self.revision)
            self.commit = path.parent.name  # .../snapshots/<commit>/index.json
            self._index = check_index(read_json(path), f"{self.location}/{INDEX_FILE}")
        return self._index

    def fetch(self, ref: EntryRef) -> Path:
        self.read_index()
        check_entry(ref, self.location)  # names from the repo: checked before any download writes a file
        paths = {rel: self._download(f"{ref.path}/{rel}", self.commit) for rel in sorted(ref.files)}
        rel, path = next(iter(paths.items()))
        directory = path.parents[len(Path(rel).parts) - 1]  # .../snapshots/<commit>/<name>/<ch>/<version>
        # snapshot files are the HF cache's symlinks to its blobs: a final symlink is expected here
        problems = verify_files(directory, ref.files, follow_symlinks=True)
        from huggingface_hub import constants

        if problems and not constants.HF_HUB_OFFLINE:  # a corrupted cache blob: fetch it once more
            for line in problems:
                self._download(f"{ref.path}/{line.split(':')[0]}", self.commit, force=True)
            problems = verify_files(directory, ref.files, follow_symlinks=True)
        if problems:
            raise ZooError(f"{ref} from {self.location}@{self.commit} failed verification: {'; '.join(problems)}")
        return directory

    # ----------------------------------------------------------------- write
    def _read_for_update(self) -> dict[str, Any]:
        """The index at the branch head (an empty one for a new repo), remembering its commit."""
        hub = _hub()
        from huggingface_hub import errors

        self._index = None
        try:
            return json.loads(json.dumps(self.read_index()))  # a private copy to mutate
        except _Missing:
            api = hub.HfApi(token=self.token)
            try:
                self.commit = api.repo_info(self.repo_id, revision=self.revision).sha
            except errors.RepositoryNotFoundError:
                api.create_repo(self.repo_id, exist_ok=True)
                self.commit = api.repo_info(self.repo_id, revision=self.revision).sha
            return empty_index()

    def _commit(self, index: dict[str, Any], message: str, extra: dict[str, Path] | None = None) -> str:
        hub = _hub()
        from huggingface_hub import CommitOperationAdd, errors

        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in sorted((extra or {}).items())]
        ops.append(CommitOperationAdd(path_in_repo=INDEX_FILE,
                                      path_or_fileobj=json.dumps(index, indent=2, sort_keys=True).encode()))
        ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=model_card(index, self.repo_id).encode()))
        try:
            info = hub.HfApi(token=self.token).create_commit(
                self.repo_id, ops, commit_message=message, revision=self.revision, parent_commit=self.commit)
        except errors.HfHubHTTPError as exc:
            raise ZooError(f"{self.location}: commit failed ({exc}); if another publisher committed meanwhile, "
                           "run the command again") from None
        self._index = None
        return info.oid

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="ganzoo-hf-publish-"))

    def publish_dir(self, staged: Path, name: str, ch_mul: str, version: str | None,
                    finalize: Callable[[Path, str], dict[str, Any]], aliases=()) -> EntryRef:
        index = self._read_for_update()

        def record(v: str) -> dict[str, Any]:
            return seal_entry(staged, name, ch_mul, v, finalize)

        ref = add_version(index, name, ch_mul, version, record)
        for alias in aliases:
            set_alias(index, name, ch_mul, alias, ref.version)
        files = {f"{ref.path}/{rel}": staged / rel for rel in ref.files}
        self._commit(index, f"publish {ref}", files)
        return resolve(index, name, ch_mul, ref.version, where=self.location)

    def set_alias(self, name: str, ch_mul, alias: str, version):
        index = self._read_for_update()
        previous = set_alias(index, name, ch_mul, alias, version)
        new = resolve(index, name, ch_mul, version).version if version is not None else None
        self._commit(index, f"alias {name} ch_mul={ch_mul}: {alias} -> {new}")
        return previous, new

    def set_record_field(self, ref: EntryRef, key: str, value: Any) -> None:
        index = self._read_for_update()
        index["models"][ref.name][ref.ch_mul]["versions"][ref.version][key] = value
        self._commit(index, f"record {key} of {ref}")

