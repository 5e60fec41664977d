"""The read-only HTTP store against a real server on 127.0.0.1: cache, Range resume, verification."""
import http.server
import re
import threading
from functools import partial
from pathlib import Path

import pytest
import torch

import zoo
from test_registry import _default_registry_only, make_checkpoint, sample  # noqa: F401
from zoo.errors import ZooError
from zoo.registry import publish
from zoo.registry.http import HttpStore


class RegistryHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range`` support, a request log and fault injection (set on the server)."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        server = self.server
        server.log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        name = path.name
        if name in server.corrupt:
            data = bytes(b ^ 0xFF for b in data[:8]) + data[8:]
        start = 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if match and server.ranges:
            start = int(match.group(1))
            if start >= len(data):
                return self.send_error(416)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in server.truncate:  # promise the whole body, send half of it, hang up
            server.truncate.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    """A registry with one entry served over HTTP; yields (server, base url, G, registry root)."""
    root = tmp_path / "served"
    directory, G = make_checkpoint(tmp_path / "ckpt")
    publish(directory, registry=root, aliases=["stable"])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RegistryHandler, directory=str(root)))
    httpd.log, httpd.corrupt, httpd.truncate, httpd.ranges = [], set(), set(), True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}", G, root
    httpd.shutdown()
    httpd.server_close()


def gets(httpd, name):
    return [rng for path, rng in httpd.log if path.endswith("/" + name)]


def test_load_through_http_then_from_cache_offline(server):
    httpd, url, G, _ = server
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8", version="stable", registry=url)), sample(G))
    assert zoo.list(registry=url)[0]["aliases"] == ["latest", "stable"]
    store = HttpStore(url)
    cached = store.cache / "stylegan2-emoji" / "1_8" / "1"
    assert (cached / "generator.safetensors").is_file()
    assert not (store.cache / ".partial" / "stylegan2-emoji" / "1_8" / "1").exists()
    n_requests = len(httpd.log)
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)), sample(G))
    assert len(httpd.log) == n_requests + 1  # only index.json again: files come from the verified cache
    httpd.shutdown()
    httpd.server_close()
    with pytest.warns(UserWarning, match="using the cached index"):
        G2 = zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)
    assert torch.equal(sample(G2), sample(G))


def test_truncated_download_resumes_with_range(server):
    httpd, url, G, root = server
    size = (root / "stylegan2-emoji/1_8/1/generator.safetensors").stat().st_size
    httpd.truncate.add("generator.safetensors")
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)), sample(G))
    assert gets(httpd, "generator.safetensors") == [None, f"bytes={size // 2}-"]


def test_interrupted_download_resumes_on_next_load_and_is_never_trusted(server):
    httpd, url, G, root = server
    size = (root / "stylegan2-emoji/1_8/1/generator.safetensors").stat().st_size
    httpd.truncate.add("generator.safetensors")
    store = HttpStore(url, retries=0)
    with pytest.raises(ZooError, match=rf"interrupted at {size // 2}/{size} bytes.*load again to resume"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", registry=store)
    final = store.cache / "stylegan2-emoji" / "1_8" / "1"
    part = store.cache / ".partial" / "stylegan2-emoji" / "1_8" / "1" / "generator.safetensors.part"
    assert not final.exists() and part.stat().st_size == size // 2
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8", registry=HttpStore(url))), sample(G))
    assert gets(httpd, "generator.safetensors") == [None, f"bytes={size // 2}-"]
    assert final.is_dir() and not part.exists()


def test_server_without_range_support_restarts_the_file(server):
    httpd, url, G, _ = server
    httpd.ranges = False
    httpd.truncate.add("generator.safetensors")
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)), sample(G))
    assert len(gets(httpd, "generator.safetensors")) == 2


def test_corrupted_download_is_an_error_naming_the_file_and_is_discarded(server):
    httpd, url, G, _ = server
    httpd.corrupt.add("generator.safetensors")
    store = HttpStore(url)
    with pytest.raises(ZooError, match="downloaded generator.safetensors .* does not match the index's sha256"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", registry=store)
    assert not (store.cache / "stylegan2-emoji").exists()
    assert not list((store.cache / ".partial").rglob("generator.safetensors*"))
    httpd.corrupt.clear()
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)), sample(G))


def test_tampered_cache_is_detected(server):
    _, url, _, _ = server
    zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)
    cached = HttpStore(url).cache / "stylegan2-emoji" / "1_8" / "1" / "config.json"
    cached.chmod(0o644)
    cached.write_text(cached.read_text().replace("16", "32"))
    with pytest.raises(ZooError, match=r"config.json: (size|sha256).*Delete .* to download it again"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", registry=url)


def test_http_store_errors(server):
    _, url, _, root = server
    with pytest.raises(ZooError, match="read-only"):
        publish(root / "stylegan2-emoji/1_8/1", registry=url, name="other")
    with pytest.raises(ZooError, match="HTTP 404"):
        zoo.list(registry=url + "/nowhere")
    with pytest.raises(ZooError, match="published widths: 1/8"):
        zoo.load("stylegan2-emoji", ch_mul="1/2", registry=url)
    with pytest.raises(ZooError, match="cannot reach .* and no cached index"):
        zoo.list(registry="http://127.0.0.1:9/zoo")  # discard port: nothing listens
