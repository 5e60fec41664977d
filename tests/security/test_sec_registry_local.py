"""The local registry against hostile files: symlinks and FIFOs in what is published, files copied into
a published entry (or a checkpoint) after the fact, and the modes and durability of what publish writes.
"""
import json
import os
import stat
from pathlib import Path

import pytest

import zoo
from test_registry import _default_registry_only, make_checkpoint, registry_root  # noqa: F401
from zoo.errors import ZooError
from zoo.registry import publish


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "id_ed25519"
    path.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY----- not really\n")
    return path


def registry_bytes(root: Path) -> bytes:
    """Every byte under the registry (symlinks not followed), to search for a leaked secret."""
    out = b""
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out += p.read_bytes()
    return out


def writable(directory: Path) -> None:
    """Published entries are read-only; an attacker with write access simply chmods them."""
    for p in [directory, *directory.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


# --------------------------------------------------------------------- publish: symlinks, special files
def test_symlink_in_exports_is_refused_and_its_target_never_published(tmp_path, secret):
    directory, _ = make_checkpoint(tmp_path / "c")
    (directory / "exports" / "onnx").mkdir(parents=True)
    (directory / "exports" / "onnx" / "notes.txt").symlink_to(secret)
    with pytest.raises(ZooError, match=r"exports: holds onnx/notes.txt \(a symlink\); publish copies regular files"):
        publish(directory)
    assert zoo.list() == []
    root = registry_root()
    assert secret.read_bytes() not in registry_bytes(root) if root.exists() else True
    assert not list(root.glob(".staging/*"))


def test_symlinked_exports_directory_is_refused(tmp_path, secret):
    directory, _ = make_checkpoint(tmp_path / "c")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "key").write_bytes(secret.read_bytes())
    (directory / "exports").symlink_to(tmp_path / "home")
    with pytest.raises(ZooError, match="exports: a symlink"):
        publish(directory)
    assert zoo.list() == []


def test_fifo_in_exports_is_a_clear_error(tmp_path):
    directory, _ = make_checkpoint(tmp_path / "c")
    (directory / "exports").mkdir()
    os.mkfifo(directory / "exports" / "pipe")
    with pytest.raises(ZooError, match=r"holds pipe \(a FIFO\)"):
        publish(directory)
    assert zoo.list() == []


def test_symlinked_weight_file_is_refused(tmp_path):
    """A weight swapped for a symlink to identical bytes: a checkpoint holds its own regular files only."""
    directory, _ = make_checkpoint(tmp_path / "c")
    elsewhere = tmp_path / "D.safetensors"
    os.replace(directory / "discriminator.safetensors", elsewhere)
    (directory / "discriminator.safetensors").symlink_to(elsewhere)
    with pytest.raises(ZooError, match="discriminator.safetensors: a symlink"):
        publish(directory)
    assert zoo.list() == []


