"""The local registry: publish -> load round trip, versions, aliases, integrity, errors, CLI, concurrency."""
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import zoo
from zoo.checkpoint import save_checkpoint
from zoo.cli import main
from zoo.errors import ZooError
from zoo.families import family_of
from zoo.models import build_discriminator, build_generator, get_config
from zoo.registry import api, publish
from zoo.registry.model import default_registry_uri

TINY = dict(resolution=16, z_dim=32, w_dim=32, mapping_layers=1)  # ~40k-param StyleGAN2, 230 kB on disk


def make_checkpoint(directory, ch_mul="1/8", seed=0, metadata=None, name="stylegan2-emoji", family="stylegan2"):
    """A tiny real checkpoint (random weights) of the embedded config; returns (dir, G_ema)."""
    torch.manual_seed(seed)
    if family == "biggan":
        cfg = get_config("biggan-emoji", ch_mul, resolution=32, G_ch=8, D_ch=8, dim_z=16, shared_dim=16,
                         G_attn="0", D_attn="0")
    else:
        cfg = get_config("stylegan2-emoji", ch_mul, **TINY)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    save_checkpoint(directory, config=cfg, G_ema=G, D=D, name=name, metadata=metadata or {})
    return Path(directory), G


def sample(G, n=3, seed=123):
    """G(z, c) for fixed z and c, from G as zoo.load hands generators out: prepared for inference by its
    family (in place, idempotent), so a generator and its weights loaded back run the same forward and
    compare bit for bit."""
    G = family_of(G).prepare(G)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=g)
    c = torch.arange(n) % G.c_dim if G.c_dim else None
    with torch.no_grad():
        return G(z, c)


@pytest.fixture(autouse=True)
def _default_registry_only(monkeypatch):
    """A developer's $GANZOO_REGISTRY / $MLFLOW_TRACKING_URI must not receive test entries."""
    monkeypatch.delenv("GANZOO_REGISTRY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", metadata={"metrics": {"kid": 0.0123}})


@pytest.fixture(scope="session")
def ckpt_quarter(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-quarter", ch_mul="1/4", seed=1,
                           metadata={"macs_G_fvcore": 123456, "latency": [{"batch": 1, "ms": 2.5, "backend": "eager"}]})


def registry_root() -> Path:
    return Path(default_registry_uri())


# ------------------------------------------------------------------------------------------ round trip
def test_round_trip_identical_outputs(ckpt):
    directory, G = ckpt
    ref = publish(directory)
    assert (ref.name, ref.ch_mul, ref.version) == ("stylegan2-emoji", "1/8", "1")
    G2 = zoo.load("stylegan2-emoji", ch_mul="1/8")
    assert not G2.training
    assert torch.equal(sample(G), sample(G2))
    full = api.load_entry("stylegan2-emoji", ch_mul="1/8")
    original = zoo.load_checkpoint(directory)
    assert full.D is not None
    assert all(torch.equal(a, b) for a, b in zip(full.D.state_dict().values(), original.D.state_dict().values()))


def test_round_trip_biggan(tmp_path):
    pytest.importorskip("zoo.models.biggan")
    directory, G = make_checkpoint(tmp_path / "bg", ch_mul="1/2", name="biggan-emoji", family="biggan")
    publish(directory)
    G2 = zoo.load("biggan-emoji", ch_mul=0.5)
    assert torch.equal(sample(G), sample(G2))


def test_ch_mul_spellings_and_dtype(ckpt):
    publish(ckpt[0])
    outs = [sample(zoo.load("stylegan2-emoji", ch_mul=w)) for w in (0.125, Fraction(1, 8), "1/8", "0.125")]
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    G16 = zoo.load("stylegan2-emoji", ch_mul="1/8", dtype="bfloat16")
    assert next(G16.parameters()).dtype == torch.bfloat16


