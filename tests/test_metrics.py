"""Metrics: the statistics, SWD, the EfficientNet-Lite0 features, evaluate() sanity and plumbing, zoo eval."""
import json
import warnings

import numpy as np
import pytest
import torch

from zoo.train.data import build_dataset
from zoo.train.data.dataset import ImageDataset
from zoo.train.metrics import MetricSettings, evaluate, make_evaluator
from zoo.train.metrics.classifier import ClassifierSettings
from zoo.train.metrics.stats import fd, kid, precision_recall, separation
from zoo.train.metrics.swd import laplacian_pyramid, pyr_up, swd
from zoo.cli import main
from zoo.errors import ZooError

N = 300
FAST = MetricSettings(kid_subset_size=150, classifier=ClassifierSettings(max_images=1000))


@pytest.fixture(scope="module")
def fm(tmp_path_factory):
    """Fashion-MNIST test split, 32 px grey, 10 classes (10,000 real images from the Debian package)."""
    return build_dataset("fashion-mnist", tmp_path_factory.mktemp("data") / "fm", split="test")


@pytest.fixture(scope="module")
def halves(fm):
    p = np.random.RandomState(1).permutation(len(fm))
    return fm.subset(p[:N], "A"), fm.subset(p[N:2 * N], "B")


def _noise(ds, sigma):
    x = ds.images.astype(np.float32) + np.random.RandomState(0).randn(*ds.images.shape) * sigma
    return np.clip(x, 0, 255).astype(np.uint8)


def _blur(ds):
    x = torch.from_numpy(ds.images).float()
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = (torch.outer(k, k) / 256)[None, None]
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect"), k)
    return y.round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def sanity(fm, halves, tmp_path_factory):
    """evaluate() of real-vs-real, degraded and one-class fake sets against the same real half."""
    A, B = halves
    one_class = fm.subset(np.where(fm.labels == 1)[0][:N], "trousers only")
    fakes = {"real": B, "noise": _noise(B, 40), "blur": _blur(B), "one_class": one_class}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANZOO_HOME", str(tmp_path_factory.mktemp("home")))
        return {k: evaluate(v, A, ("kid", "fd", "pr", "swd"), n=N, settings=FAST, progress=False)
                for k, v in fakes.items()}


# ------------------------------------------------------------------------------------------ statistics

def test_kid_fd_pr_on_gaussians():
    rng = np.random.RandomState(0)
    a, b = rng.randn(600, 16), rng.randn(600, 16)
    shifted = rng.randn(600, 16) + 1.0
    k_same, std_same = kid(a, b, 50, 200)
    k_shift, _ = kid(a, shifted, 50, 200)
    assert abs(k_same) < 3 * std_same and k_shift > 20 * std_same
    # subsets as large as both sets are all the same set: the mean is the full-set estimate, no std
    k_full, std_full = kid(a, b, 50, 1000)
    assert std_full is None and abs(k_full - k_same) < 3 * std_same
    # FD between equal-covariance Gaussians = |mu1 - mu2|^2 (= 16 here) up to sampling noise
    assert fd(a, b) < 1.0 and abs(fd(a, shifted) - 16) < 2.0
    assert fd(a, a) == pytest.approx(0, abs=1e-6)
    p, r = precision_recall(a, a)
    assert p == r == 1.0
    p, r = precision_recall(a, a + 100)  # disjoint clusters
    assert p == r == 0.0
    p, r = precision_recall(a, a[:, :] * 0.2)  # fakes collapsed to the centre: precise, low recall
    assert p > 0.9 and r < 0.3


def test_separation_is_the_auc_of_a_critic():
    real, fake = torch.tensor([3.0, 2.0, 1.0]), torch.tensor([0.0, -1.0])
    assert separation(real, fake) == 1.0 and separation(fake, real) == 0.0
    assert separation(real, real) == pytest.approx(0.5)  # ties count half
    assert separation(real * 100 - 7, fake * 100 - 7) == 1.0  # scale and offset carry no information
    assert separation([1.0, 3.0], [2.0]) == 0.5
    with pytest.raises(ValueError):
        separation([], [1.0])


def test_laplacian_pyramid_reconstructs():
    x = torch.rand(2, 3, 64, 64) * 255
    levels = laplacian_pyramid(x)
    assert [lvl.shape[-1] for lvl in levels] == [64, 32, 16]
    rec = levels[-1]
    for lvl in reversed(levels[:-1]):
        rec = pyr_up(rec) + lvl
    assert torch.allclose(rec, x, atol=1e-3)


