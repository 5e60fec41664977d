"""Datasets: emoji / Fashion-MNIST builders, user import, the on-disk format and the training loader."""
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from zoo.train.data import build_dataset, infinite_loader, load_dataset, save_dataset
from zoo.train.data.dataset import ImageDataset
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models import CATALOG


@pytest.fixture(scope="module")
def emoji_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "emoji"
    return build_dataset("emoji", out, resolution=32, subset="all", limit=80, progress=False)


# ------------------------------------------------------------------------------------------ emoji

def test_emoji_embedded_configs(tmp_path):
    """The builders produce exactly what the embedded model configs consume."""
    portrait = build_dataset("emoji", tmp_path / "p", resolution=64, subset="portrait", progress=False)
    groups = build_dataset("emoji", tmp_path / "g", resolution=32, subset="groups", progress=False)
    sg2, big = CATALOG["stylegan2-emoji"].arch, CATALOG["biggan-emoji"].arch
    assert (portrait.resolution, portrait.channels, portrait.num_classes) == (sg2["resolution"], 3, 0)
    assert (groups.resolution, groups.channels, groups.num_classes) == (big["resolution"], 3, big["n_classes"])
    assert portrait.labels is None and portrait.images.shape[1:] == (3, 64, 64)
    # counts of Debian 12's font + unicode-data 15.0 (research note: 1,112 portraits, 1,870 groups before de-dup)
    assert 1000 <= len(portrait) <= 1300
    assert 1700 <= len(groups) <= 2100
    assert portrait.manifest["build"]["not_ligated"] == 0 and groups.manifest["build"]["not_ligated"] == 0
    assert groups.label_names[0] == "Smileys & Emotion" and groups.label_names[-1] == "Flags"
    assert min(groups.manifest["class_counts"]) >= 50
    # no skin-tone variants in 'groups': all items' code points avoid U+1F3FB..U+1F3FF
    assert not any(cp in ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")
                   for item in groups.items for cp in item["codepoints"].split())
    # de-duplicated
    flat = groups.images.reshape(len(groups), -1)
    assert len(np.unique(flat, axis=0)) == len(groups)
    # rendered on white, not blank
    assert portrait.images.mean() > 100 and portrait.images.std() > 30


def test_emoji_build_is_deterministic(emoji_small, tmp_path):
    again = build_dataset("emoji", tmp_path / "again", resolution=32, subset="all", limit=80, progress=False)
    assert again.sha256 == emoji_small.sha256
    assert (tmp_path / "again" / "dataset.json").read_bytes() == (emoji_small.path / "dataset.json").read_bytes()
    assert (tmp_path / "again" / "images.npy").read_bytes() == (emoji_small.path / "images.npy").read_bytes()


def test_emoji_requires_raqm(monkeypatch, tmp_path):
    from PIL import features

    monkeypatch.setattr(features, "check", lambda name: False if name == "raqm" else True)
    with pytest.raises(ZooError, match="RAQM"):
        build_dataset("emoji", tmp_path / "x", resolution=32, limit=5, progress=False)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------ fashion-mnist

def test_fashion_mnist(tmp_path):
    ds = build_dataset("fashion-mnist", tmp_path / "fm")
    arch = CATALOG["biggan-fashion-mnist"].arch
    assert (len(ds), ds.resolution, ds.channels, ds.num_classes) == (70000, arch["resolution"], 1, 10)
    assert ds.manifest["class_counts"] == [7000] * 10
    assert ds.images[:, :, :2].max() == 0 and ds.images[:, :, 2:30, 2:30].max() == 255  # padded 28 -> 32
    small = build_dataset("fashion-mnist", tmp_path / "fm16", resolution=16, split="test")
    assert (len(small), small.resolution) == (10000, 16) and small.name == "fashion-mnist-16-test"


def test_fashion_mnist_missing_source(tmp_path):
    with pytest.raises(ZooError, match="dataset-fashion-mnist"):
        build_dataset("fashion-mnist", tmp_path / "fm", source=tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ import

def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _user_folder(root):
    rng = np.random.RandomState(0)
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    files = {
        "cats/a.png": _png(rng.randint(0, 255, (40, 60, 3), dtype=np.uint8)),    # landscape RGB
        "cats/b.png": _png(rng.randint(0, 255, (50, 50, 4), dtype=np.uint8)),    # RGBA
        "dogs/c.png": _png(rng.randint(0, 255, (70, 30), dtype=np.uint8)),       # grey portrait
        "dogs/broken.png": b"\x89PNG\r\n\x1a\n not really",                       # corrupt
        "dogs/notes.txt": b"hello",                                              # not an image
    }
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return files


def test_import_folder_and_zip(tmp_path):
    src = tmp_path / "mine"
    files = _user_folder(src)
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = build_dataset("import", tmp_path / "out", src=src, resolution=32, labels_from_dirs=True, progress=False)
    assert ds.images.shape == (3, 3, 32, 32)
    assert ds.label_names == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 1]
    assert ds.manifest["source"]["files_skipped"] == 2
    assert sorted(ds.manifest["source"]["skipped"]) == ["dogs/broken.png", "dogs/notes.txt"]
    assert [i["file"] for i in ds.items] == ["cats/a.png", "cats/b.png", "dogs/c.png"]

    with zipfile.ZipFile(tmp_path / "mine.zip", "w") as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    with pytest.warns(UserWarning):
        zds = build_dataset("import", tmp_path / "zout", src=tmp_path / "mine.zip", resolution=32,
                            labels_from_dirs=True, progress=False)
    assert zds.sha256 == ds.sha256  # same images, same bytes, whichever container


