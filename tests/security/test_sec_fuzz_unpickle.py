"""Property-based fuzzing of the checkpoint readers (audit issue 15, findings 6 and 7).

Valid files of every importable format (rebuilt from tests/fixtures/convert like test_convert.py
does) are mutated by hypothesis -- bytes flipped, opcode arguments and length fields set to edge
values, opcodes swapped, ranges deleted, duplicated or truncated; mutations are aimed at opcode
positions, including those inside the torch storage containers nested in NVlabs pickles and inside
a torch zip's data.pkl -- and fed to the importer in the sandbox worker
(test_sec_unpickle_sandbox.py: address-space rlimit at what the worker holds + 768 MiB, a timeout
per case).  The property: every case either loads or raises ZooError; none hangs, crashes, raises
anything else, allocates past the bound, or patches the readers.

Derandomised (``derandomize=True``, fixed ``max_examples``, no example database), so CI runs the
same cases every time: 850 cases, about 30 s on two busy cores.
"""
from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from test_sec_unpickle_sandbox import describe, sandbox  # noqa: F401  (fixture)

LEGACY = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
ARG_WIDTH = {"uint1": 1, "uint2": 2, "int4": 4, "uint4": 4, "uint8": 8, "long1": 1, "long4": 4, "bytes1": 1,
             "bytes4": 4, "bytes8": 8, "unicodestring1": 1, "unicodestring4": 4, "unicodestring8": 8,
             "string1": 1, "string4": 4, "bytearray8": 8}
EDGE = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
        1 << 32, 1 << 40, (1 << 63) - 1, (1 << 64) - 1]
OPCODES = sorted({op.code.encode("latin1")[0] for op in pickletools.opcodes})
SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _ops(data: bytes, base: int = 0, pickles: int = 1) -> list[tuple[int, int]]:
    """(position, argument width) of every opcode in ``pickles`` consecutive pickles at ``data``,
    descending into the legacy torch containers that NVlabs pickles embed as bytes."""
    out, pos = [], 0
    for _ in range(pickles):
        try:
            ops = list(pickletools.genops(io.BytesIO(data[pos:])))
        except Exception:
            break
        for op, arg, at in ops:
            width = ARG_WIDTH.get(op.arg.name, 0) if op.arg is not None else 0
            out.append((base + pos + at, width))
            if isinstance(arg, bytes) and arg.startswith(LEGACY):
                head = 1 + ARG_WIDTH[op.arg.name]
                out.extend(_ops(arg, base + pos + at + head, pickles=5))
        pos += ops[-1][2] + 1 if ops else len(data)
    return out


def mutate(data: bytes, ops: list[tuple[int, int]], mutations) -> bytes:
    buf = bytearray(data)
    for kind, where, value in mutations:
        if not buf:
            break
        if kind in ("edge", "opcode", "delete_op") and ops:
            pos, width = ops[where % len(ops)]
            if pos >= len(buf):
                continue
            if kind == "edge" and width:
                n = EDGE[value % len(EDGE)] & ((1 << (8 * width)) - 1)
                buf[pos + 1:pos + 1 + width] = n.to_bytes(width, "little")
            elif kind == "opcode":
                buf[pos] = OPCODES[value % len(OPCODES)]
            else:
                del buf[pos:pos + 1 + width]
            continue
        pos = where % len(buf)
        if kind == "flip":
            buf[pos] ^= 1 << (value % 8)
        elif kind == "byte":
            buf[pos] = value % 256
        elif kind == "delete":
            del buf[pos:pos + 1 + value % 64]
        elif kind == "duplicate":
            buf[pos:pos] = buf[pos:pos + 1 + value % 64]
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


MUTATION = st.tuples(st.sampled_from(["edge", "edge", "opcode", "delete_op", "flip", "byte", "delete", "duplicate",
                                      "truncate"]),
                     st.integers(0, 1 << 30), st.integers(0, 1 << 16))