def test_metadata_filled_from_checkpoint_and_run(tmp_path, ckpt):
    from zoo.models.stylegan2 import paper_macs

    run = tmp_path / "run"
    directory, G = make_checkpoint(run / "final", metadata={"metrics": {"kid": 0.5}, "training": {"method": "dgl"}})
    (run / "summary.json").write_text(json.dumps({"method": "baseline", "lambda": 0.1, "stage2_kimg": 4}))
    ref = publish(run, name="my-student", aliases=["stable"])
    meta = zoo.info("my-student", ch_mul="1/8")["metadata"]
    assert meta["params_G"] == sum(p.numel() for p in G.parameters())
    assert meta["params_D"] == sum(p.numel() for p in build_discriminator(G.config).parameters())
    assert meta["macs_G_paper"] == paper_macs(G.config)
    assert meta["training"] == {"method": "dgl", "lambda": 0.1, "stage2_kimg": 4}  # checkpoint's own facts win
    assert meta["metrics"] == {"kid": 0.5}
    assert meta["registry"]["version"] == ref.version and meta["registry"]["name"] == "my-student"
    # the metadata.json stored in the entry is the same
    stored = json.loads((registry_root() / ref.path / "metadata.json").read_text())
    assert stored == meta
    row = zoo.list("my-student")[0]
    assert row["method"] == "dgl" and row["metrics"] == {"kid": 0.5} and row["aliases"] == ["latest", "stable"]


# ------------------------------------------------------------------------------------ versions, aliases
def test_versions_auto_increment_and_are_immutable(ckpt, ckpt_quarter):
    r1 = publish(ckpt[0])
    r2 = publish(ckpt[0])
    rq = publish(ckpt_quarter[0])
    assert (r1.version, r2.version, rq.version) == ("1", "2", "1")  # numbered per width
    with pytest.raises(ZooError, match="already exists"):
        publish(ckpt[0], version=2)
    gen = registry_root() / r1.path / "generator.safetensors"
    assert not os.access(gen, os.W_OK) or os.geteuid() == 0  # files are read-only after publishing
    assert [e["version"] for e in zoo.list("stylegan2-emoji") if e["ch_mul"] == "1/8"] == ["1", "2"]
    # explicit integer versions may skip; auto-increment continues from the highest
    assert publish(ckpt[0], version=7).version == "7"
    assert publish(ckpt[0]).version == "8"


def test_semver_versions(ckpt):
    for v in ("1.0.0", "1.1.0-rc.1", "1.1.0", "1.0.1"):
        publish(ckpt[0], version=v)
    assert zoo.info("stylegan2-emoji", "1/8")["version"] == "1.1.0"  # latest by semver precedence
    assert zoo.info("stylegan2-emoji", "1/8", "1.1.0-rc.1")["version"] == "1.1.0-rc.1"
    with pytest.raises(ZooError, match="semver versions: pass --version"):
        publish(ckpt[0])
    with pytest.raises(ZooError, match="mix schemes"):
        publish(ckpt[0], version=3)
    with pytest.raises(ZooError, match="bad version"):
        publish(ckpt[0], version="1.0")


def test_aliases_move(ckpt):
    publish(ckpt[0], aliases=["stable"])
    publish(ckpt[0])
    assert zoo.info("stylegan2-emoji", "1/8", "stable")["version"] == "1"
    assert zoo.info("stylegan2-emoji", "1/8", "latest")["version"] == "2"
    assert zoo.registry.set_alias("stylegan2-emoji", "1/8", "stable", 2) == ("1", "2")
    assert zoo.info("stylegan2-emoji", "1/8", "stable")["aliases"] == ["latest", "stable"]
    zoo.registry.set_alias("stylegan2-emoji", "1/8", "prod", "stable")  # an alias may name another alias
    assert zoo.info("stylegan2-emoji", "1/8", "prod")["version"] == "2"
    zoo.registry.set_alias("stylegan2-emoji", "1/8", "stable", None)
    with pytest.raises(ZooError, match="no version or alias 'stable'"):
        zoo.load("stylegan2-emoji", "1/8", version="stable")
    with pytest.raises(ZooError, match="'latest' is not settable"):
        zoo.registry.set_alias("stylegan2-emoji", "1/8", "latest", 1)
    with pytest.raises(ZooError, match="no version or alias '9'"):
        zoo.registry.set_alias("stylegan2-emoji", "1/8", "stable", 9)