def test_swd_levels_and_degradations(halves):
    A, B = halves
    real = swd(torch.from_numpy(A.images), torch.from_numpy(B.images))
    noisy = swd(torch.from_numpy(A.images), torch.from_numpy(_noise(B, 40)))
    assert set(real) == {"swd_32", "swd_16", "swd"}
    assert noisy["swd_32"] > 5 * real["swd_32"]
    assert swd(torch.from_numpy(A.images), torch.from_numpy(B.images)) == real  # seeded
    with pytest.raises(ValueError):
        swd(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, 3, 16, 16, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------ feature net

def test_efficientnet_lite0_is_the_imagenet_network():
    """Weights load from site-packages (no network); fused BN is exact; ImageNet classes come out right."""
    from zoo.train.data.emoji import Renderer
    from zoo.train.metrics.efflite import EfficientNetLite0, fuse_batchnorm, load_efficientnet_lite0, weights_path

    net, sha = load_efficientnet_lite0()
    assert len(sha) == 64 and "site-packages" in str(weights_path())
    x = torch.from_numpy(np.stack([Renderer(128).render(t) for t in ("🕰️", "🎈")])).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        probs = net(x.contiguous(memory_format=torch.channels_last)).softmax(1)
        plain = EfficientNetLite0()
        plain.load_state_dict(torch.load(weights_path(), weights_only=True))
        ref = plain.eval()(x)
        fused = fuse_batchnorm(plain)(x)
    assert probs.argmax(1).tolist() == [409, 417]  # ImageNet 'analog clock', 'balloon'
    assert probs.max(1).values.min() > 0.5
    assert torch.allclose(fused, ref, atol=1e-3)


# ------------------------------------------------------------------------------------------ sanity

def test_real_vs_real_kid_is_zero_within_std(sanity):
    m = sanity["real"]["metrics"]
    assert abs(m["kid"]) < 2 * m["kid_std"] + 1e-4


@pytest.mark.parametrize("degraded", ["noise", "blur"])
def test_degraded_images_are_worse(sanity, degraded):
    real, bad = sanity["real"]["metrics"], sanity[degraded]["metrics"]
    assert bad["kid"] > real["kid"] + 10 * real["kid_std"]
    assert bad["fd"] > 1.5 * real["fd"]
    assert bad["swd_32"] > 4 * real["swd_32"]  # the fine level sees texture / sharpness
    assert bad["precision"] < real["precision"] - 0.1
    assert bad["recall"] < real["recall"] - 0.4


def test_precision_recall_real_vs_real_and_one_class(sanity):
    real, one = sanity["real"]["metrics"], sanity["one_class"]["metrics"]
    # 300 vs 300 in 1280 dimensions: ~0.8 (0.83-0.89 measured at n = 2,000); the same set gives exactly 1
    assert real["precision"] > 0.65 and real["recall"] > 0.65
    assert one["recall"] < 0.35 and one["recall"] < real["recall"] / 2
    assert one["swd_16"] > 3 * real["swd_16"]  # the coarse level sees the lost variety


def test_provenance(sanity, halves):
    r = sanity["real"]
    A, B = halves
    assert r["real"]["sha256"] == A.sha256 and r["real"]["n"] == N and r["n"] == N and r["seed"] == 0
    assert r["fake"]["kind"] == "dataset" and r["fake"]["sha256"] == B.sha256
    assert r["feature_net"]["dim"] == 1280 and r["feature_net"]["input_resolution"] == 128
    assert r["settings"]["pr_k"] == 3 and r["settings"]["kid_subsets"] == 100
    json.dumps(r)  # serialisable as is


# ------------------------------------------------------------------------------------------ generators

class _ClassLookup(torch.nn.Module):
    """A 'generator' returning real images of the requested class (shifted by `offset`): tests conditioning."""

    def __init__(self, ds, offset=0):
        super().__init__()
        self.z_dim, self.c_dim, self.offset = 8, ds.num_classes, offset
        self.by_class = [torch.from_numpy(ds.images[ds.labels == k]).float() / 127.5 - 1 for k in range(self.c_dim)]

    def forward(self, z, c):
        k = (c.argmax(1) + self.offset) % self.c_dim
        pick = (z[:, 0].abs() * 1000).long()
        return torch.stack([self.by_class[int(ki)][int(p) % len(self.by_class[int(ki)])] for ki, p in zip(k, pick)])


def test_class_consistency(fm):
    good = evaluate(_ClassLookup(fm), fm, ("cc",), n=200, settings=FAST, progress=False)
    wrong = evaluate(_ClassLookup(fm, offset=1), fm, ("cc",), n=200, settings=FAST, progress=False)
    assert good["metrics"]["cc_real"] > 0.7 and good["metrics"]["cc"] > 0.7
    assert wrong["metrics"]["cc"] < 0.2
    assert good["classifier"]["dataset_sha256"] == fm.sha256
    # cached by the dataset's hash: a second call does not retrain (same cache key, same numbers)
    again = evaluate(_ClassLookup(fm), fm, ("cc",), n=200, settings=FAST, progress=False)
    assert again["classifier"]["cache_key"] == good["classifier"]["cache_key"]
    assert again["metrics"] == good["metrics"]


def test_zoo_generator_checkpoint_and_folder(halves, tmp_path):
    """A real zoo generator (BigGAN, 1 channel, 10 classes), its checkpoint directory, and a PNG folder."""
    from zoo.checkpoint import save_checkpoint
    from zoo.images import save_png
    from zoo.models import build_generator, get_config

    A, _ = halves
    G = build_generator("biggan-fashion-mnist", ch_mul="1/4").train()
    r1 = evaluate(G, A, ("kid", "swd", "cc"), n=64, settings=FAST, progress=False)
    assert G.training  # mode restored
    assert np.isfinite(r1["metrics"]["kid"]) and r1["metrics"]["swd"] > 0 and 0 <= r1["metrics"]["cc"] <= 1
    assert r1["fake"]["family"] == "biggan" and r1["fake"]["c_dim"] == 10

    ckpt = save_checkpoint(tmp_path / "ckpt", config=get_config("biggan-fashion-mnist", ch_mul="1/4"), G_ema=G)
    r2 = evaluate(str(ckpt), A, ("kid", "swd"), n=64, settings=FAST, progress=False)
    assert r2["fake"]["kind"] == "checkpoint" and r2["metrics"]["kid"] == pytest.approx(r1["metrics"]["kid"])

    folder = tmp_path / "pngs"
    for i in range(40):  # 64 px RGB files against 32 px grey data: converted and resized
        save_png(np.repeat(A.images[i].transpose(1, 2, 0), 3, axis=2).repeat(2, 0).repeat(2, 1), folder / f"{i}.png")
    r3 = evaluate(str(folder), A, ("kid", "cc"), n=64, settings=FAST, progress=False)
    assert r3["fake"]["kind"] == "images" and r3["n"] == 40
    assert "no conditioning labels" in r3["skipped"]["cc"]


def test_unconditional_callable_and_evaluator(halves):
    A, _ = halves

    class Blobs(torch.nn.Module):
        z_dim = 4

        def forward(self, z):
            return torch.tanh(z[:, :1, None, None].expand(-1, 1, 32, 32))

    values = make_evaluator(A, n=32, settings=FAST)(Blobs(), ["kid", "pr", "cc"], "cpu")
    # cc skipped: unconditional; no kid_std: n=32 <= the subset size, every subset is the whole set
    assert set(values) == {"kid", "precision", "recall"}
    assert all(isinstance(v, float) for v in values.values())
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(Blobs(), A, ("kid", "lpips"), n=8)
    with pytest.raises(ZooError, match="channel"):
        evaluate(np.zeros((8, 3, 32, 32), np.uint8), A, ("kid",), n=8, progress=False)


# ------------------------------------------------------------------------------------------ FID / IS

class TinyDetector(torch.nn.Module):
    """Stands in for NVIDIA's TorchScript Inception (same call signature), so no real weights are needed."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Parameter(torch.randn(3 * 16, 32, generator=torch.Generator().manual_seed(0)))
        self.fc = torch.nn.Linear(32, 1008)

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        x = torch.nn.functional.adaptive_avg_pool2d(img.to(torch.float32) / 255, 4).flatten(1) @ self.proj
        if return_features:
            return x
        return torch.softmax(self.fc(x), dim=1)


def test_fid_and_is_only_with_weights(halves, tmp_path, monkeypatch):
    A, B = halves
    skipped = evaluate(B, A, ("fid", "is"), n=N, progress=False)
    assert skipped["metrics"] == {} and "GANZOO_INCEPTION" in skipped["skipped"]["fid"]
    assert "never downloads" in skipped["skipped"]["is"]

    path = tmp_path / "inception-2015-12-05.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: deprecated, still the file format
        torch.jit.script(TinyDetector()).save(str(path))
    monkeypatch.setenv("GANZOO_INCEPTION", str(path))
    same = evaluate(A, A, ("fid", "is"), n=N, progress=False)
    noisy = evaluate(_noise(B, 60), A, ("fid",), n=N, progress=False)
    # FID of a set with itself is 0 up to rounding, and that rounding depends on the CPU's LAPACK kernels:
    # grey images make 16 of the 32 stand-in features dependent, and each zero eigenvalue of Σ adds up to
    # sqrt(eps64) * λmax ≈ 3e-7 to tr((Σ1 Σ2)^½), so |FID| <= 2 * 16 * 3e-7 ≈ 1e-5 (AMD EPYC: -1.15e-6, which
    # the old abs=1e-6 rejected).  Distinct sets score 0.5 (B vs A) and 7.7 (noisy), far above.
    assert same["metrics"]["fid"] == pytest.approx(0, abs=1e-5)
    assert noisy["metrics"]["fid"] > 1e-3
    assert 1.0 <= same["metrics"]["is"] < 1008
    assert same["inception"]["standard"] is False and same["skipped"] == {}

    monkeypatch.setenv("GANZOO_INCEPTION", str(tmp_path / "missing.pt"))
    with pytest.raises(ZooError, match="does not exist"):
        evaluate(A, A, ("fid",), n=N, progress=False)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torchscript")
    with pytest.raises(ZooError, match="TorchScript"):
        evaluate(A, A, ("fid",), n=N, inception=bad, progress=False)


# ------------------------------------------------------------------------------------------ CLI

def test_zoo_eval_json_and_cache(halves, tmp_path, capsys):
    from zoo.train.data import save_dataset
    from zoo.train.metrics.features import cache_dir

    A, B = halves
    real = save_dataset(ImageDataset(A.images, A.labels, A.label_names, "A"), tmp_path / "A")
    fake = save_dataset(ImageDataset(B.images, B.labels, B.label_names, "B"), tmp_path / "B")
    args = ["eval", "--real", str(real), "--fake", str(fake), "--metrics", "kid,pr,fid", "--n", "100", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["real"]["sha256"] == A.sha256 and out["n"] == 100 and out["seed"] == 0
    # --n 100 <= the KID subset size (1000): every subset is the whole set, so no kid_std is reported
    assert out["feature_net"]["weights_sha256"] and set(out["metrics"]) == {"kid", "precision", "recall"}
    assert "fid" in out["skipped"]
    assert len(list(cache_dir().glob("efflite0-*.npy"))) == 1  # real features cached by content hash
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == out["metrics"]
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--metrics", "kid", "--n", "50"]) == 0
    assert "KID-EffLite0" in capsys.readouterr().out
    assert main(["eval", "--real", str(tmp_path / "nope"), "--fake", str(fake)]) == 2
    assert "not a dataset" in capsys.readouterr().err
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--metrics", "fid2"]) == 2


# ------------------------------------------------------------------------------------------ GPU

@pytest.mark.gpu
def test_evaluate_on_cuda_matches_cpu(halves):
    """The generator and the feature network on the GPU; statistics on the CPU; same numbers as on CPU."""
    from zoo.models import build_generator

    A, _ = halves
    G = build_generator("biggan-fashion-mnist", ch_mul="1/4")
    cpu = evaluate(G, A, ("kid", "pr", "swd", "cc"), n=128, settings=FAST, progress=False)
    gpu = evaluate(G.cuda(), A, ("kid", "pr", "swd", "cc"), n=128, settings=FAST, progress=False, use_cache=False)
    assert gpu["device"].startswith("cuda") and next(G.parameters()).is_cuda
    assert gpu["metrics"]["kid"] == pytest.approx(cpu["metrics"]["kid"], rel=0.05, abs=1e-3)
    assert gpu["metrics"]["swd"] == pytest.approx(cpu["metrics"]["swd"], rel=0.05)
