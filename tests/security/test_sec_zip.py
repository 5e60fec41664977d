"""Untrusted image zips and folders (audit issue 15, finding 8): bounded memory, clear errors.

The hostile archives run through ``train.data.folder.read_images`` inside the sandbox worker
(test_sec_unpickle_sandbox.py: address space capped at what the worker holds plus 768 MiB), so an
importer that reads a bomb into memory fails there for real instead of passing on a big machine.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from test_sec_unpickle_sandbox import Sandbox, assert_refused, describe, sandbox  # noqa: F401  (fixture)

from zoo.train.data.folder import read_images
from zoo.errors import ZooError


def limits(**kw):
    from zoo.train.data.folder import ArchiveLimits  # imported here so the sandbox tests run against any version

    return ArchiveLimits(**kw)

MiB = 1 << 20


def png_bytes(width: int, height: int, mode: str = "L", idat: bytes | None = None) -> bytes:
    """A PNG of zeros written row by row (no image in memory): 8-bit grey ('L'), RGB or RGBA."""
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    if idat is None:
        comp = zlib.compressobj(9)
        row = b"\0" * (1 + width * channels)  # filter byte + pixels
        parts = [comp.compress(row) for _ in range(height)]
        idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, {"L": 0, "RGB": 2, "RGBA": 6}[mode], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def small_png(seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def deflated_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("zips")
    out = {}

    # 1. a zip bomb with honest headers: 300 MiB of zeros deflated to ~300 KB, next to a real image
    out["bomb"] = root / "bomb.zip"
    with zipfile.ZipFile(out["bomb"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", small_png())
        with zf.open(deflated_info("zeros.png"), "w") as dst:
            block = b"\0" * MiB
            for _ in range(300):
                dst.write(block)

    # 2. under the per-member size limit but 1000x compressed (32 MiB from ~32 KB)
    out["ratio"] = root / "ratio.zip"
    with zipfile.ZipFile(out["ratio"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", small_png())
        with zf.open(deflated_info("zeros.bmp"), "w") as dst:
            for _ in range(32):
                dst.write(b"\0" * MiB)

    # 3. a header that lies: the central directory and local header say 1,000 bytes, the deflate
    #    stream inflates to 32 MiB
    out["lying"] = root / "lying.zip"
    with zipfile.ZipFile(out["lying"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", small_png())
        with zf.open(deflated_info("liar.png"), "w") as dst:
            for _ in range(32):
                dst.write(b"\0" * MiB)
        info = zf.getinfo("liar.png")
    data = bytearray(out["lying"].read_bytes())
    struct.pack_into("<I", data, info.header_offset + 22, 1000)  # local header: uncompressed size
    pos = 0
    while True:  # the central-directory record of liar.png
        pos = data.index(b"PK\x01\x02", pos)
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + name_len]) == b"liar.png":
            struct.pack_into("<I", data, pos + 24, 1000)
            break
        pos += 4
    out["lying"].write_bytes(bytes(data))

    # 4. Pillow's decompression-bomb *warning* range (89-179 Mpx): 10,000 x 10,000 grey, a 100 KB PNG
    bomb_png = png_bytes(10_000, 10_000)
    out["pixels"] = root / "pixels.zip"
    with zipfile.ZipFile(out["pixels"], "w") as zf:
        zf.writestr("ok.png", small_png())
        zf.writestr("huge.png", bomb_png)

    # 5. ten 3,000 x 3,000 RGBA images (9 Mpx each, under Pillow's limit; ~40 KB of PNG, 36 MB decoded):
    #    legitimate, but holding them all decoded at once takes 360 MB
    big = png_bytes(3000, 3000, "RGBA")
    out["many_big"] = root / "many_big.zip"
    with zipfile.ZipFile(out["many_big"], "w") as zf:
        for i in range(10):
            zf.writestr(f"img{i:02d}.png", big)

    # 6. a dataset.json nested 100,000 deep
    out["deep_json"] = root / "deep_json.zip"
    with zipfile.ZipFile(out["deep_json"], "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", small_png())
        zf.writestr("dataset.json", "[" * 100_000 + "]" * 100_000)
    return out


def test_zip_bomb_is_refused_from_the_central_directory(archives, sandbox):
    result = sandbox.run({"kind": "read_images", "path": str(archives["bomb"])}, timeout=120)
    assert_refused(result, r"zeros\.png is 300\.0 MiB uncompressed; at most 256\.0 MiB per file")
    assert result["seconds"] < 5 and result["peak_rss_mb"] < 400, describe(result)


def test_compression_ratio_is_bounded(archives, sandbox):
    result = sandbox.run({"kind": "read_images", "path": str(archives["ratio"])}, timeout=120)
    assert_refused(result, r"zeros\.bmp expands [\d,]+x .*more than 200x looks like a zip bomb")


def test_lying_header_is_enforced_while_streaming(archives, sandbox):
    """The headers say 1,000 bytes; the stream inflates to 32 MiB.  Reading stops at the declared size
    and the member is refused (zipfile's CRC check or ours), with a ZooError naming it."""
    result = sandbox.run({"kind": "read_images", "path": str(archives["lying"])}, timeout=120)
    assert_refused(result, r"liar\.png")
    assert result["peak_rss_mb"] < 400, describe(result)


def test_decompression_bomb_warning_is_an_error(archives, sandbox):
    result = sandbox.run({"kind": "read_images", "path": str(archives["pixels"])}, timeout=120)
    assert_refused(result, r"huge\.png is a decompression bomb .*at most 89,478,485 pixels")


def test_pillow_limit_holds_even_when_disabled(archives, sandbox):
    """Something else in the process set ``Image.MAX_IMAGE_PIXELS = None``: the import still refuses."""
    code = ("from PIL import Image\nimport train.data.folder as f\nImage.MAX_IMAGE_PIXELS = None\n"
            f"try:\n    result = len(f.read_images({str(archives['pixels'])!r}, 16, progress=False)['files'])\n"
            "finally:\n    Image.MAX_IMAGE_PIXELS = 89_478_485\n")  # Pillow's default
    assert_refused(sandbox.run({"kind": "python", "code": code}, timeout=120), "decompression bomb")


def test_many_large_images_are_decoded_one_at_a_time(archives):
    """10 x 36 MB of decoded pixels from a 400 KB zip: imported with about one image in memory (a worker
    with only 320 MiB of headroom: holding every decoded image would need 360 MB)."""
    box = Sandbox(headroom=320 << 20)
    try:
        result = box.run({"kind": "read_images", "path": str(archives["many_big"]), "resolution": 16}, timeout=300)
    finally:
        box.close()
    assert result["outcome"] == "ok" and result["value"] == "10" and not result.get("alloc_failed"), describe(result)


def test_deeply_nested_labels_file_is_a_clear_error(archives, sandbox):
    assert_refused(sandbox.run({"kind": "read_images", "path": str(archives["deep_json"])}, timeout=120),
                   r"dataset\.json is not valid JSON")


# ----------------------------------------------------------------- the remaining bounds, in-process

def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_member_count_is_bounded(tmp_path):
    src = _zip(tmp_path / "many.zip", {f"{i}.png": small_png(i) for i in range(12)})
    with pytest.raises(ZooError, match="declares 12 entries .* at most 10 entries"):
        read_images(src, 16, progress=False, limits=limits(max_members=10))
    assert len(read_images(src, 16, progress=False, limits=limits(max_members=12))["files"]) == 12


def test_total_uncompressed_size_is_bounded(tmp_path):
    src = _zip(tmp_path / "total.zip", {f"{i}.png": small_png(i) for i in range(4)}, zipfile.ZIP_STORED)
    each = len(small_png(0))
    with pytest.raises(ZooError, match="uncompressed in total; at most"):
        read_images(src, 16, progress=False, limits=limits(max_total_bytes=3 * each))


def test_per_member_size_is_bounded_for_folders_too(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(small_png())
    with pytest.raises(ZooError, match=r"a\.png is .* at most"):
        read_images(tmp_path / "d", 16, progress=False, limits=limits(max_member_bytes=100))


def test_only_stored_and_deflated_members_are_read(tmp_path):
    """bzip2/LZMA members are refused: zipfile inflates each of their chunks with no output bound."""
    src = _zip(tmp_path / "bz.zip", {"a.png": small_png()}, zipfile.ZIP_BZIP2)
    with pytest.raises(ZooError, match="compression method 12; only stored and deflated"):
        read_images(src, 16, progress=False)


def test_duplicate_and_corrupt_members_are_clear_errors(tmp_path):
    import warnings

    src = tmp_path / "dup.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(src, "w") as zf:
        warnings.simplefilter("ignore")
        zf.writestr("a.png", small_png(0))
        zf.writestr("a.png", small_png(1))
    with pytest.raises(ZooError, match="duplicate file names"):
        read_images(src, 16, progress=False)
    bad = _zip(tmp_path / "crc.zip", {"a.png": small_png()}, zipfile.ZIP_STORED)
    data = bytearray(bad.read_bytes())
    data[60] ^= 0xFF  # inside the stored PNG: the CRC no longer matches
    bad.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"corrupt zip member a\.png"):
        read_images(bad, 16, progress=False)


def test_ordinary_zip_still_imports(tmp_path):
    src = _zip(tmp_path / "ok.zip", {f"d/{i}.png": small_png(i) for i in range(3)})
    r = read_images(src, 16, progress=False)
    assert r["images"].shape == (3, 3, 16, 16) and r["files"] == ["d/0.png", "d/1.png", "d/2.png"]
