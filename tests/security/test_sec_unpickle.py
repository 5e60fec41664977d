"""A corpus of hostile pickles and torch files (audit issue 15, findings 6 and 7): each is refused.

Every file here is hand-assembled, opcode by opcode, and fed to the importer inside the sandbox
worker (test_sec_unpickle_sandbox.py: memory rlimit, timeout, integrity snapshot of the readers).
"Refused" means: a ZooError (never a traceback, RecursionError, MemoryError or crash), no
allocation past the worker's bound, no allow-listed function or class patched, no side effect.
"""
from __future__ import annotations

import io
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from test_sec_unpickle_sandbox import assert_refused, describe, sandbox  # noqa: F401  (fixture)

# ------------------------------------------------------------------------------ a pickle assembler

PROTO2, STOP, MARK, TUPLE, REDUCE, BUILD = b"\x80\x02", b".", b"(", b"t", b"R", b"b"
NONE, NEWFALSE, NEWTRUE, EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST = b"N", b"\x89", b"\x88", b")", b"}", b"]"
SETITEM, APPEND, TUPLE1, TUPLE2, NEWOBJ, BINPERSID, DUP = b"s", b"a", b"\x85", b"\x86", b"\x81", b"Q", b"2"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def GLOBAL(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def STR(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def BYTES(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def INT(value: int) -> bytes:
    if 0 <= value < 2 ** 31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def SINT(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def TUP(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def PUT(i: int) -> bytes:
    return b"q" + bytes([i])


def GET(i: int) -> bytes:
    return b"h" + bytes([i])


def pickled(body: bytes) -> bytes:
    return PROTO2 + body + STOP


def ordered_dict() -> bytes:
    return GLOBAL("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE


def legacy_storage(declared: int, data: bytes, stype: str = "FloatStorage", header: int | None = None) -> bytes:
    """torch's legacy container holding one storage, as ``torch.storage._load_from_bytes`` receives it."""
    head = pickle.dumps(LEGACY_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
        protocol=2)
    main = pickled(TUP(STR("storage"), GLOBAL("torch", stype), STR("0"), STR("cpu"), INT(declared), NONE) + BINPERSID)
    keys = pickle.dumps(["0"], protocol=2)
    return head + main + keys + struct.pack("<q", declared if header is None else header) + data


def tensor(storage_bytes: bytes, offset: int, size: tuple, stride: tuple) -> bytes:
    """``torch._utils._rebuild_tensor_v2(_load_from_bytes(...), offset, size, stride, False, OrderedDict())``"""
    return (GLOBAL("torch._utils", "_rebuild_tensor_v2")
            + TUP(GLOBAL("torch.storage", "_load_from_bytes") + TUP(BYTES(storage_bytes)) + REDUCE,
                  INT(offset), TUP(*map(INT, size)), TUP(*map(INT, stride)), NEWFALSE, ordered_dict())
            + REDUCE)


def persistent(state_items: bytes, class_name: str = "Generator") -> bytes:
    """``_reconstruct_persistent_obj({'type': 'class', 'class_name': ..., 'state': {...}})``"""
    meta = (EMPTY_DICT + STR("type") + STR("class") + SETITEM + STR("class_name") + STR(class_name) + SETITEM
            + STR("version") + INT(6) + SETITEM + STR("state") + state_items + SETITEM)
    return GLOBAL("torch_utils.persistence", "_reconstruct_persistent_obj") + TUP(meta) + REDUCE


def snapshot_with(g_ema: bytes) -> bytes:
    return pickled(EMPTY_DICT + STR("G_ema") + g_ema + SETITEM)


# ------------------------------------------------------------------------- torch files, assembled

def torch_zip(data_pkl: bytes, records: dict[str, bytes], compress: dict[str, bool] | None = None,
              extra: list[tuple[str, bytes]] = ()) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are one of the attacks
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", b"little")
        for key, data in records.items():
            kind = zipfile.ZIP_DEFLATED if (compress or {}).get(key) else zipfile.ZIP_STORED
            zf.writestr(f"archive/data/{key}", data, compress_type=kind)
        zf.writestr("archive/version", b"3\n")
        for name, data in extra:
            zf.writestr(name, data)
    return buf.getvalue()


def zip_tensor(key: str, numel: int, size: tuple, stride: tuple, stype: str = "FloatStorage") -> bytes:
    return (GLOBAL("torch._utils", "_rebuild_tensor_v2")
            + TUP(TUP(STR("storage"), GLOBAL("torch", stype), STR(key), STR("cpu"), INT(numel)) + BINPERSID,
                  INT(0), TUP(*map(INT, size)), TUP(*map(INT, stride)), NEWFALSE, ordered_dict())
            + REDUCE)


def g_ema_dict(value: bytes) -> bytes:
    return pickled(EMPTY_DICT + STR("g_ema") + EMPTY_DICT + STR("w") + value + SETITEM + SETITEM)


def legacy_torch_file(main_body: bytes, storages: dict[str, tuple[int, bytes]]) -> bytes:
    head = pickle.dumps(LEGACY_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
        protocol=2)
    tail = b"".join(struct.pack("<q", n) + data for n, data in storages.values())
    return head + pickled(main_body) + pickle.dumps(list(storages), protocol=2) + tail


ONE_FLOAT = legacy_storage(1, struct.pack("<f", 1.0))


def np_dtype(code: str, flags: int = 0, order: str = "<") -> bytes:
    """``numpy.dtype(code, False, True)`` then BUILD with the state numpy writes for it"""
    return (GLOBAL("numpy", "dtype") + TUP(STR(code), NEWFALSE, NEWTRUE) + REDUCE
            + TUP(INT(3), STR(order), NONE, NONE, NONE, SINT(-1), SINT(-1), INT(flags)) + BUILD)


def np_array(shape: tuple, dtype: bytes, data: bytes) -> bytes:
    """numpy's own array pickle: ``_reconstruct(ndarray, (0,), b'b')`` then BUILD (1, shape, dtype, False, data)"""
    return (GLOBAL("numpy.core.multiarray", "_reconstruct") + TUP(GLOBAL("numpy", "ndarray"), TUP(INT(0)), BYTES(b"b"))
            + REDUCE + TUP(INT(1), TUP(*map(INT, shape)), dtype, NEWFALSE, data) + BUILD)

def call(module: str, name: str, *args: bytes) -> bytes:
    """``module.name(*args)``: GLOBAL, the argument tuple, REDUCE."""
    return GLOBAL(module, name) + TUP(*args) + REDUCE


def one_item(key: str, value: bytes) -> bytes:
    return EMPTY_DICT + STR(key) + value + SETITEM


def set_slot(target: bytes, key: str, value: bytes) -> bytes:
    """BUILD ``target`` with the state ``(None, {key: value})``: pickle's ``setattr`` path."""
    return target + TUP(NONE, one_item(key, value)) + BUILD


DTYPE_O8 = call("numpy", "dtype", STR("O8"), NEWFALSE, NEWTRUE)
RECONSTRUCT = ("numpy.core.multiarray", "_reconstruct")
NDARRAY = GLOBAL("numpy", "ndarray")

# ------------------------------------------------------------------------------------------ corpus
# name -> (the file's bytes, or a function of the path a payload would create; regex of the refusal)

CODE_EXECUTION = {
    # the classic: GLOBAL posix.system + REDUCE
    "os_system_reduce": (lambda flag: pickled(call("posix", "system", STR(f"touch {flag}"))),
                         "refusing to unpickle posix.system"),
    "builtins_eval": (lambda flag: pickled(call("builtins", "eval", STR(f"open({str(flag)!r}, 'w')"))),
                      "refusing to unpickle builtins.eval"),
    "builtins_exec_stack_global": (lambda flag: b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93"
                                   + TUP(STR(f"open({str(flag)!r}, 'w')")) + REDUCE + STOP,
                                   "refusing to unpickle builtins.exec"),
    "getattr_chain": (pickled(call("builtins", "getattr", GLOBAL("os", "path"), STR("join"))),
                      "refusing to unpickle builtins.getattr"),
    "importlib": (pickled(call("importlib", "import_module", STR("os"))), "refusing to unpickle importlib"),
    "subprocess_popen": (lambda flag: pickled(call("subprocess", "Popen", TUP(STR("touch"), STR(str(flag))))),
                         "refusing to unpickle subprocess.Popen"),
    "torch_load_inside": (pickled(call("torch", "load", STR("/dev/null"))), "refusing to unpickle torch.load"),
    "real_rebuild_from_type": (pickled(call("torch._tensor", "_rebuild_from_type_v2", NONE, NONE, EMPTY_TUPLE, NONE)),
                               "refusing to unpickle torch._tensor._rebuild_from_type_v2"),
    "copyreg_reconstructor": (pickled(call("copyreg", "_reconstructor", GLOBAL("dnnlib.util", "EasyDict"),
                                           GLOBAL("builtins", "dict"), EMPTY_DICT)),
                              "refusing to unpickle copyreg._reconstructor"),
    # INST (protocol 0) names and instantiates a class in one opcode
    "inst_opcode": (lambda flag: PROTO2 + f"(S'touch {flag}'\nios\nsystem\n.".encode(), "refusing pickle opcode INST"),
    # OBJ with an allow-listed class object
    "obj_opcode": (PROTO2 + MARK + GLOBAL("dnnlib.util", "EasyDict") + b"o" + STOP, "refusing pickle opcode OBJ"),
    "ext_registry": (PROTO2 + b"\x82\x01" + STOP, "refusing pickle opcode EXT1"),
    # REDUCE on an allow-listed *class* (EasyDict(*args) would hash arbitrary keys): only NEWOBJ may build it
    "reduce_on_class": (pickled(call("dnnlib.util", "EasyDict", EMPTY_LIST)), "refusing to call"),
    "newobj_args": (pickled(GLOBAL("argparse", "Namespace") + TUP(INT(1)) + NEWOBJ), "refusing"),
    "persistent_id": (pickled(TUP(STR("storage")) + BINPERSID), "unexpected persistent id"),
}

STATE_PATCHING = {
    # BUILD with (None, {'__defaults__': ...}) on an allow-listed function: a setattr that would stay
    # in effect for every later load in the process
    "defaults_rewrite_dtype": (pickled(set_slot(GLOBAL("numpy", "dtype"), "__defaults__", TUP(NEWTRUE, NEWTRUE))),
                               "refusing to set the state"),
    "defaults_rewrite": (pickled(set_slot(GLOBAL("torch._utils", "_rebuild_tensor_v2"), "__defaults__",
                                          TUP(NEWTRUE, NONE, NONE))),
                         "refusing to set the state"),
    "kwdefaults_rewrite": (pickled(set_slot(GLOBAL("torch_utils.persistence", "_reconstruct_persistent_obj"),
                                            "__kwdefaults__", EMPTY_DICT)),
                           "refusing to set the state"),
    "class_attribute_rewrite": (pickled(set_slot(GLOBAL("dnnlib.util", "EasyDict"), "__getattr__",
                                                 GLOBAL("numpy", "dtype"))),
                                "refusing to set the state"),
    "class_setstate_rewrite": (pickled(set_slot(GLOBAL("dnnlib.tflib.network", "Network"), "__setstate__",
                                                GLOBAL("numpy", "dtype"))),
                               "refusing to set the state"),
    "instance_class_swap": (pickled(set_slot(ordered_dict(), "__class__", GLOBAL("dnnlib.util", "EasyDict"))),
                            "refusing to set the state"),
    "setitem_on_function": (pickled(GLOBAL("numpy", "dtype") + STR("x") + INT(1) + SETITEM), "refusing to set items"),
    "append_on_class": (pickled(GLOBAL("dnnlib.util", "EasyDict") + INT(1) + APPEND), "refusing to append"),
}

ALLOCATION = {
    # a tensor far larger than its 4-byte storage: set_() would grow the storage to 8 GB
    "huge_tensor_tiny_storage": (pickled(tensor(ONE_FLOAT, 0, (2 ** 31,), (1,))),
                                 "refusing a tensor .* storage that holds 1"),
    # stride 0: 10^12 elements over one float (materialised by the first .contiguous())
    "stride_zero_amplification": (pickled(tensor(ONE_FLOAT, 0, (10 ** 6, 10 ** 6), (0, 0))), "overlapping strides"),
    "offset_past_storage": (pickled(tensor(ONE_FLOAT, 2 ** 40, (1,), (1,))), "refusing a tensor"),
    "negative_size": (pickled(tensor(ONE_FLOAT, 0, (-1,), (1,))), "negative size"),
    # a storage that declares 1.2 GB (3e8 floats) but carries 4 bytes
    "storage_declares_gigabytes": (pickled(tensor(legacy_storage(300_000_000, b"\0" * 4, header=1), 0, (1,), (1,))),
                                   "storages of 1,200,000,008 bytes declared"),
    "storage_declares_8gb_header": (pickled(tensor(legacy_storage(1, b"\0" * 4, header=2 ** 31), 0, (1,), (1,))),
                                    "has 2147483648 elements"),
    # length fields that claim far more than the file holds (a reader would allocate them first)
    "binbytes8_claims_terabyte": (PROTO2 + b"\x8e" + struct.pack("<Q", 1 << 40) + b"x" * 16 + STOP,
                                  "asks for 1,099,511,627,776 bytes"),
    "binunicode_claims_4gb": (PROTO2 + b"X" + struct.pack("<I", 2 ** 32 - 1) + b"x" * 16 + STOP,
                              "asks for 4,294,967,295 bytes"),
    "frame_claims_terabyte": (b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.", "asks for 1,099,511,627,776 bytes"),
    "bytearray8": (b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + STOP, "refusing pickle opcode BYTEARRAY8"),
    "long4_claims_2gb": (PROTO2 + b"\x8b" + struct.pack("<i", 2 ** 31 - 1) + b"\x01" * 8 + STOP,
                         "asks for 2,147,483,647 bytes"),
    # numpy: an array constructor that allocates from the pickle's own shape
    "numpy_reconstruct_shape": (pickled(call(*RECONSTRUCT, NDARRAY, TUP(INT(2 ** 33)), STR("b"))),
                                "refusing a numpy array constructor"),
    "numpy_setstate_short_data": (pickled(np_array((2 ** 33,), np_dtype("f4"), BYTES(b"\0" * 8))),
                                  "needs 34,359,738,368 bytes"),
}

OBJECT_ARRAYS = {
    # old reader: np.ndarray.__new__(ndarray, (3,), 'O') -> an object array of None
    "object_array_via_reconstruct": (pickled(call(*RECONSTRUCT, NDARRAY, TUP(INT(3)), STR("O"))),
                                     "refusing a numpy array constructor"),
    "object_dtype": (pickled(DTYPE_O8), "non-numeric numpy dtype"),
    "void_dtype": (pickled(call("numpy", "dtype", STR("V8"), NEWFALSE, NEWTRUE)), "non-numeric numpy dtype"),
    # a numeric dtype whose state then turns on the HASOBJECT flags (0x3f)
    "dtype_state_hasobject": (pickled(np_dtype("f8", flags=0x3F, order="|")), "changes the dtype's flags"),
    "array_with_list_data": (pickled(np_array((2,), np_dtype("f8"), EMPTY_LIST + INT(1) + APPEND + INT(2) + APPEND)),
                             "object arrays are not weights"),
    "array_with_object_dtype": (pickled(np_array((1,), DTYPE_O8, EMPTY_LIST + NONE + APPEND)),
                                "non-numeric numpy dtype"),
    "object_scalar": (pickled(call("numpy.core.multiarray", "scalar", DTYPE_O8, BYTES(b"\0" * 8))),
                      "non-numeric numpy dtype"),
}

DEEP_TUPLE = EMPTY_TUPLE + TUPLE1 * 200_000

GRAPHS = {
    # a module that is its own child: the old converter recursed until RecursionError.  The state
    # {'_modules': OrderedDict()} is built with the OrderedDict memoised (1), the object (2), then
    # _modules['self'] = the object
    "module_is_its_own_child": (
        snapshot_with(persistent(one_item("_modules", ordered_dict() + PUT(1))) + PUT(2)
                      + GET(1) + STR("self") + GET(2) + SETITEM + b"0"),
        "cyclic"),
    "tf_network_is_its_own_component": (
        pickled(GLOBAL("dnnlib.tflib.network", "Network") + EMPTY_TUPLE + NEWOBJ + PUT(1)
                + EMPTY_DICT + STR("version") + INT(4) + SETITEM + STR("components") + one_item("G", GET(1)) + SETITEM
                + BUILD + TUP(GET(1), GET(1), GET(1))),
        "cyclic"),
    "list_contains_itself": (pickled(EMPTY_LIST + PUT(1) + GET(1) + APPEND), "cyclic"),
    "dict_contains_itself": (pickled(EMPTY_DICT + PUT(1) + STR("G_ema") + GET(1) + SETITEM), "cyclic"),
    # 100k nested lists: fine to build, but any recursive walk of it overflows
    "deep_lists": (pickled(EMPTY_LIST * 100_000 + APPEND * 99_999), "nested deeper than 100"),
    # a 200k-deep tuple as a dict key: hashing it recurses in C (the old reader crashed)
    "deep_tuple_key": (pickled(EMPTY_DICT + DEEP_TUPLE + INT(1) + SETITEM), "only strings, numbers and flat tuples"),
    "deep_tuple_in_set": (pickled(call("builtins", "set", EMPTY_LIST + DEEP_TUPLE + APPEND)), "flat tuples"),
    # a layer whose 'conv_clamp' attribute is a deep tuple: the converter collects those in a set
    "deep_tuple_attribute": (
        snapshot_with(persistent(one_item("_modules", ordered_dict() + STR("b4")
                                          + persistent(one_item("conv_clamp", DEEP_TUPLE), "SynthesisLayer")
                                          + SETITEM))),
        "nested deeper than 100"),
    # shared references that unfold exponentially (2**60 paths through 60 levels)
    "exponential_sharing": (pickled(EMPTY_LIST + (DUP + TUPLE2) * 60), "unfold to more than"),
}


def legacy_tensor_file(declared: int, size: int) -> bytes:
    """A pre-1.6 torch file ``{'g_ema': {'w': tensor}}`` whose storage declares ``declared`` floats and
    holds one."""
    storage = TUP(STR("storage"), GLOBAL("torch", "FloatStorage"), STR("0"), STR("cpu"), INT(declared), NONE)
    w = call("torch._utils", "_rebuild_tensor_v2", storage + BINPERSID, INT(0), TUP(INT(size)), TUP(INT(1)), NEWFALSE,
             ordered_dict())
    return legacy_torch_file(one_item("g_ema", one_item("w", w)), {"0": (1, b"\0" * 4)})


def _torch_cases() -> dict:
    object_array = call(*RECONSTRUCT, NDARRAY, TUP(INT(3)), STR("O"))
    return {
        # weights_only bypasses went through names torch allows; here the zip's pickle meets our allow-list
        "zip_os_system": (lambda flag: torch_zip(pickled(call("posix", "system", STR(f"touch {flag}"))), {}),
                          "refusing to load.*posix.system"),
        "zip_module_class": (torch_zip(pickled(GLOBAL("torch.nn.modules.linear", "Linear") + EMPTY_TUPLE + NEWOBJ), {}),
                             "refusing to load.*torch.nn.modules.linear.Linear"),
        "zip_tensor_bigger_than_storage": (torch_zip(g_ema_dict(zip_tensor("0", 1, (2 ** 31,), (1,))),
                                                     {"0": b"\0" * 4}), "refusing a tensor"),
        "zip_stride_zero": (torch_zip(g_ema_dict(zip_tensor("0", 1, (10 ** 6, 10 ** 6), (0, 0))), {"0": b"\0" * 4}),
                            "overlapping strides"),
        "zip_storage_declares_more_than_record": (torch_zip(g_ema_dict(zip_tensor("0", 2 ** 30, (1,), (1,))),
                                                            {"0": b"\0" * 4}),
                                                  "declares 4,294,967,296 bytes, its record holds 4"),
        # a deflated record that inflates to 1 GB: torch.save never compresses, so it is refused unread
        "zip_bomb_record": (torch_zip(g_ema_dict(zip_tensor("0", 2 ** 28, (2 ** 28,), (1,))),
                                      {"0": b"\0" * (2 ** 28 * 4 // 256)}, compress={"0": True}),
                            "compressed zip member"),
        "zip_duplicate_names": (torch_zip(g_ema_dict(NONE), {}, extra=[("archive/data.pkl", pickled(NONE))]),
                                "duplicate member names"),
        "zip_two_pickles": (torch_zip(g_ema_dict(NONE), {}, extra=[("other/data.pkl", pickled(NONE))]),
                            "2 '<name>/data.pkl'"),
        "zip_cyclic": (torch_zip(pickled(EMPTY_DICT + PUT(1) + STR("g_ema") + GET(1) + SETITEM), {}), "cyclic"),
        "zip_object_array": (torch_zip(g_ema_dict(object_array), {}), "refusing a numpy array constructor"),
        "legacy_storage_declares_gigabytes": (legacy_tensor_file(300_000_000, 1),
                                              "storages of 1,200,000,008 bytes declared"),
        "legacy_tensor_bigger_than_storage": (legacy_tensor_file(1, 2 ** 31), "refusing a tensor"),
        "legacy_pickled_module_source": (legacy_torch_file(
            TUP(STR("module"), GLOBAL("torch.nn", "Linear"), STR("x.py"), STR("import os")) + BINPERSID, {}),
            "refusing to load.*torch.nn.Linear"),
    }


def _cases() -> dict:
    out = {}
    for group in (CODE_EXECUTION, STATE_PATCHING, ALLOCATION, OBJECT_ARRAYS, GRAPHS):
        for name, (data, match) in group.items():
            out[name] = (data, ".pkl", match)
    for name, (data, match) in _torch_cases().items():
        out[name] = (data, ".pt", match)
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    flag = root / "pwned"
    files = {}
    for name, (data, suffix, _) in CASES.items():
        path = root / f"{name}{suffix}"
        path.write_bytes(data(flag) if callable(data) else data)
        files[name] = path
    return files, flag


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_is_refused(name, corpus, sandbox):
    files, flag = corpus
    _, _, match = CASES[name]
    kind = "import"
    result = sandbox.run({"kind": kind, "path": str(files[name])}, timeout=120)
    assert_refused(result, match)
    assert not flag.exists(), f"{name} ran code"
    assert result["peak_rss_mb"] < 1500, describe(result)


@pytest.mark.parametrize("name", ["huge_tensor_tiny_storage", "stride_zero_amplification", "storage_declares_gigabytes",
                                  "defaults_rewrite", "defaults_rewrite_dtype", "object_array_via_reconstruct",
                                  "array_with_object_dtype", "module_is_its_own_child", "deep_tuple_key",
                                  "deep_tuple_attribute", "exponential_sharing", "binbytes8_claims_terabyte"])
def test_unpickler_alone_refuses(name, corpus, sandbox):
    """The same files straight into ``safe_load`` (no format detection or converter around it)."""
    files, _ = corpus
    assert_refused(sandbox.run({"kind": "safe_load", "path": str(files[name])}, timeout=120), CASES[name][2])


def test_refusals_leave_the_process_usable(corpus, sandbox, tmp_path):
    """After the whole corpus, the worker still imports a real file correctly (nothing was patched)."""
    from test_convert import rosinality_file

    src = rosinality_file(tmp_path, "convert_weight")
    result = sandbox.run({"kind": "import", "path": str(src)}, timeout=120)
    assert result["outcome"] == "ok" and result["value"] == "'rosinality'" and result["integrity_ok"], describe(result)


# ------------------------------------------------------------------------- limits, in-process

def test_limits_are_enforced_on_a_legitimate_pickle():
    """The same bounds on an ordinary tensor pickle: opcode count, tensor bytes, nesting depth."""
    from zoo.convert.unpickle import Limits, safe_loads
    from zoo.errors import ZooError

    data = pickle.dumps({"w": torch.zeros(1000), "nested": [[[[1]]]]})
    assert safe_loads(data)["w"].shape == (1000,)
    with pytest.raises(ZooError, match="more than 10 pickle opcodes"):
        safe_loads(data, limits=Limits(max_ops=10))
    with pytest.raises(ZooError, match="over the limit of 3,000"):
        safe_loads(data, limits=Limits(max_bytes=3000))
    with pytest.raises(ZooError, match="nested deeper than 4 levels"):
        safe_loads(data, limits=Limits(max_depth=4))


def test_tensor_views_and_shared_storages_still_load():
    """What legitimate files do with storages -- views with offsets and strides, two tensors on one
    storage, zero-size tensors -- is within the checks and round-trips exactly."""
    from zoo.convert.unpickle import safe_loads

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"view": base[1:, ::2], "t": base.t(), "same": base, "empty": base[:0], "half": torch.ones(3).half(),
           "i64": torch.arange(5), "bool": torch.tensor([True, False]), "scalar": torch.tensor(2.5)}
    out = safe_loads(pickle.dumps(obj))
    for k, v in obj.items():
        assert out[k].dtype == v.dtype and torch.equal(out[k], v), k
    assert out["view"].stride() == (6, 2) and out["view"].storage_offset() == 6


# --------------------------------------------------------------- finding 7: torch.load is not the guard

def test_importer_never_calls_torch_load(monkeypatch, tmp_path):
    """Every torch file format imports with ``torch.load`` unavailable: a weights_only bypass alone
    cannot reach the importer (zoo.convert.torchfile reads zip and legacy files itself)."""
    import torch.serialization

    from test_convert import biggan_files, rosinality_file
    from zoo.convert import import_checkpoint

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load was called on an untrusted file")

    monkeypatch.setattr(torch, "load", no_torch_load)
    monkeypatch.setattr(torch.serialization, "load", no_torch_load)
    assert import_checkpoint(rosinality_file(tmp_path, "train")).metadata["source"]["format"] == "rosinality"
    for legacy in (True, False):  # pre-1.6 and zip torch formats
        (tmp_path / str(legacy)).mkdir()
        files = biggan_files(tmp_path / str(legacy), legacy=legacy)
        ck = import_checkpoint(files["G"], g_ema=files["G_ema"], d=files["D"])
        assert ck.metadata["source"]["format"] == "biggan-pytorch"


def test_torch_floor_is_2_10():
    """pyproject's torch floor excludes the releases with published weights_only bypasses (< 2.6, < 2.10)."""
    import re

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    (floor,) = re.findall(r'"torch>=(\d+)\.(\d+)', text)
    assert tuple(map(int, floor)) >= (2, 10)
    installed = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", torch.__version__).groups())
    assert installed >= (2, 10)
