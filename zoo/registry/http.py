"""A read-only HTTP(S) store: the registry tree served by any static web server.

``https://host/zoo`` must serve ``index.json`` and the entry files at the paths the index lists (e.g.
``python -m http.server -d ~/.cache/ganzoo/registry``, nginx, S3, GitHub Pages).  Downloads go to
``$GANZOO_HOME/cache/http/<host>-<hash>/``:

* each file is fetched into ``.partial/<entry>/<file>.part`` and resumed with an HTTP ``Range`` request
  after an interruption (automatically ``retries`` times, and on the next load); a server that ignores
  ``Range`` simply restarts the file;
* a finished file is checked against the index's size and sha256; a mismatch deletes it and raises an
  error naming the file;
* only when every file of the entry is verified is the directory renamed into the cache proper, so a
  later load never trusts a partial download.  Cached entries are re-hashed on every load.

The server is not trusted: the index it serves is shape-checked (``check_index``) and every entry's path
and file names must be plain relative paths inside the entry *before* a byte is written, since a hash
from the same index proves nothing about where a file may go.  A body longer than the index says is cut
off, so a server cannot fill the disk.

The last index fetched is kept, so cached entries still load when the server is unreachable.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.integrity import file_lock, fsync_file, read_json, sha256_file, verify_files, write_json
from zoo.registry.model import INDEX_FILE, EntryRef, Store, check_entry, check_index, ganzoo_home

USER_AGENT = "ganzoo-registry/1"
CHUNK = 1 << 16
MAX_INDEX_BYTES = 256 << 20  # an index.json larger than this is not a registry index
_TRANSIENT = (http.client.IncompleteRead, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError,
              urllib.error.URLError)


def _slug(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    host = re.sub(r"[^A-Za-z0-9.-]", "_", parsed.netloc)
    return f"{host}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class HttpStore(Store):
    """Read-only store at an http(s) base URL, cached under ``cache_dir``."""

    def __init__(self, url: str, cache_dir: str | os.PathLike | None = None, retries: int = 3,
                 timeout: float = 60.0):
        self.location = url.rstrip("/")
        self.cache = Path(cache_dir) if cache_dir else ganzoo_home() / "cache" / "http" / _slug(self.location)
        self.retries = retries
        self.timeout = timeout
        self._index: dict[str, Any] | None = None

    def url(self, rel: str) -> str:
        return f"{self.location}/{urllib.parse.quote(rel, safe='/')}"

    def _open(self, rel: str, offset: int = 0):
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        return urllib.request.urlopen(urllib.request.Request(self.url(rel), headers=headers), timeout=self.timeout)

    # ------------------------------------------------------------------ index
    def read_index(self) -> dict[str, Any]:
        if self._index is not None:
            return self._index
        cached = self.cache / INDEX_FILE
        try:
            with self._open(INDEX_FILE) as resp:
                body = resp.read(MAX_INDEX_BYTES + 1)
            if len(body) > MAX_INDEX_BYTES:
                raise ZooError(f"{self.url(INDEX_FILE)}: larger than {MAX_INDEX_BYTES >> 20} MiB; not a registry index")
        except urllib.error.HTTPError as exc:
            raise ZooError(
                f"{self.url(INDEX_FILE)}: HTTP {exc.code} {exc.reason} (is this a ganzoo registry?)") from None
        except (*_TRANSIENT, OSError) as exc:
            if not cached.is_file():
                raise ZooError(f"cannot reach {self.url(INDEX_FILE)} ({exc}) and no cached index") from None
            warnings.warn(f"cannot reach {self.location} ({exc}); using the cached index from {cached}")
            index = check_index(read_json(cached), str(cached))
        else:
            try:
                index = json.loads(body.decode("utf-8"))
            except ValueError as exc:
                raise ZooError(f"{self.url(INDEX_FILE)} is not valid JSON ({exc})") from None
            index = check_index(index, self.url(INDEX_FILE))
            self.cache.mkdir(parents=True, exist_ok=True)
            write_json(cached, index)
        self._index = index
        return index

    # -------------------------------------------------------------- download
    def _download(self, rel: str, part: Path, size: int) -> None:
        """Download ``rel`` into ``part`` (resuming what is there) until it has ``size`` bytes."""
        from tqdm.auto import tqdm

        part.parent.mkdir(parents=True, exist_ok=True)
        attempts = 0
        while True:
            offset = part.stat().st_size if part.exists() else 0
            if offset > size:
                part.unlink()
                offset = 0
            if offset == size:
                return
            try:
                with self._open(rel, offset) as resp:
                    if offset and resp.status != 206:  # server ignored Range: start over
                        offset = 0
                    elif offset and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                        offset = 0
                    with open(part, "ab" if offset else "wb") as fh, tqdm(
                        total=size, initial=offset, unit="B", unit_scale=True, desc=rel, leave=False, disable=None
                    ) as bar:
                        left = size - offset  # never write more than the index promised
                        while left > 0 and (block := resp.read(min(CHUNK, left))):
                            fh.write(block)
                            left -= len(block)
                            bar.update(len(block))
                        fsync_file(fh)
                if part.stat().st_size < size:
                    raise http.client.IncompleteRead(b"", size - part.stat().st_size)
            except urllib.error.HTTPError as exc:
                if exc.code == 416:  # range not satisfiable: our partial file is stale
                    part.unlink(missing_ok=True)
                    continue
                raise ZooError(f"{self.url(rel)}: HTTP {exc.code} {exc.reason}") from None
            except _TRANSIENT as exc:
                attempts += 1
                if attempts > self.retries:
                    have = part.stat().st_size if part.exists() else 0
                    raise ZooError(
                        f"download of {self.url(rel)} interrupted at {have}/{size} bytes ({exc!r}); "
                        "load again to resume"
                    ) from None

    def fetch(self, ref: EntryRef) -> Path:
        # every name below comes from the server: checked before any path is built or byte written
        check_entry(ref, self.location)
        final = self.cache / ref.path
        if final.is_dir():
            problems = verify_files(final, ref.files)
            if problems:
                raise ZooError(f"cached {ref} at {final} failed verification: {'; '.join(problems)}. "
                               f"Delete {final} to download it again.")
            return final
        with file_lock(self.cache / ".locks" / (ref.path.replace("/", "__") + ".lock")):
            if final.is_dir():  # another process finished it while we waited
                return self.fetch(ref)
            staging = self.cache / ".partial" / ref.path
            for rel, info in sorted(ref.files.items()):
                dst = staging / rel
                if dst.is_file() and dst.stat().st_size == info["size"] and sha256_file(dst) == info["sha256"]:
                    continue
                part = dst.with_name(dst.name + ".part")
                self._download(rel=f"{ref.path}/{rel}", part=part, size=info["size"])
                digest = sha256_file(part)
                if digest != info["sha256"]:
                    part.unlink()
                    raise ZooError(f"{ref}: downloaded {rel} from {self.url(ref.path + '/' + rel)} does not match "
                                   f"the index's sha256 ({digest[:12]}... != {info['sha256'][:12]}...); discarded")
                os.replace(part, dst)
            for p in sorted(staging.rglob("*"), reverse=True):  # leftovers of older attempts
                if p.is_file() and p.relative_to(staging).as_posix() not in ref.files:
                    p.unlink()
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, final)
        return final

    def clear_cache(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
