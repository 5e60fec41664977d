"""Integrity of files on disk: hashes, manifests, safe names and opens, atomic and durable writes, locks.

Checkpoints (:mod:`zoo.checkpoint`) and registry stores (:mod:`zoo.registry`) share this one module, so a
checkpoint's ``manifest.json`` and a registry index's file records are written, read and checked by the
same code::

    manifest.json = {"files": {relpath: {"sha256": 64 lower-case hex digits, "size": bytes}}}

A directory may come from someone else (a registry entry, a download), so reading one trusts nothing
but the hashes it was checked against: every name from a manifest or index must be a plain relative
path (:func:`check_relpath`), files are opened only when they are regular files inside the directory
(:func:`open_regular`: no symlinks, FIFOs or devices, never a blocking open), and a file compares equal
to its record only when its size and sha256 both match (:func:`file_problem`).  Writes go to a temporary
file that is fsynced and renamed into place, and the directory is fsynced after it (:func:`write_json`),
so a reader never sees half a file and a crash never loses one that was reported written.

Nothing here imports torch.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import ZooError

MANIFEST_FILE = "manifest.json"

FileRecord = dict[str, Any]  # {"sha256": str, "size": int}

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


# ------------------------------------------------------------------------------------------------ hashing
def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_fd(fd: int, chunk: int = 1 << 20) -> str:
    """sha256 of what is left to read from an open descriptor."""
    digest = hashlib.sha256()
    while block := os.read(fd, chunk):
        digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ safe names and opening
def check_relpath(rel: Any, what: str = "path") -> str:
    """``rel`` if it is a plain relative POSIX path, else a ZooError.

    Names in a manifest, an index or export.json come from whoever wrote that file, and they are joined to
    a local directory before anything is read or written, so anything that could leave that directory is
    refused: absolute paths, '..', '.', empty parts ('a//b', trailing '/'), backslashes and drive letters
    (Windows separators), NUL and other control characters.
    """
    problem = None
    if not isinstance(rel, str) or not rel:
        problem = "empty or not a string"
    elif "\x00" in rel:
        problem = "NUL byte"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in rel):
        problem = "control character"
    elif "\\" in rel:
        problem = "backslash"
    elif rel.startswith("/"):
        problem = "absolute"
    elif _DRIVE_RE.match(rel):
        problem = "drive letter"
    elif any(part in ("", ".", "..") for part in rel.split("/")):
        problem = "empty, '.' or '..' part"
    if problem:
        raise ZooError(f"{what} {rel!r} is not a plain relative path ({problem})")
    return rel


def check_file_record(info: Any, where: str, need_size: bool = True) -> FileRecord:
    """A manifest / index file record ``{"sha256": 64 hex digits, "size": int >= 0}``, or a ZooError."""
    if not isinstance(info, dict):
        raise ZooError(f"{where}: expected {{\"sha256\": ..., \"size\": ...}}, got {type(info).__name__}")
    if not isinstance(info.get("sha256"), str) or not _SHA256_RE.match(info["sha256"]):
        raise ZooError(f"{where}: no valid sha256 (64 lower-case hex digits)")
    size = info.get("size")
    if (size is not None or need_size) and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ZooError(f"{where}: no valid size (a whole number of bytes)")
    return info


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, for error messages: 'a symlink', 'a FIFO', 'a device', ..."""
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(directory: str | os.PathLike, rel: str, follow_symlinks: bool = False) -> int:
    """A read-only file descriptor of ``directory/rel``, only if that is a regular file inside ``directory``.

    Each part of ``rel`` is opened relative to the one before it with ``O_NOFOLLOW``, so a symlink anywhere
    below ``directory`` is refused (``follow_symlinks=True`` allows one as the last part only: the Hugging
    Face cache links snapshot files to blobs).  The type is checked with lstat before opening, so a FIFO or
    a device is never opened, and the open itself is ``O_NONBLOCK`` and re-checked with fstat, so a FIFO
    swapped in meanwhile cannot block.  Raises FileNotFoundError when it does not exist, ZooError when it
    is not a regular file.
    """
    check_relpath(rel)
    where = Path(directory) / rel
    cloexec = getattr(os, "O_CLOEXEC", 0)
    parts = rel.split("/")
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | cloexec)
    try:
        for part in parts[:-1]:
            try:
                fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | cloexec, dir_fd=dfd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ZooError(f"{where}: {part!r} on its path is a symlink or not a directory") from None
                raise
            os.close(dfd)
            dfd = fd
        st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        follow = follow_symlinks and stat.S_ISLNK(st.st_mode)
        if follow:
            st = os.stat(parts[-1], dir_fd=dfd)
        if not stat.S_ISREG(st.st_mode):
            raise ZooError(f"{where}: {file_kind(st.st_mode)}, not a regular file; refusing to read it")
        flags = os.O_RDONLY | os.O_NONBLOCK | cloexec | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = os.open(parts[-1], flags, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ZooError(f"{where}: a symlink, not a regular file; refusing to read it") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the lstat and the open
            os.close(fd)
            raise ZooError(f"{where}: not a regular file; refusing to read it")
        return fd
    finally:
        os.close(dfd)


def file_problem(directory: str | os.PathLike, rel: str, info: FileRecord,
                 follow_symlinks: bool = False) -> str | None:
    """Why ``directory/rel`` does not match ``info`` ({sha256[, size]}), or None when it does.

    The size is compared before anything is hashed, so a wrong file of any length costs one fstat.
    """
    try:
        fd = open_regular(directory, rel, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        return f"{rel}: missing"
    except ZooError as exc:
        return f"{rel}: {str(exc).split(': ', 1)[-1]}"
    except OSError as exc:  # permission denied, a file where a directory should be, ...
        return f"{rel}: cannot be opened ({exc.strerror or exc})"
    try:
        size = os.fstat(fd).st_size
        if info.get("size") is not None and size != info["size"]:
            return f"{rel}: size {size} != {info['size']} (truncated or modified)"
        if sha256_fd(fd) != info["sha256"]:
            return f"{rel}: sha256 mismatch (corrupted or tampered with)"
    finally:
        os.close(fd)
    return None


def verify_files(directory: str | os.PathLike, files: dict[str, FileRecord],
                 follow_symlinks: bool = False) -> list[str]:
    """Problems (missing / size / sha256 mismatch / not a regular file), one line per file, of ``directory``
    against ``files``.  Files are opened only as regular files inside ``directory`` (:func:`open_regular`);
    ``follow_symlinks`` allows a final symlink (the HF cache)."""
    problems = []
    for rel, info in sorted(files.items()):
        try:
            check_relpath(rel, "file name")
        except ZooError as exc:
            problems.append(str(exc))
            continue
        problem = file_problem(directory, rel, info, follow_symlinks=follow_symlinks)
        if problem is not None:
            problems.append(problem)
    return problems


# ------------------------------------------------------------------------------------ trees and manifests
def walk_tree(directory: str | os.PathLike) -> dict[str, str]:
    """{relative posix path: kind} of everything under ``directory`` (dotfiles skipped), symlinks not followed.

    kind is "file" for a regular file, else what it is ("a symlink", "a FIFO", ...), so that callers can
    refuse or report what they must never read.
    """
    directory = Path(directory)
    out = {}
    for root, dirs, names in os.walk(directory, followlinks=False):
        rel_root = Path(root).relative_to(directory)
        for name in sorted(dirs):  # a symlink to a directory is listed, never descended into
            if not name.startswith(".") and os.path.islink(os.path.join(root, name)):
                out[(rel_root / name).as_posix()] = "a symlink"
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
        for name in sorted(names):
            if name.startswith("."):
                continue
            mode = os.lstat(os.path.join(root, name)).st_mode
            out[(rel_root / name).as_posix()] = "file" if stat.S_ISREG(mode) else file_kind(mode)
    return dict(sorted(out.items()))


def hash_tree(directory: str | os.PathLike) -> dict[str, FileRecord]:
    """{relative posix path: {sha256, size}} of every regular file under ``directory`` (dotfiles skipped).

    Symlinks and special files are refused (ZooError): what is hashed is what gets published or trusted,
    and a symlink's target (or a FIFO) must never become part of a checkpoint or an entry.
    """
    directory = Path(directory)
    out = {}
    for rel, kind in walk_tree(directory).items():
        if kind != "file":
            raise ZooError(f"{directory / rel}: {kind}; a checkpoint or entry holds regular files only")
        p = directory / rel
        out[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return out


def manifest_for(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of ``directory``: ``{"files": {relpath: {sha256, size}}}`` of every file but itself."""
    return {"files": {rel: info for rel, info in hash_tree(directory).items() if rel != MANIFEST_FILE}}


def read_manifest(directory: str | os.PathLike) -> dict[str, FileRecord] | None:
    """{name: {sha256, size}} of a directory's manifest.json (None when there is none), shape-checked.

    Every name must be a plain relative path and every record needs a sha256; anything else is a ZooError
    naming manifest.json rather than a traceback later.
    """
    path = Path(directory) / MANIFEST_FILE
    if not os.path.lexists(path):
        return None
    manifest = read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        got = f"a JSON {type(manifest).__name__}" if not isinstance(manifest, dict) else "no 'files' mapping"
        raise ZooError(f"{path}: not a checkpoint manifest (expected an object with a 'files' mapping of "
                       f"name -> sha256 and size; got {got})")
    for name, info in files.items():
        check_relpath(name, f"{path}: file name")
        check_file_record(info, f"{path}: entry {name!r}", need_size=False)
    return files


def verify_manifest(directory: str | os.PathLike) -> set[str] | None:
    """Check every file manifest.json lists (if there is one); return the listed names (None: no manifest).

    Raises ZooError naming the first file that is missing, tampered with, or not a regular file inside the
    directory (a symlink, FIFO or device is never opened).  Callers read only the names returned.
    """
    directory = Path(directory)
    files = read_manifest(directory)
    if files is None:
        return None
    for name, info in sorted(files.items()):
        problem = file_problem(directory, name, info)
        if problem is None:
            continue
        p = directory / name
        if problem == f"{name}: missing":
            raise ZooError(f"{p}: listed in manifest.json but missing")
        if problem.startswith((f"{name}: sha256 mismatch", f"{name}: size ")):
            raise ZooError(f"{p}: sha256 does not match manifest.json (file corrupted or tampered with)")
        raise ZooError(f"{directory}/{problem}")
    return set(files)


# ---------------------------------------------------------------------------------- durable writes
def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (os.umask is racy)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_file(fh_or_fd) -> None:
    """Flush a file object (or take a descriptor) and fsync it: its bytes are on disk before a rename."""
    if hasattr(fh_or_fd, "flush"):
        fh_or_fd.flush()
        fh_or_fd = fh_or_fd.fileno()
    os.fsync(fh_or_fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory, so that a rename (or create/unlink) in it survives a crash.

    File systems that cannot fsync a directory (EINVAL / ENOTSUP) are skipped: there is nothing more to do.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return  # e.g. no read permission on the directory: the rename itself already happened
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(directory: str | os.PathLike) -> None:
    """fsync every file and directory under ``directory`` (before it is renamed into place: once an index
    lists it, a crash must not leave it with files the kernel had not written yet)."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically and durably: temp file in the same directory, fsync, rename, fsync the directory.

    mkstemp creates the file 0600; it is given the mode an ordinary ``open(path, "w")`` would (0666 minus
    the umask), so a registry shared with a web server or another user stays readable.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fsync_file(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


# Every JSON file the project reads (indexes, manifests, metadata, run records, bench tables) is kilobytes to
# a few MB; the cap keeps a hostile or corrupted file from becoming an unbounded allocation.
MAX_JSON_BYTES = 64 << 20


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a clear ZooError when it is missing, not JSON, not a regular file, or larger
    than :data:`MAX_JSON_BYTES`.

    Opened ``O_NONBLOCK`` and checked with fstat, so a FIFO or a device (``/dev/zero``) given as a JSON
    file is an error instead of a hang.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ZooError(f"{path} not found") from None
    except IsADirectoryError:
        raise ZooError(f"{path} is a directory, not a JSON file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ZooError(f"{path}: {file_kind(mode)}, not a regular JSON file")
        with os.fdopen(fd, "rb") as fh:
            fd = None
            data = fh.read(MAX_JSON_BYTES + 1)  # read-bounded too: the file may grow after fstat
            if len(data) > MAX_JSON_BYTES:
                raise ZooError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB, not a JSON file this project wrote")
            return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}") from None
    finally:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``out``; on success rename it to ``out``, on any error delete it.

    The directory counterpart of :func:`write_json`: readers see the old ``out`` or the new one, never a
    half-written one, and the rename is fsynced.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ZooError(f"{out} already exists (pass --overwrite / overwrite=True to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700; a checkpoint is as readable as any dir
    try:
        yield tmp
        fsync_dir(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            fsync_dir(out.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
            fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------------ locks
@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock (``fcntl.flock``) on ``path`` held for the ``with`` block (POSIX only)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
