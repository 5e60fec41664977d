"""scripts/critic_separation.py (docs/results.md's D̄ check): an entry's D scored on real images against its
own G_ema's, as JSON; a checkpoint without a discriminator is a one-line error, not a traceback."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train_helpers import BIGGAN, SG2, save_tiny_checkpoint, tiny_arch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "critic_separation.py"


def _dataset(tmp_path: Path, name: str, n: int = 24) -> Path:
    from zoo.train.data.dataset import ImageDataset, save_dataset
    from zoo.train.teacher import num_classes

    arch, rng = tiny_arch(name), np.random.default_rng(0)
    images = rng.integers(0, 256, (n, arch.img_channels, arch.resolution, arch.resolution), dtype=np.uint8)
    classes = num_classes(arch)
    labels = rng.integers(0, classes, n) if classes else None
    names = [str(i) for i in range(classes)] if classes else None
    return save_dataset(ImageDataset(images, labels, names, name="tiny"), tmp_path / f"data-{name}")


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_separation_of_an_entry_is_printed_as_json(tmp_path):
    for name in (SG2, BIGGAN):
        ckpt = save_tiny_checkpoint(tmp_path / name, name)
        out = _run(ckpt, "--data", _dataset(tmp_path, name), "--n", 16)
        assert out.returncode == 0, out.stderr[-2000:]
        result = json.loads(out.stdout)
        assert result["n"] == 16 and 0 <= result["separation"] <= 1


def test_no_discriminator_or_bad_n_is_a_clear_error(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "noD", SG2, with_D=False)
    out = _run(ckpt, "--data", _dataset(tmp_path, SG2))
    assert out.returncode == 2 and "no discriminator" in out.stderr and "Traceback" not in out.stderr
    out = _run(ckpt, "--data", _dataset(tmp_path, SG2), "--n", 0)
    assert out.returncode == 2 and "--n" in out.stderr and "Traceback" not in out.stderr
    # a conditional entry against a dataset without labels, and against one of another image shape
    biggan = save_tiny_checkpoint(tmp_path / "biggan", BIGGAN)
    out = _run(biggan, "--data", _dataset(tmp_path, SG2))
    assert out.returncode == 2 and out.stderr.startswith("error:") and "Traceback" not in out.stderr


@pytest.mark.bundled
def test_a_shipped_entry_by_name_and_version(tmp_path):
    """NAME@VERSION picks a published version of the bundled registry (as `zoo train --teacher` does)."""
    from zoo.train.data.dataset import ImageDataset, save_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 1, 32, 32), dtype=np.uint8)
    data = save_dataset(ImageDataset(images, rng.integers(0, 10, 8), [str(i) for i in range(10)], name="fm"),
                        tmp_path / "fm")
    out = _run("biggan-fashion-mnist@1", "--data", data, "--n", 8)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["entry"] == "biggan-fashion-mnist@1"
    out = _run("biggan-fashion-mnist@99", "--data", data, "--n", 8)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "Traceback" not in out.stderr
