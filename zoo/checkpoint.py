"""The one checkpoint format: a directory that training, import, export, registry and server share.

    DIR/config.json                 {"format": "ganzoo-checkpoint/1", "name", "family", "ch_mul", "arch": {...}}
    DIR/generator.safetensors       EMA generator weights (parameters and buffers) - the one users sample from
    DIR/generator_raw.safetensors   optional: the non-EMA generator (what training optimises)
    DIR/discriminator.safetensors   optional: the discriminator (a teacher's D is what DGL-GAN needs)
    DIR/metadata.json               free-form facts: training summary, params/MACs, metrics, latency, source
    DIR/manifest.json               optional: {"files": {name: {"sha256", "size"}}}; verified before loading

Nothing here unpickles: weights are safetensors, everything else JSON.  Writes go to a temporary
directory that is renamed into place, so a reader never sees half a checkpoint; JSON files are fsynced
before their rename and their directory after it (:func:`fsync_file`, :func:`fsync_dir`).

A checkpoint directory may come from someone else (a registry entry, a download), so reading one trusts
nothing but the hashes it was checked against: every name in a manifest must be a plain relative path
(:func:`check_relpath`), files are opened only when they are regular files inside the directory
(:func:`open_regular`: no symlinks, FIFOs or devices, never a blocking open), and when a manifest (or a
registry index) lists the files, a file it does not list is never read.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

FORMAT = "ganzoo-checkpoint/1"
CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
WEIGHT_FILES = {"G_ema": "generator.safetensors", "G": "generator_raw.safetensors", "D": "discriminator.safetensors"}


@dataclass
class Checkpoint:
    """Networks of one checkpoint. ``G`` is the raw generator when stored, else the EMA one."""

    config: Any  # the family's architecture config
    G_ema: Any
    G: Any = None
    D: Any = None
    name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        if self.G is None:
            self.G = self.G_ema

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def ch_mul(self) -> str:
        return self.config.ch_mul


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ safe names and opening
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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


def check_file_record(info: Any, where: str, need_size: bool = True) -> dict[str, Any]:
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


def _sha256_fd(fd: int, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    while block := os.read(fd, chunk):
        digest.update(block)
    return digest.hexdigest()


def file_problem(directory: str | os.PathLike, rel: str, info: dict[str, Any],
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
        if _sha256_fd(fd) != info["sha256"]:
            return f"{rel}: sha256 mismatch (corrupted or tampered with)"
    finally:
        os.close(fd)
    return None


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


def write_json(path: Path, data: Any) -> None:
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


def read_json(path: Path) -> Any:
    """Parse a JSON file; a clear ZooError when it is missing, not JSON, or not a regular file.

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
            return json.loads(fh.read().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path} is not valid JSON: {exc}") from None
    finally:
        if fd is not None:
            os.close(fd)


def state_dict_for_save(module) -> dict:
    """Contiguous, non-shared CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def manifest_for(directory: Path) -> dict[str, Any]:
    files = {}
    for p in sorted(Path(directory).iterdir()):
        # lstat: a symlink or FIFO left in the directory is neither followed nor listed
        if stat.S_ISREG(p.lstat().st_mode) and p.name != MANIFEST_FILE and not p.name.startswith("."):
            files[p.name] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return {"files": files}


def read_manifest(directory: Path) -> dict[str, dict[str, Any]] | None:
    """{name: {sha256, size}} of a checkpoint's manifest.json (None when there is none), shape-checked.

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


def verify_manifest(directory: Path) -> set[str] | None:
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


@contextmanager
def staging_dir(out: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary sibling of ``out``; on success rename it to ``out``, on any error delete it."""
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


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    config: Any,
    G_ema: Any,
    G: Any = None,
    D: Any = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
    manifest: bool = True,
) -> Path:
    """Write a checkpoint directory atomically and return its path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    with staging_dir(directory, overwrite=overwrite) as tmp:
        header = {"format": FORMAT, "family": config.family, "ch_mul": str(config.ch_mul)}
        for key, module in (("G_ema", G_ema), ("G", G), ("D", D)):
            if module is not None:
                save_file(state_dict_for_save(module), str(tmp / WEIGHT_FILES[key]), metadata=header)
                # safetensors >= 0.7 creates its files 0600: give them the mode open() would (0666 - umask)
                os.chmod(tmp / WEIGHT_FILES[key], 0o666 & ~current_umask())
        write_json(tmp / CONFIG_FILE, {"format": FORMAT, "name": name, "family": config.family,
                                       "ch_mul": str(config.ch_mul), "arch": config.to_dict()})
        write_json(tmp / METADATA_FILE, metadata or {})
        if manifest:
            write_json(tmp / MANIFEST_FILE, manifest_for(tmp))
    return directory


def read_config(directory: str | os.PathLike):
    """(name, architecture config) of a checkpoint directory, without loading weights."""
    from zoo.models import config_from_dict

    path = Path(directory) / CONFIG_FILE
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise ZooError(f"{directory}: unsupported checkpoint format {found!r} (expected {FORMAT})")
    if not isinstance(data.get("arch"), dict):
        raise ZooError(f"{path}: no architecture ('arch' mapping)")
    try:
        config = config_from_dict(data["arch"])
    except ZooError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        raise ZooError(f"{path}: not a valid architecture ({type(exc).__name__}: {exc})") from None
    return data.get("name"), config


def _load_weights(module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ZooError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape: config.json describes another architecture
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:300])
        raise ZooError(f"{path}: weights do not match the architecture in config.json ({first})") from None
    if missing or unexpected:
        raise ZooError(
            f"{path}: weights do not match the architecture in config.json "
            f"(missing: {list(missing)[:5]}, unexpected: {list(unexpected)[:5]})"
        )


