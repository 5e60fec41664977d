"""Hostile checkpoint directories: manifest.json naming files outside the directory, symlinks, FIFOs,
devices, unlisted extra files, manifests of the wrong JSON shape, a config.json of the wrong
architecture.  Plus the write side: JSON files get the umask's mode, and are fsynced before their
rename with their directory fsynced after it.

Anything that could hang (a FIFO, /dev/zero) runs in a subprocess with a timeout, so a regression
fails the test instead of hanging the suite.
"""
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from test_registry import make_checkpoint
from zoo.checkpoint import load_checkpoint, save_checkpoint
from zoo.integrity import verify_manifest, write_json
from zoo.cli import main
from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def list_in_manifest(directory: Path, name: str, data: bytes) -> None:
    """Add ``name`` to manifest.json with the sha256 and size of ``data`` (what an attacker would write)."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][name] = {"sha256": sha(data), "size": len(data)}
    path.write_text(json.dumps(manifest))


def run_isolated(code: str, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a hang is a failure (TimeoutExpired), never a stuck suite."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


VERIFY = """
import sys
from zoo.integrity import verify_manifest
from zoo.errors import ZooError
try:
    verify_manifest(sys.argv[1])
except ZooError as exc:
    print("ZooError:", exc)
    sys.exit(3)