def test_import_dataset_json_labels_and_grey(tmp_path):
    src = tmp_path / "grey"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.png").write_bytes(_png(np.full((20, 20), 60 * i, dtype=np.uint8)))
    (src / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", i % 2] for i in range(4)]}))
    ds = build_dataset("import", tmp_path / "out", src=src, resolution=16, progress=False)
    assert ds.channels == 1 and ds.labels.tolist() == [0, 1, 0, 1] and ds.num_classes == 2
    assert ds.images[3].mean() == pytest.approx(180, abs=1)


def test_import_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.warns(UserWarning), pytest.raises(ZooError, match="empty dataset"):
        build_dataset("import", tmp_path / "o1", src=empty, resolution=32, progress=False)
    with pytest.raises(ZooError, match="no such file"):
        build_dataset("import", tmp_path / "o2", src=tmp_path / "missing", resolution=32, progress=False)
    src = tmp_path / "partial"
    src.mkdir()
    (src / "a.png").write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    (src / "b.png").write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    (src / "dataset.json").write_text(json.dumps({"labels": [["a.png", 0]]}))
    with pytest.raises(ZooError, match="no label"):
        build_dataset("import", tmp_path / "o3", src=src, resolution=8, progress=False)


# ------------------------------------------------------------------------------------------ format

def test_roundtrip_and_tamper(emoji_small, tmp_path):
    ds = load_dataset(emoji_small.path)
    assert ds.images.dtype == np.uint8 and ds.images.shape == emoji_small.images.shape
    assert ds.labels.dtype == np.int64 and ds.sha256 == emoji_small.sha256
    assert ds.manifest["count"] == len(ds) and ds.manifest["layout"] == "NCHW"

    copy = save_dataset(ImageDataset(ds.images.copy(), ds.labels, ds.label_names, "copy"), tmp_path / "copy")
    arr = np.load(copy / "images.npy")
    arr[0, 0, 0, 0] ^= 1
    np.save(copy / "images.npy", arr)
    with pytest.raises(ZooError, match="sha256"):
        load_dataset(copy)
    assert load_dataset(copy, verify=False).images[0, 0, 0, 0] == arr[0, 0, 0, 0]
    with pytest.raises(ZooError, match="not a dataset"):
        load_dataset(tmp_path)
    with pytest.raises(ZooError, match="already holds"):
        save_dataset(ds, copy, overwrite=False)
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(np.zeros((2, 3, 8, 8), np.float32))


# ------------------------------------------------------------------------------------------ loader

def test_infinite_loader(emoji_small):
    ds = emoji_small
    img, labels = next(infinite_loader(ds, batch_size=16, seed=3))
    assert img.shape == (16, 3, 32, 32) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1 and labels.dtype == torch.int64
    again, _ = next(infinite_loader(ds, batch_size=16, seed=3))
    other, _ = next(infinite_loader(ds, batch_size=16, seed=4))
    assert torch.equal(img, again) and not torch.equal(img, other)
    # uint8 -> float is exact: x / 127.5 - 1
    flat = torch.from_numpy(ds.images).float().div(127.5).sub(1).flatten(1)
    assert all((flat == row).all(1).any() for row in img.flatten(1))

    # two ranks split every epoch into disjoint halves that together cover the dataset
    ids = ImageDataset(np.arange(40, dtype=np.uint8)[:, None, None, None].repeat(4, 2).repeat(4, 3).repeat(1, 1))
    seen = []
    for rank in range(2):
        batch, _ = next(infinite_loader(ids, batch_size=20, seed=0, rank=rank, world_size=2))
        seen.append({round(float(v)) for v in (batch[:, 0, 0, 0] + 1) * 127.5})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(40))

    # x-flips: some samples mirrored, none altered otherwise
    flipped, _ = next(infinite_loader(ds, batch_size=64, seed=3, xflip=True))
    plain, _ = next(infinite_loader(ds, batch_size=64, seed=3))
    same = (flipped == plain).flatten(1).all(1)
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and (~same).any() and same.any()
    with pytest.raises(ValueError):
        next(infinite_loader(ds, batch_size=4, rank=2, world_size=2))


def test_unlabelled_loader_yields_none(tmp_path):
    ds = ImageDataset(np.zeros((5, 1, 8, 8), np.uint8))
    img, labels = next(infinite_loader(ds, batch_size=7))  # runs across the epoch boundary
    assert img.shape == (7, 1, 8, 8) and labels is None and (img == -1).all()


# ------------------------------------------------------------------------------------------ CLI

def test_cli(tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["data", "build", "emoji", "--res", "32", "--subset", "groups", "--limit", "30", "--quiet",
                 "--out", str(out)]) == 0
    assert "emoji-groups-32" in capsys.readouterr().out
    assert main(["data", "build", "emoji", "--res", "32", "--limit", "30", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["data", "info", str(out), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["num_classes"] == 9 and manifest["resolution"] == 32 and len(manifest["sha256"]) == 64
    assert main(["data", "import", str(tmp_path / "nope"), "--res", "32", "--out", str(tmp_path / "i")]) == 2
    assert "no such file" in capsys.readouterr().err
