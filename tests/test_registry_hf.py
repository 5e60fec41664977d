"""The Hugging Face Hub store, offline: a pre-seeded HF cache (HF_HUB_OFFLINE=1) and a fake commit endpoint.

No test touches the network: reads resolve through refs/ and snapshots/ of a cache the test writes, and
publishing goes through ``HfApi.create_commit`` replaced by a function that writes the commit into that
same cache layout (blobs + snapshot symlinks + refs/main), as the real client's cache would look.
"""
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("huggingface_hub")

import huggingface_hub  # noqa: E402

import zoo  # noqa: E402
from test_registry import _default_registry_only, make_checkpoint, sample  # noqa: E402, F401
from zoo.errors import ZooError  # noqa: E402
from zoo.registry import publish  # noqa: E402
from zoo.registry.hf import HfStore  # noqa: E402
from zoo.registry.model import empty_index  # noqa: E402

REPO = "ganzoo-test/emoji"


def repo_dir(cache: Path) -> Path:
    return cache / f"models--{REPO.replace('/', '--')}"


def write_commit(cache: Path, files: dict[str, bytes], commit: str, base: str | None = None) -> None:
    """Add a commit to the cached repo: ``base``'s files plus ``files``; refs/main -> commit."""
    repo = repo_dir(cache)
    snap = repo / "snapshots" / commit
    if base is not None:
        for link in (repo / "snapshots" / base).rglob("*"):
            if link.is_symlink():
                rel = link.relative_to(repo / "snapshots" / base)
                (snap / rel).parent.mkdir(parents=True, exist_ok=True)
                (snap / rel).symlink_to(os.readlink(link))
    for path, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A cached repo with an empty registry index at commit c0, and a fake create_commit."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # conftest sets HF_HUB_OFFLINE=1: no network
    cache = tmp_path / "hf-cache"
    write_commit(cache, {".gitattributes": b"*.safetensors filter=lfs\n",
                         "index.json": json.dumps(empty_index()).encode()}, "c0" * 20)
    commits = []

    def fake_create_commit(self, repo_id, operations, *, commit_message, revision=None, parent_commit=None, **kw):
        head = (repo_dir(cache) / "refs" / "main").read_text()
        assert repo_id == REPO and revision == "main"
        if parent_commit != head:
            from huggingface_hub import errors
            from huggingface_hub.utils import httpx

            request = httpx.Request("POST", f"https://huggingface.co/api/models/{repo_id}/commit/main")
            response = httpx.Response(412, request=request)
            raise errors.HfHubHTTPError("412 Precondition Failed: parent commit is not the head", response=response)
        files = {}
        for op in operations:
            src = op.path_or_fileobj
            files[op.path_in_repo] = src if isinstance(src, bytes) else Path(src).read_bytes()
        commit = hashlib.sha1(f"{head}{commit_message}".encode()).hexdigest()
        write_commit(cache, files, commit, base=head)
        commits.append((commit, commit_message, sorted(files)))
        return SimpleNamespace(oid=commit)  # the part of CommitInfo the store uses

    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", fake_create_commit)
    return cache, commits


def test_publish_then_load_offline_pinned_by_commit(hub, tmp_path):
    cache, commits = hub
    store = HfStore(REPO, cache_dir=cache)
    d1, G1 = make_checkpoint(tmp_path / "a", seed=1, metadata={"metrics": {"kid": 0.2}, "license": "apache-2.0"})
    d2, G2 = make_checkpoint(tmp_path / "b", seed=2)
    ref1 = publish(d1, registry=store)
    ref2 = publish(d2, registry=HfStore(REPO, cache_dir=cache), aliases=["stable"])
    assert (ref1.version, ref2.version) == ("1", "2") and "stable" in ref2.aliases
    first_commit, _, files = commits[0]
    assert "stylegan2-emoji/1_8/1/generator.safetensors" in files and "README.md" in files
    card = (repo_dir(cache) / "snapshots" / commits[-1][0] / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: ganzoo\nlicense: apache-2.0")
    assert "| stylegan2-emoji | 1/8 | 2 | latest, stable |" in card and "kid 0.2" in card

    # load from the branch head, and pinned at the first commit (where only v1 exists)
    head = HfStore(REPO, cache_dir=cache)
    assert torch.equal(sample(zoo.load("stylegan2-emoji", "1/8", registry=head)), sample(G2))
    assert torch.equal(sample(zoo.load("stylegan2-emoji", "1/8", version=1, registry=head)), sample(G1))
    pinned = HfStore(REPO, revision=first_commit, cache_dir=cache)
    assert [e["version"] for e in zoo.list(registry=pinned)] == ["1"]
    assert torch.equal(sample(zoo.load("stylegan2-emoji", "1/8", registry=pinned)), sample(G1))
    assert head.commit == commits[-1][0] and pinned.commit == first_commit

    # aliases move through a commit too; a stale parent commit is refused
    assert head.set_alias("stylegan2-emoji", "1/8", "stable", 1) == ("2", "1")
    stale = HfStore(REPO, cache_dir=cache)
    stale._read_for_update()
    stale.commit = first_commit
    with pytest.raises(ZooError, match="commit failed"):
        stale._commit(empty_index(), "clobber")


def test_tampered_cache_blob_is_detected_offline(hub, tmp_path):
    cache, _ = hub
    directory, _ = make_checkpoint(tmp_path / "a")
    publish(directory, registry=HfStore(REPO, cache_dir=cache))
    gen = next((repo_dir(cache) / "snapshots").rglob("generator.safetensors")).resolve()
    blob = bytearray(gen.read_bytes())
    blob[100] ^= 1
    gen.write_bytes(bytes(blob))
    with pytest.raises(ZooError, match="generator.safetensors: sha256 mismatch"):
        zoo.load("stylegan2-emoji", "1/8", registry=HfStore(REPO, cache_dir=cache))


def test_uri_parsing_and_missing_cache_errors(tmp_path):
    store = zoo.registry.open_store("hf://org/repo@v1.0")
    assert (store.repo_id, store.revision) == ("org/repo", "v1.0")
    with pytest.raises(ZooError, match="bad Hugging Face repo"):
        zoo.registry.open_store("hf://just-a-name")
    with pytest.raises(ZooError, match="not in the local Hugging Face cache"):
        zoo.list(registry=HfStore("org/absent", cache_dir=tmp_path))