# ------------------------------------------------------------------------------------------- integrity
def _tamper(path: Path, data: bytes | None = None):
    path.chmod(0o644)
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)


def test_tampered_and_missing_files_detected(ckpt, capsys):
    ref = publish(ckpt[0])
    entry = registry_root() / ref.path
    gen = entry / "generator.safetensors"
    blob = bytearray(gen.read_bytes())
    blob[-1] ^= 0xFF  # same size, one flipped bit in the last weight
    _tamper(gen, bytes(blob))
    with pytest.raises(ZooError, match="generator.safetensors: sha256 mismatch"):
        zoo.load("stylegan2-emoji", "1/8")
    _tamper(entry / "discriminator.safetensors")
    (entry / "extra.bin").write_bytes(b"x")
    problems = zoo.registry.verify()[0]["problems"]
    assert any(p.startswith("discriminator.safetensors: missing") for p in problems)
    assert any(p.startswith("generator.safetensors: sha256 mismatch") for p in problems)
    assert any(p.startswith("extra.bin: not listed") for p in problems)
    assert main(["verify"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_corrupted_source_checkpoint_is_not_published(tmp_path):
    directory, _ = make_checkpoint(tmp_path / "c")
    (directory / "generator.safetensors").write_bytes(b"garbage")
    with pytest.raises(ZooError, match="generator.safetensors: sha256 does not match"):
        publish(directory)
    assert zoo.list() == []
    assert not list(registry_root().glob(".staging/*"))


# ----------------------------------------------------------------------------------------------- errors
def test_clear_errors(tmp_path, ckpt, ckpt_quarter):
    publish(ckpt[0])
    publish(ckpt_quarter[0])
    with pytest.raises(ZooError, match=r"no entry named 'nope'.*published names: stylegan2-emoji"):
        zoo.load("nope")
    with pytest.raises(ZooError, match=r"published widths: 1/4, 1/8"):
        zoo.load("stylegan2-emoji", ch_mul=0.5)
    with pytest.raises(ZooError, match=r"versions: 1; aliases: none"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", version=5)
    with pytest.raises(ValueError, match="ch_mul must be"):
        zoo.load("stylegan2-emoji", ch_mul="wide")
    with pytest.raises(ZooError, match="unknown backend"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", backend="tflite")
    with pytest.raises(ZooError, match=r"backend 'onnx' is not available.*exported backends: none"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", backend="onnx")
    with pytest.raises(ZooError, match="unknown dtype"):
        zoo.load("stylegan2-emoji", ch_mul="1/8", dtype="fp8")
    with pytest.raises(ZooError, match=r"disagrees with the checkpoint's config \(ch_mul=1/8\)"):
        publish(ckpt[0], ch_mul="1/2")
    with pytest.raises(ZooError, match="bad entry name"):
        publish(ckpt[0], name="Bad Name")
    with pytest.raises(ZooError, match="not a checkpoint directory"):
        publish(tmp_path)
    with pytest.raises(ZooError, match="unsupported registry URI"):
        zoo.list(registry="s3://bucket/zoo")


def test_entry_references_split_into_name_and_version():
    from zoo.registry.model import split_ref

    assert split_ref("biggan-fashion-mnist@2") == ("biggan-fashion-mnist", "2")
    assert split_ref("stylegan2-fashion-mnist") == ("stylegan2-fashion-mnist", None)
    assert split_ref("stylegan2-emoji@stable") == ("stylegan2-emoji", "stable")  # an alias resolves later
    for bad, message in [("../x@1", "bad entry name"), ("x@", "nothing after '@'"), ("@1", "bad entry name")]:
        with pytest.raises(ZooError, match=message):
            split_ref(bad)


@pytest.mark.parametrize("name", ["stylegan2-ffhq", "stylegan2-church", "biggan-imagenet"])
def test_catalogue_names_explain_how_to_get_weights(name):
    with pytest.raises(ZooError) as info:
        zoo.load(name, ch_mul=0.5)
    message = str(info.value)
    assert "weights are not bundled" in message and "zoo import" in message and "zoo train" in message


# ----------------------------------------------------------------------------------------- onnx backend
def test_onnx_backend_is_the_export_runtime_wrapper(tmp_path):
    """zoo.load(backend="onnx") opens the entry's exports/onnx/ artifact with export's own wrapper."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from zoo.export.artifact import load_export
    from zoo.export.exporter import export_generator
    from zoo.export.onnx import OnnxGenerator
    from zoo.runtime.base import BatchRange

    directory, G = make_checkpoint(tmp_path / "c")
    # `zoo export <ckpt> --backend onnx --out <ckpt>/exports/onnx`, then publish: the whole artifact goes in
    _, meta = export_generator(G, directory / "exports" / "onnx", backend="onnx", batch=BatchRange(1, 2, 4))
    ref = publish(directory, name="onnx-test")
    assert {"exports/onnx/model.onnx", "exports/onnx/export.json"} <= set(ref.files)
    G_onnx = zoo.load("onnx-test", ch_mul="1/8", backend="onnx")
    same = load_export(directory / "exports" / "onnx")
    assert type(G_onnx) is type(same) is OnnxGenerator
    assert G_onnx.z_dim == G.z_dim and G_onnx.c_dim == 0 and G_onnx.img_resolution == 16
    assert G_onnx.config.ch_mul == "1/8" and G_onnx.threads >= 1
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        ref_img = G(z, truncation_psi=0.7, noise_mode="const")
    out = G_onnx(z, truncation_psi=0.7)
    assert out.dtype == torch.float32 and out.shape == ref_img.shape == (3, 3, 16, 16)
    assert (out - ref_img).abs().max() <= meta["verification"]["thresholds"]["max_abs"]
    assert torch.equal(out, same(z, truncation_psi=0.7))
    with pytest.raises(ZooError, match=r"'tensorrt' is not available.*exported backends: onnx"):
        zoo.load("onnx-test", ch_mul="1/8", backend="tensorrt")


def test_onnx_backend_older_layout_without_export_json_is_a_clear_error(tmp_path):
    directory, _ = make_checkpoint(tmp_path / "c")
    (directory / "exports" / "onnx").mkdir(parents=True)
    (directory / "exports" / "onnx" / "model.onnx").write_bytes(b"an ONNX model from before export.json")
    publish(directory, name="onnx-old")
    with pytest.raises(ZooError, match=r"no exports/onnx/export.json \(an older registry layout.*zoo export"):
        zoo.load("onnx-old", ch_mul="1/8", backend="onnx")


def test_tensorrt_backend_without_the_extra_names_it(tmp_path):
    import importlib.util

    from zoo.errors import MissingExtraError

    if importlib.util.find_spec("torch_tensorrt") is not None:
        pytest.skip("torch_tensorrt is installed")

    directory, _ = make_checkpoint(tmp_path / "c")
    trt_dir = directory / "exports" / "tensorrt"
    trt_dir.mkdir(parents=True)
    (trt_dir / "model.ep").write_bytes(b"engine")
    (trt_dir / "export.json").write_text(json.dumps({"format": "ganzoo-export/1", "backend": "tensorrt"}))
    publish(directory, name="trt-test")
    with pytest.raises(MissingExtraError, match=r"'torch_tensorrt' is needed for backend='tensorrt'.*dglgan-zoo\[trt\]"):
        zoo.load("trt-test", ch_mul="1/8", backend="tensorrt")


# ------------------------------------------------------------------------------------- store chain / api
def test_explicit_registry_and_bundled_fallback(tmp_path, ckpt, monkeypatch):
    team = tmp_path / "team-registry"
    publish(ckpt[0], registry=team)
    assert zoo.list() == []  # the default registry is untouched
    assert [e["registry"] for e in zoo.list(registry=team)] == [str(team.resolve())]
    # a registry bundled with the package is searched after the user's
    monkeypatch.setattr(api, "bundled_registry", lambda: team)
    assert torch.equal(sample(zoo.load("stylegan2-emoji", ch_mul="1/8")), sample(ckpt[1]))
    with pytest.raises(ZooError, match="read-only"):
        api.stores()[1].set_alias("stylegan2-emoji", "1/8", "stable", 1)


def test_compare_widths(ckpt, ckpt_quarter):
    publish(ckpt[0])
    publish(ckpt_quarter[0])
    rows = zoo.registry.compare("stylegan2-emoji")
    assert [r["ch_mul"] for r in rows] == ["1/4", "1/8"]
    assert rows[0]["macs_G_fvcore"] == 123456 and rows[0]["latency"][0]["ms"] == 2.5
    assert rows[0]["params_G"] > rows[1]["params_G"]


# -------------------------------------------------------------------------------------------------- CLI
def test_cli_commands(ckpt, ckpt_quarter, capsys):
    assert main(["publish", str(ckpt[0]), "--alias", "stable", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == "1" and out["aliases"] == ["latest", "stable"]
    assert main(["publish", str(ckpt_quarter[0]), "--name", "stylegan2-emoji", "--ch-mul", "0.25"]) == 0
    assert "published stylegan2-emoji ch_mul=1/4 v1" in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    assert [(e["ch_mul"], e["version"]) for e in json.loads(capsys.readouterr().out)] == [("1/4", "1"), ("1/8", "1")]
    assert main(["list"]) == 0
    assert "stylegan2-emoji  1/4" in capsys.readouterr().out
    assert main(["info", "stylegan2-emoji", "--ch-mul", "1/8", "--version", "stable", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metadata"]["metrics"] == {"kid": 0.0123} and "generator.safetensors" in data["files"]
    assert main(["info", "stylegan2-emoji", "--ch-mul", "1/8"]) == 0
    assert "sha256" in capsys.readouterr().out
    assert main(["publish", str(ckpt[0])]) == 0
    capsys.readouterr()
    assert main(["alias", "stylegan2-emoji", "stable", "2", "--ch-mul", "1/8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"alias": "stable", "name": "stylegan2-emoji", "previous": "1",
                                                   "version": "2"}
    assert main(["verify", "--json"]) == 0
    assert all(r["ok"] for r in json.loads(capsys.readouterr().out))
    assert main(["compare", "stylegan2-emoji"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ch_mul", "version", "role"] and "b1 speedup" in header
    (quarter,) = [r for r in rows if r.startswith("1/4 ")]
    assert "2.5" in quarter.split() and "measured on an unrecorded machine" in out and "[a]" not in out


def test_cli_compare_never_mixes_machines_unmarked(tmp_path, capsys):
    """Widths timed on different CPUs (a teacher shipped from one machine, its students from another):
    every time carries its machine's tag; the speedups stay each row's own same-run ratio."""
    reg = tmp_path / "reg"
    for ch, fingerprint, ms, speedup in (("1/4", "cpu:Xeon:amx", 13.7, 1.5), ("1/8", "cpu:EPYC:avx512", 6.0, 2.9)):
        directory, _ = make_checkpoint(tmp_path / ch.replace("/", "_"), ch_mul=ch, metadata={"latency": [
            {"batch": 1, "median_ms": ms, "speedup_vs_full": speedup, "backend": "eager", "fingerprint": fingerprint}]})
        assert main(["publish", str(directory), "--registry", str(reg)]) == 0
    capsys.readouterr()
    assert main(["compare", "stylegan2-emoji", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "13.7 [a]" in out and "1.50x" in out and "6 [b]" in out and "2.90x" in out
    assert "[a] cpu:Xeon:amx" in out and "[b] cpu:EPYC:avx512" in out and "not comparable" in out


def test_cli_errors_exit_2_without_traceback(capsys):
    for argv in (["info", "stylegan2-ffhq", "--ch-mul", "1/2"], ["publish", "/nonexistent"],
                 ["alias", "x", "stable"], ["compare", "nope"], ["list", "--registry", "ftp://x"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err


def test_import_registry_is_light():
    code = ("import sys, zoo.registry, zoo.registry.cli, zoo.registry.http, zoo.registry.hf, zoo.runtime, "
            "zoo.registry.mlflow_registry; zoo.list; "
            "print([m for m in ('torch', 'mlflow', 'huggingface_hub', 'onnxruntime', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------ concurrency
def test_concurrent_publishers_never_corrupt_the_index(ckpt, tmp_path):
    """Two processes each publish 8 versions at once: 16 distinct versions, every one verifies."""
    go = tmp_path / "go"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from zoo.registry import publish
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        for _ in range(8):
            print(publish({str(ckpt[0])!r}).version, flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=os.environ.copy()) for _ in range(2)]
    import time

    time.sleep(0.5)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    versions = sorted(int(v) for out, _ in outputs for v in out.split())
    assert versions == list(range(1, 17))
    index = json.loads((registry_root() / "index.json").read_text())
    assert sorted(index["models"]["stylegan2-emoji"]["1/8"]["versions"], key=int) == [str(v) for v in versions]
    assert all(r["ok"] for r in zoo.registry.verify())


def test_locate_reads_a_reference_one_way(tmp_path, monkeypatch):
    """A path (separator, leading '.' or '~', PathLike) is a checkpoint directory; anything else NAME[@VERSION],
    so a same-named directory in the working directory never shadows an entry."""
    from zoo.registry import load_entry, locate

    directory, _ = make_checkpoint(tmp_path / "stylegan2-emoji", ch_mul="1/8")
    ref = publish(directory)
    assert locate(directory) == (directory, None)
    monkeypatch.chdir(tmp_path)
    assert locate("./stylegan2-emoji") == (Path("stylegan2-emoji"), None)
    path, entry = locate("stylegan2-emoji@1", ch_mul="1/8")  # the entry, though ./stylegan2-emoji exists
    assert entry == ref and path != Path("stylegan2-emoji").resolve()
    assert load_entry("stylegan2-emoji@latest", ch_mul="1/8", load_D=False).name == "stylegan2-emoji"
    assert api.resolve("stylegan2-emoji@1", "1/8")[1] == ref  # every lookup takes NAME@VERSION: zoo.load, info, ...
    assert zoo.info("stylegan2-emoji@1", ch_mul="1/8")["version"] == ref.version
    with pytest.raises(ZooError, match="not give version=1 as well"):
        locate("stylegan2-emoji@1", ch_mul="1/8", version=1)
    with pytest.raises(ZooError, match=r"neither a checkpoint directory nor a registry entry.*no version or alias '7'"):
        locate("stylegan2-emoji@7", ch_mul="1/8")
    with pytest.raises(ZooError, match=r"ch_mul=1/2.*a directory 'stylegan2-emoji' exists here: write ./stylegan2-emoji"):
        locate("stylegan2-emoji", ch_mul="1/2")  # no such width published: the error points at the directory
    with pytest.raises(ZooError, match="'./missing': no such checkpoint directory"):
        locate("./missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match=r"not a checkpoint directory \(no config.json\)"):
        locate(Path("empty"))
