"""Hostile registries: an HTTP server on 127.0.0.1 and a Hugging Face repo whose index.json names files
outside the entry (``..``, absolute paths) with sha256 values that *match* the malicious bytes.

The index is the trust anchor for content, never for names: nothing may be requested, and no byte
written, outside the store's cache before those names are checked.  No test leaves 127.0.0.1.
"""
import hashlib
import http.server
import json
import os
import threading
import urllib.parse
from pathlib import Path

import pytest

import zoo
from test_registry import _default_registry_only, make_checkpoint  # noqa: F401
from zoo.errors import ZooError
from zoo.registry.http import HttpStore
from zoo.registry.model import check_index, entry_path

PAYLOAD = b"#!/bin/sh\necho owned\n" * 50


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(path: str, files: dict[str, bytes]) -> dict:
    return {"path": path, "published": "2026-01-01T00:00:00+00:00", "metadata": {},
            "files": {rel: {"sha256": sha(data), "size": len(data)} for rel, data in files.items()}}


def index_with(rec: dict, name="evil", ch="1/8", version="1") -> dict:
    return {"format": "ganzoo-registry/1",
            "models": {name: {ch: {"aliases": {}, "versions": {version: rec}}}}}


class EvilHandler(http.server.BaseHTTPRequestHandler):
    """Serves the crafted index.json, and for any other URL the bytes the index promised for that file
    (so every sha256 matches), or ``server.body`` when set."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.log.append(self.path)
        path = urllib.parse.unquote(self.path)
        if path.endswith("/index.json"):
            body = json.dumps(self.server.index).encode()
        elif self.server.body is not None:
            body = self.server.body
        else:
            body = next((data for rel, data in self.server.files.items() if path.endswith("/" + rel)), b"")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: what we test for
            pass


@pytest.fixture
def evil(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EvilHandler)
    httpd.log, httpd.index, httpd.files, httpd.body = [], None, {}, None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}/zoo"
    httpd.shutdown()
    httpd.server_close()


def snapshot(root: Path, skip: Path) -> set[str]:
    """Every path under ``root`` except those under ``skip`` (lstat: symlinks are listed, not followed)."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            if skip != p and skip not in p.parents:
                out.add(str(p))
    return out