# how much larger than its (verified) weights file a network may be: fp16/bf16 weights load into fp32
MAX_WEIGHTS_EXPANSION = 4


def _check_fits_weights(build, config, path: Path) -> None:
    """Refuse to allocate a network that its weights file could not fill.

    config.json decides what is built, and an entry's config is only as trustworthy as its index: a
    config naming a huge architecture would allocate gigabytes before the weights fail to match.  The
    network is built first on the meta device (no memory) and must fit in MAX_WEIGHTS_EXPANSION x the
    weights file's size, which the manifest or index has already bounded.
    """
    import torch

    try:
        with torch.device("meta"):
            probe = build(config)
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        raise ZooError(f"{path.parent / CONFIG_FILE}: cannot build the architecture it describes ({exc})") from None
    need = sum(t.numel() * t.element_size() for t in probe.state_dict().values())
    have = path.stat().st_size
    if need > MAX_WEIGHTS_EXPANSION * have:
        raise ZooError(f"{path.parent / CONFIG_FILE} describes a network of {need / 2**20:.1f} MiB, but "
                       f"{path.name} holds {have / 2**20:.1f} MiB: config.json and the weights do not belong "
                       "together; refusing to build it")


def load_checkpoint(directory: str | os.PathLike, *, device: str = "cpu", load_D: bool = True,
                    verify: bool = True, listed=None) -> Checkpoint:
    """Load a checkpoint directory (modules in eval mode). Verifies manifest.json when present.

    ``listed``: names already verified by the caller (a registry index, with ``verify=False``).  When a
    manifest or ``listed`` says which files belong to the checkpoint, a file it does not list is never
    read: one copied in later (say a discriminator.safetensors) is an error, not a silent substitute.
    Without either (an old checkpoint with no manifest), every present file is used.
    """
    from zoo.models import build_discriminator, build_generator

    directory = Path(directory)
    if not directory.is_dir():
        raise ZooError(f"{directory}: no such checkpoint directory")
    if listed is not None:
        listed = set(listed)
    if verify:
        in_manifest = verify_manifest(directory)
        if in_manifest is not None:
            listed = in_manifest if listed is None else listed & in_manifest

    def present(fname: str) -> bool:
        path = directory / fname
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return False
        if listed is not None and fname not in listed:
            raise ZooError(f"{path}: not listed in the checkpoint's {MANIFEST_FILE} / registry index (added after "
                           "it was written); refusing to use an unverified file. Remove it, or re-create the "
                           "checkpoint")
        if not stat.S_ISREG(mode):
            raise ZooError(f"{path}: {file_kind(mode)}, not a regular file; refusing to read it")
        return True

    if not present(CONFIG_FILE):
        raise ZooError(f"{directory / CONFIG_FILE} not found")
    name, config = read_config(directory)
    metadata = read_json(directory / METADATA_FILE) if present(METADATA_FILE) else {}
    if not isinstance(metadata, dict):
        raise ZooError(f"{directory / METADATA_FILE}: expected a JSON object, got a {type(metadata).__name__}")

    def load(key: str, build):
        path = directory / WEIGHT_FILES[key]
        if not present(WEIGHT_FILES[key]):
            return None
        _check_fits_weights(build, config, path)
        module = build(config)
        _load_weights(module, path)
        return module.to(device).eval()

    G_ema = load("G_ema", build_generator)
    if G_ema is None:
        raise ZooError(f"{directory}: no {WEIGHT_FILES['G_ema']}")
    G = load("G", build_generator)
    D = load("D", build_discriminator) if load_D else None
    return Checkpoint(config=config, G_ema=G_ema, G=G, D=D, name=name, metadata=metadata, path=directory)