print("verified")
"""


@pytest.fixture
def ckpt(tmp_path):
    directory, _ = make_checkpoint(tmp_path / "ckpt")
    return directory


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_bytes(b"api-token=hunter2\n")
    return path


# ------------------------------------------------------------------------- manifest names and file types
def test_manifest_cannot_name_an_absolute_path(ckpt, secret):
    """The old verify_manifest hashed any absolute path it was given (and passed when the hash matched)."""
    list_in_manifest(ckpt, str(secret), secret.read_bytes())
    with pytest.raises(ZooError, match=r"manifest.json: file name .* not a plain relative path \(absolute\)"):
        verify_manifest(ckpt)
    with pytest.raises(ZooError, match="not a plain relative path"):
        load_checkpoint(ckpt)


def test_manifest_cannot_name_a_parent_path(ckpt, secret):
    list_in_manifest(ckpt, "../secret.txt", secret.read_bytes())
    with pytest.raises(ZooError, match=r"file name '\.\./secret.txt' is not a plain relative path"):
        verify_manifest(ckpt)


def test_symlink_listed_in_manifest_is_refused(ckpt, secret):
    (ckpt / "notes.txt").symlink_to(secret)
    list_in_manifest(ckpt, "notes.txt", secret.read_bytes())
    with pytest.raises(ZooError, match="notes.txt: a symlink, not a regular file"):
        verify_manifest(ckpt)


def test_symlinked_weights_are_refused(ckpt, tmp_path):
    """A weight file swapped for a symlink to identical bytes elsewhere: still not a file of this directory."""
    elsewhere = tmp_path / "elsewhere.safetensors"
    os.replace(ckpt / "discriminator.safetensors", elsewhere)
    (ckpt / "discriminator.safetensors").symlink_to(elsewhere)
    with pytest.raises(ZooError, match="discriminator.safetensors: a symlink"):
        load_checkpoint(ckpt)


def test_symlinked_directory_on_the_path_is_refused(ckpt, tmp_path, secret):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.bin").write_bytes(secret.read_bytes())
    (ckpt / "sub").symlink_to(tmp_path / "outside")
    list_in_manifest(ckpt, "sub/x.bin", secret.read_bytes())
    with pytest.raises(ZooError, match="'sub' on its path is a symlink"):
        verify_manifest(ckpt)


def test_fifo_listed_in_manifest_is_an_error_not_a_hang(ckpt):
    os.mkfifo(ckpt / "pipe.bin")
    list_in_manifest(ckpt, "pipe.bin", b"")
    result = run_isolated(VERIFY, ckpt, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "pipe.bin: a FIFO, not a regular file" in result.stdout


def test_fifo_manifest_json_is_an_error_not_a_hang(tmp_path):
    directory = tmp_path / "c"
    directory.mkdir()
    os.mkfifo(directory / "manifest.json")
    result = run_isolated(VERIFY, directory, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "manifest.json: a FIFO" in result.stdout


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_listed_in_manifest_is_never_read(ckpt):
    """/dev/zero never ends: the old code hashed it forever.  Absolute, or behind a symlink, it is refused."""
    (ckpt / "zeros.bin").symlink_to("/dev/zero")
    list_in_manifest(ckpt, "zeros.bin", b"")
    result = run_isolated(VERIFY, ckpt, timeout=60)
    assert result.returncode == 3 and "zeros.bin: a symlink" in result.stdout, result.stdout + result.stderr
    (ckpt / "zeros.bin").unlink()
    manifest = json.loads((ckpt / "manifest.json").read_text())
    del manifest["files"]["zeros.bin"]
    manifest["files"]["/dev/zero"] = {"sha256": sha(b""), "size": 0}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    result = run_isolated(VERIFY, ckpt, timeout=60)
    assert result.returncode == 3 and "not a plain relative path" in result.stdout, result.stdout + result.stderr


def test_special_file_is_refused_even_without_a_manifest(tmp_path):
    """No manifest (an old checkpoint): files are still read only when they are regular files."""
    directory, _ = make_checkpoint(tmp_path / "c")
    (directory / "manifest.json").unlink()
    (directory / "generator_raw.safetensors").symlink_to("/dev/zero")
    with pytest.raises(ZooError, match="generator_raw.safetensors: a device, not a regular file"):
        load_checkpoint(directory)


# -------------------------------------------------------------------------------------- unlisted files
def test_unlisted_discriminator_is_not_loaded(tmp_path):
    """A checkpoint written without D, with a discriminator.safetensors copied in afterwards."""
    directory, _ = make_checkpoint(tmp_path / "c")
    other, _ = make_checkpoint(tmp_path / "other", seed=7)
    (directory / "discriminator.safetensors").unlink()
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["files"]["discriminator.safetensors"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert load_checkpoint(directory).D is None
    (directory / "discriminator.safetensors").write_bytes((other / "discriminator.safetensors").read_bytes())
    with pytest.raises(ZooError, match="discriminator.safetensors: not listed in the checkpoint's manifest.json"):
        load_checkpoint(directory)
    assert load_checkpoint(directory, load_D=False).G_ema is not None  # what is not read does not matter


# --------------------------------------------------------------------------- wrong shapes -> ZooError
@pytest.mark.parametrize("manifest, message", [
    ([], r"manifest.json: not a checkpoint manifest .*got a JSON list"),
    ("files", r"manifest.json: not a checkpoint manifest .*got a JSON str"),
    ({"files": []}, r"manifest.json: not a checkpoint manifest .*no 'files' mapping"),
    ({"files": {"config.json": {"size": 3}}}, r"manifest.json: entry 'config.json': no valid sha256"),
    ({"files": {"config.json": "abc"}}, r"manifest.json: entry 'config.json': expected"),
    ({"files": {"config.json": {"sha256": "zz", "size": 3}}}, r"entry 'config.json': no valid sha256"),
])
def test_malformed_manifest_is_a_zoo_error_naming_it(ckpt, manifest, message):
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ZooError, match=message):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("case", ["list", "no-sha256"])
def test_cli_malformed_manifest_exits_2_without_traceback(ckpt, case, capsys):
    """The old CLI printed a traceback for a list, and 'error: sha256' for an entry without a hash."""
    size = (ckpt / "config.json").stat().st_size  # the right size: only the hash is missing
    manifest = [] if case == "list" else {"files": {"config.json": {"size": size}}}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    assert main(["publish", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err and "Traceback" not in err and err.startswith("zoo publish: error:")


def _rewrite_config(directory: Path, edit) -> None:
    config = json.loads((directory / "config.json").read_text())
    edit(config)
    data = json.dumps(config).encode()
    (directory / "config.json").write_bytes(data)
    list_in_manifest(directory, "config.json", data)  # consistent manifest: the weights are what is wrong


def test_config_of_another_architecture_is_a_zoo_error_naming_the_weights(ckpt, capsys):
    _rewrite_config(ckpt, lambda c: (c.update(ch_mul="1/4"), c["arch"].update(ch_mul="1/4")))
    with pytest.raises(ZooError, match=r"generator.safetensors: weights do not match the architecture in "
                                       r"config.json \(size mismatch"):
        load_checkpoint(ckpt)
    assert main(["publish", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "generator.safetensors: weights do not match" in err and "Traceback" not in err


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(arch=[1, 2]), r"config.json: no architecture"),
    (lambda c: c["arch"].update(family="nope"), r"config.json: not a valid architecture|nope"),
    (lambda c: c["arch"].pop("family"), r"config.json: not a valid architecture"),
])
def test_config_of_the_wrong_shape_is_a_zoo_error(ckpt, edit, message):
    _rewrite_config(ckpt, edit)
    with pytest.raises(ZooError, match=message):
        load_checkpoint(ckpt)


def test_config_that_is_a_list_is_a_zoo_error(ckpt):
    (ckpt / "config.json").write_text("[]")
    list_in_manifest(ckpt, "config.json", b"[]")
    with pytest.raises(ZooError, match="unsupported checkpoint format 'a JSON list'"):
        load_checkpoint(ckpt)


# ---------------------------------------------------------------------------- permissions and fsync
@pytest.fixture
def umask():
    """Set the process umask for one test and restore it."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(mask):
        os.umask(mask)

    yield set_
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_write_json_follows_the_umask(tmp_path, umask, mask, mode):
    """mkstemp makes 0600: a registry served by a web server, or shared, could not be read."""
    umask(mask)
    write_json(tmp_path / "x.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == mode


def test_checkpoint_files_and_directory_follow_the_umask(tmp_path, umask):
    umask(0o022)
    directory, _ = make_checkpoint(tmp_path / "c")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    for name in ("config.json", "metadata.json", "manifest.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o644, name


@pytest.fixture
def io_log(monkeypatch):
    """Records fsync (of a file or a directory, with its path) and rename calls, in order."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind, os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        events.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the fsynced files")
def test_write_json_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, io_log):
    target = tmp_path / "state.json"
    write_json(target, {"step": 1})
    (kind1, what1, tmp), (op2, src, dst), (op3, what3, directory) = io_log
    assert (kind1, what1) == ("fsync", "file") and Path(tmp).parent == tmp_path and tmp != str(target)
    assert (op2, src, dst) == ("replace", tmp, str(target))
    assert (op3, what3, directory) == ("fsync", "dir", str(tmp_path))
    assert json.loads(target.read_text()) == {"step": 1}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the fsynced files")
def test_save_checkpoint_fsyncs_its_json_and_the_rename(tmp_path, io_log):
    from zoo.models import build_generator

    G = build_generator("stylegan2-emoji", "1/8", resolution=16, z_dim=32, w_dim=32, mapping_layers=1)
    out = tmp_path / "ckpt"
    save_checkpoint(out, config=G.config, G_ema=G, name="x")
    renamed = [e for e in io_log if e[0] == "replace"]
    assert [Path(e[2]).name for e in renamed] == ["config.json", "metadata.json", "manifest.json", "ckpt"]
    for name in ("config.json", "metadata.json", "manifest.json"):
        i = next(i for i, e in enumerate(io_log) if e[0] == "replace" and e[2].endswith("/" + name))
        assert io_log[i - 1][:2] == ("fsync", "file") and io_log[i + 1][:2] == ("fsync", "dir")
    last = io_log.index(renamed[-1])
    assert io_log[last + 1] == ("fsync", "dir", str(tmp_path))  # the checkpoint's own rename is durable


def test_fsync_helpers_are_public():
    """train/state.py (another owner) calls these for its own files."""
    from zoo.integrity import fsync_dir, fsync_file

    assert callable(fsync_dir) and callable(fsync_file)


def test_read_json_is_bounded(tmp_path, monkeypatch):
    """A JSON file larger than the cap is a clear error, not an allocation of its whole size; at the cap it
    still reads."""
    from zoo import integrity

    monkeypatch.setattr(integrity, "MAX_JSON_BYTES", 64)
    ok, big = tmp_path / "ok.json", tmp_path / "big.json"
    ok.write_text('{"a": "' + "x" * 55 + '"}')  # exactly 64 bytes
    big.write_text('{"a": "' + "x" * 56 + '"}')
    assert len(ok.read_bytes()) == 64 and integrity.read_json(ok) == {"a": "x" * 55}
    with pytest.raises(ZooError, match="big.json: larger than"):
        integrity.read_json(big)