# cache = tmp/cache, staging = tmp/cache/.partial/evil/1_8/1: five '..' reach tmp, outside the cache
ESCAPES = {
    "dotdot-file": lambda tmp: ("evil/1_8/1", {"config.json": b"{}", "../../../../../pwned-rel": PAYLOAD}),
    "absolute-file": lambda tmp: ("evil/1_8/1", {"config.json": b"{}", str(tmp / "pwned-abs"): PAYLOAD}),
    "dotdot-entry-path": lambda tmp: ("../pwned-entry", {"config.json": PAYLOAD}),
    "absolute-entry-path": lambda tmp: (str(tmp / "pwned-entry-abs"), {"config.json": PAYLOAD}),
    "dotdot-inside-path": lambda tmp: ("evil/1_8/1/../../../../pwned-mid", {"config.json": PAYLOAD}),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_malicious_http_index_writes_nothing_outside_the_cache(evil, tmp_path, case):
    httpd, url = evil
    path, files = ESCAPES[case](tmp_path)
    httpd.index, httpd.files = index_with(record(path, files)), files
    cache = tmp_path / "cache"
    before = snapshot(tmp_path, cache)
    with pytest.raises(ZooError) as info:
        zoo.load("evil", ch_mul="1/8", registry=HttpStore(url, cache_dir=cache))
    assert snapshot(tmp_path, cache) - before == set()  # nothing appeared outside the cache
    info.match("not a plain relative path|is not 'evil/1_8/1'")
    assert not (tmp_path / "pwned-rel").exists() and not (tmp_path / "pwned-abs").exists()
    assert not (tmp_path / "pwned-entry").exists() and not (tmp_path / "pwned-entry-abs").exists()
    # the names were refused before any entry file was requested, let alone written
    assert [p for p in httpd.log if not p.endswith("/index.json")] == []
    assert not (cache / ".partial").exists()


def test_one_malicious_entry_poisons_the_whole_index(evil, tmp_path):
    """A server that lies about one entry is not trusted for the others: list/info refuse it too."""
    httpd, url = evil
    httpd.index = index_with(record("evil/1_8/1", {"../x": PAYLOAD}))
    httpd.index["models"]["good"] = {"1/8": {"aliases": {}, "versions": {"1": record("good/1_8/1", {"a": b"1"})}}}
    with pytest.raises(ZooError, match=r"evil ch_mul=1/8 version 1: file name '\.\./x' is not a plain relative"):
        zoo.list(registry=HttpStore(url, cache_dir=tmp_path / "cache"))
    assert not (tmp_path / "cache" / "index.json").exists()  # a refused index is not cached either


@pytest.mark.timeout(120)  # the old code looped forever here (too long -> delete -> download again)
def test_server_cannot_send_more_bytes_than_the_index_says(evil, tmp_path):
    """A body longer than the index's size is cut at that size (the disk cannot be filled)."""
    httpd, url = evil
    head = PAYLOAD[:100]
    httpd.body = head + b"\0" * (4 << 20)  # 4 MiB more than promised
    httpd.index = index_with(record("evil/1_8/1", {"blob.bin": head}))
    store = HttpStore(url, cache_dir=tmp_path / "cache")
    directory = store.fetch(store.resolve("evil", "1/8"))
    assert (directory / "blob.bin").read_bytes() == head


@pytest.mark.parametrize("bad", [
    {"format": "ganzoo-registry/1", "models": []},
    {"format": "ganzoo-registry/1", "models": {"evil": {"1/8": {"versions": {"1": []}}}}},
    {"format": "ganzoo-registry/1", "models": {"evil": {"1/8": {"versions": {"1": {"path": "evil/1_8/1"}}}}}},
    index_with({**record("evil/1_8/1", {"a": b"x"}), "files": {"a": {"size": 1}}}),  # no sha256
    index_with({**record("evil/1_8/1", {"a": b"x"}), "files": {"a": {"sha256": sha(b"x"), "size": "1"}}}),
    index_with(record("evil/1_8/2", {"a": b"x"})),  # another entry's directory
    index_with(record("Evil/1_8/1", {"a": b"x"}), name="Evil"),  # a name publish would never accept
    index_with(record("evil/abc/1", {"a": b"x"}), ch="abc"),  # not a width
    {"format": "ganzoo-registry/1",  # an alias that points at no version
     "models": {"evil": {"1/8": {"aliases": {"stable": "9"}, "versions": {"1": record("evil/1_8/1", {"a": b"x"})}}}}},
])
def test_malformed_index_is_a_clear_error_not_a_traceback(evil, tmp_path, bad):
    httpd, url = evil
    httpd.index = bad
    with pytest.raises(ZooError):
        zoo.load("evil", ch_mul="1/8", registry=HttpStore(url, cache_dir=tmp_path / "cache"))
    assert [p for p in httpd.log if not p.endswith("/index.json")] == []


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a", ".", "..", "",
                                 "a\\..\\..\\x", "..\\x", "C:x", "c:/windows", "a\x00b", "a\nb", "\x7f"])
def test_relpath_refuses_everything_that_can_leave_a_directory(rel):
    from zoo.integrity import check_relpath

    with pytest.raises(ZooError, match="not a plain relative path"):
        check_relpath(rel)


@pytest.mark.parametrize("rel", ["config.json", "exports/onnx/model.onnx", "a b/ü.bin", "v1.2.0+build"])
def test_relpath_accepts_plain_names(rel):
    from zoo.integrity import check_relpath

    assert check_relpath(rel) == rel


def test_index_written_by_publish_still_passes_the_checks(tmp_path):
    """The format is unchanged: what publish writes (old or new code, same layout) is accepted."""
    from zoo.registry import publish

    directory, _ = make_checkpoint(tmp_path / "c")
    root = tmp_path / "reg"
    ref = publish(directory, registry=root, version="1.2.0+build.5")
    index = json.loads((root / "index.json").read_text())
    assert check_index(index, "test") is index
    assert ref.path == entry_path("stylegan2-emoji", "1/8", "1.2.0+build.5")


# ------------------------------------------------------------------------------------------ Hugging Face
def test_malicious_hf_index_is_refused_before_any_download(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from test_registry_hf import REPO, write_commit
    from zoo.registry.hf import HfStore

    cache = tmp_path / "hf-cache"
    evil_index = index_with(record("evil/1_8/1", {"config.json": b"{}", "../../../../../../pwned": PAYLOAD}))
    write_commit(cache, {"index.json": json.dumps(evil_index).encode()}, "c1" * 20)
    requested = []
    original = HfStore._download

    def spy(self, filename, revision, force=False):
        requested.append(filename)
        return original(self, filename, revision, force)

    monkeypatch.setattr(HfStore, "_download", spy)
    before = snapshot(tmp_path, cache)
    with pytest.raises(ZooError, match="not a plain relative path"):
        zoo.load("evil", ch_mul="1/8", registry=HfStore(REPO, cache_dir=cache))
    assert requested == ["index.json"]  # no entry file was asked of the Hub client
    assert snapshot(tmp_path, cache) == before