# ----------------------------------------------------------------------------------- unlisted files
def _without_D(tmp_path, ch_mul="1/8"):
    """A checkpoint written without a discriminator (manifest lists no D) and a D from another one."""
    directory, _ = make_checkpoint(tmp_path / "c", ch_mul=ch_mul)
    other, _ = make_checkpoint(tmp_path / "other", ch_mul=ch_mul, seed=5)
    (directory / "discriminator.safetensors").unlink()
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["files"]["discriminator.safetensors"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory, (other / "discriminator.safetensors").read_bytes()


def test_unlisted_file_in_source_checkpoint_is_not_published(tmp_path):
    directory, foreign_D = _without_D(tmp_path)
    (directory / "discriminator.safetensors").write_bytes(foreign_D)
    with pytest.raises(ZooError, match="discriminator.safetensors: not listed in the checkpoint's manifest.json"):
        publish(directory)
    assert zoo.list() == []


def test_file_copied_into_a_published_entry_is_never_loaded(tmp_path):
    directory, _ = make_checkpoint(tmp_path / "c")
    ref = publish(directory, include_D=False)
    assert "discriminator.safetensors" not in ref.files
    assert zoo.registry.load_entry("stylegan2-emoji", ch_mul="1/8").D is None
    entry = registry_root() / ref.path
    writable(entry)
    other, _ = make_checkpoint(tmp_path / "other", seed=5)
    (entry / "discriminator.safetensors").write_bytes((other / "discriminator.safetensors").read_bytes())
    with pytest.raises(ZooError, match="discriminator.safetensors: not listed in the checkpoint's manifest.json "
                                      "/ registry index"):
        zoo.registry.load_entry("stylegan2-emoji", ch_mul="1/8")
    # what is not read does not matter: the eager generator still loads
    assert zoo.load("stylegan2-emoji", ch_mul="1/8") is not None
    problems = zoo.registry.verify()[0]["problems"]
    assert "discriminator.safetensors: not listed in the index (added after publishing)" in problems


def test_teacher_from_registry_refuses_an_unlisted_discriminator(tmp_path):
    from zoo.train.teacher import resolve_teacher
    from zoo.models import get_config

    directory, _ = make_checkpoint(tmp_path / "c", ch_mul="1")
    ref = publish(directory, name="tiny-teacher", include_D=False)
    entry = registry_root() / ref.path
    writable(entry)
    other, _ = make_checkpoint(tmp_path / "other", ch_mul="1", seed=5)
    (entry / "discriminator.safetensors").write_bytes((other / "discriminator.safetensors").read_bytes())
    student = get_config("stylegan2-emoji", "1/2", resolution=16, z_dim=32, w_dim=32, mapping_layers=1)
    with pytest.raises(ZooError, match="discriminator.safetensors is not listed in the registry index"):
        resolve_teacher("tiny-teacher", student)


def test_teacher_directory_refuses_an_unlisted_discriminator(tmp_path):
    from zoo.train.teacher import resolve_teacher
    from zoo.models import get_config

    directory, foreign_D = _without_D(tmp_path, ch_mul="1")
    (directory / "discriminator.safetensors").write_bytes(foreign_D)
    student = get_config("stylegan2-emoji", "1/2", resolution=16, z_dim=32, w_dim=32, mapping_layers=1)
    with pytest.raises(ZooError, match="discriminator.safetensors is not listed in the checkpoint manifest.json"):
        resolve_teacher(str(directory), student)


def test_teacher_from_registry_still_works(tmp_path):
    from zoo.train.teacher import resolve_teacher
    from zoo.models import get_config

    directory, _ = make_checkpoint(tmp_path / "c", ch_mul="1")
    ref = publish(directory, name="tiny-teacher")
    student = get_config("stylegan2-emoji", "1/2", resolution=16, z_dim=32, w_dim=32, mapping_layers=1)
    t = resolve_teacher("tiny-teacher", student)
    assert t.d_sha256 == ref.files["discriminator.safetensors"]["sha256"]
    D = t.load_discriminator()
    assert not D.training and not any(p.requires_grad for p in D.parameters())


# -------------------------------------------------------------------------------------------- verify
def test_verify_reports_symlinks_and_fifos_without_following_them(tmp_path, secret):
    directory, _ = make_checkpoint(tmp_path / "c")
    ref = publish(directory)
    entry = registry_root() / ref.path
    writable(entry)
    os.mkfifo(entry / "pipe")
    (entry / "link").symlink_to(secret)
    config = entry / "config.json"
    kept = tmp_path / "config.json"
    os.replace(config, kept)
    config.symlink_to(kept)  # identical bytes, but not a file of the entry
    problems = zoo.registry.verify()[0]["problems"]
    assert "pipe: not listed in the index (added after publishing), a FIFO" in problems
    assert "link: not listed in the index (added after publishing), a symlink" in problems
    assert "config.json: a symlink, not a regular file; refusing to read it" in problems
    with pytest.raises(ZooError, match="config.json: a symlink"):
        zoo.load("stylegan2-emoji", ch_mul="1/8")


def test_fifo_index_is_an_error_not_a_hang(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "reg"
    root.mkdir()
    os.mkfifo(root / "index.json")
    code = ("import sys, zoo\nfrom zoo.errors import ZooError\n"
            "try:\n    zoo.list(registry=sys.argv[1])\nexcept ZooError as e:\n    print('ZooError:', e); sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert result.returncode == 3 and "index.json: a FIFO" in result.stdout, result.stdout + result.stderr[-2000:]


# ------------------------------------------------------------------------------ permissions and fsync
@pytest.fixture
def umask022():
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def test_published_entry_and_index_are_readable_by_others(tmp_path, umask022):
    """mkdtemp / mkstemp made the entry 0700 and index.json 0600: a web server could not serve them."""
    directory, _ = make_checkpoint(tmp_path / "c")
    ref = publish(directory)
    root = registry_root()
    assert stat.S_IMODE((root / "index.json").stat().st_mode) == 0o644
    entry = root / ref.path
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
    for name in ("metadata.json", "manifest.json", "config.json", "generator.safetensors"):
        assert stat.S_IMODE((entry / name).stat().st_mode) == 0o444, name  # read-only, readable by all


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name the fsynced files")
def test_publish_fsyncs_the_entry_and_the_index(tmp_path, monkeypatch):
    directory, _ = make_checkpoint(tmp_path / "c")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        events.append(("replace", os.fspath(dst)))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    ref = publish(directory)
    root = registry_root().resolve()
    entry = str(root / ref.path)
    i_entry = events.index(("replace", entry))
    assert events[i_entry + 1] == ("fsync", str(Path(entry).parent))  # the entry's rename is durable ...
    i_index = events.index(("replace", str(root / "index.json")))
    assert i_entry < i_index  # ... before the index that lists it is replaced
    assert events[i_index - 1][0] == "fsync" and events[i_index - 1][1].startswith(str(root / ".index.json."))
    assert events[i_index + 1] == ("fsync", str(root))
    for name in ("metadata.json", "manifest.json"):
        i = next(i for i, e in enumerate(events) if e[0] == "replace" and e[1].endswith("/" + name))
        assert events[i - 1][0] == "fsync" and events[i + 1][0] == "fsync", name