MUTATIONS = st.lists(MUTATION, min_size=1, max_size=4)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """One valid file per format, with the opcode positions mutations aim at."""
    from test_convert import ada_pickle, biggan_files, register_nvlabs_stubs, rosinality_file, tf_pickle

    root = tmp_path_factory.mktemp("seeds")
    with pytest.MonkeyPatch.context() as mp:
        g = register_nvlabs_stubs(mp)
        ada = ada_pickle(g, "sg2ada_cond", root).read_bytes()
        tf = tf_pickle(g, root).read_bytes()
    rosinality = rosinality_file(root, "convert_weight").read_bytes()
    biggan = biggan_files(root, legacy=True)["G_ema"].read_bytes()
    with zipfile.ZipFile(io.BytesIO(rosinality)) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist()]
    data_pkl = next(d for i, d in members if i.filename.endswith("/data.pkl"))
    return {
        "ada": (ada, _ops(ada)), "tf": (tf, _ops(tf)), "biggan-legacy": (biggan, _ops(biggan, pickles=5)),
        "rosinality-zip": (rosinality, []),
        "rosinality-pkl": (data_pkl, _ops(data_pkl)), "rosinality-members": members, "root": root,
    }


def _rezip(members, data_pkl: bytes) -> bytes:
    """The torch zip again, with a mutated data.pkl (storage records unchanged)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in members:
            zf.writestr(info, data_pkl if info.filename.endswith("/data.pkl") else data)
    return buf.getvalue()


_counter = [0]


def _check(sandbox, root: Path, data: bytes, suffix: str, kind: str = "import") -> None:
    _counter[0] += 1
    path = root / f"case{_counter[0]:04d}{suffix}"
    path.write_bytes(data)
    result = sandbox.run({"kind": kind, "path": str(path)}, timeout=60)
    path.unlink()
    # what the case ended as, for --hypothesis-show-statistics
    event(result["outcome"] if result["outcome"] != "zooerror" else
          "zooerror: " + " ".join(result["message"].split(": ", 1)[-1].split()[:3]))
    assert result["outcome"] in ("ok", "zooerror"), describe(result)
    assert not result.get("alloc_failed"), describe(result)
    assert result["integrity_ok"], describe(result)
    assert result["peak_rss_mb"] < 1200, describe(result)


def test_seeds_import_cleanly(seeds, sandbox):
    """The unmutated files load (so the fuzzing starts from valid inputs)."""
    root = seeds["root"]
    for name, suffix in (("ada", ".pkl"), ("tf", ".pkl"), ("biggan-legacy", ".pth"), ("rosinality-zip", ".pt")):
        path = root / f"seed-{name}{suffix}"
        path.write_bytes(seeds[name][0])
        result = sandbox.run({"kind": "import", "path": str(path)}, timeout=120)
        assert result["outcome"] == "ok", describe(result)


@settings(max_examples=300, **SETTINGS)
@given(mutations=MUTATIONS, convert=st.booleans())
def test_fuzz_nvlabs_ada_pickle(seeds, sandbox, mutations, convert):
    data, ops = seeds["ada"]
    _check(sandbox, seeds["root"], mutate(data, ops, mutations), ".pkl", "import" if convert else "read_source")


@settings(max_examples=200, **SETTINGS)
@given(mutations=MUTATIONS)
def test_fuzz_nvlabs_tf_pickle(seeds, sandbox, mutations):
    data, ops = seeds["tf"]
    _check(sandbox, seeds["root"], mutate(data, ops, mutations), ".pkl")


@settings(max_examples=200, **SETTINGS)
@given(mutations=MUTATIONS, raw=st.booleans())
def test_fuzz_torch_zip(seeds, sandbox, mutations, raw):
    """Mutations of the zip's data.pkl (rezipped), or of the raw zip bytes (headers, directory)."""
    if raw:
        data = mutate(seeds["rosinality-zip"][0], [], mutations)
    else:
        pkl, ops = seeds["rosinality-pkl"]
        data = _rezip(seeds["rosinality-members"], mutate(pkl, ops, mutations))
    _check(sandbox, seeds["root"], data, ".pt")


@settings(max_examples=150, **SETTINGS)
@given(mutations=MUTATIONS)
def test_fuzz_torch_legacy_file(seeds, sandbox, mutations):
    data, ops = seeds["biggan-legacy"]
    _check(sandbox, seeds["root"], mutate(data, ops, mutations), ".pth")


def test_mutation_targets_reach_nested_storages(seeds):
    """Sanity check of the harness: mutations can land inside the storage containers that NVlabs
    pickles embed, and inside every pickle of a legacy torch file."""
    data, ops = seeds["ada"]
    nested = [pos for pos, _ in ops if data[pos:pos + 2] == b"\x80\x02" and pos > 0]
    assert len(ops) > 10_000 and len(nested) > 100
    _, legacy_ops = seeds["biggan-legacy"]
    assert sum(1 for pos, _ in legacy_ops if seeds["biggan-legacy"][0][pos:pos + 1] == b".") == 5
