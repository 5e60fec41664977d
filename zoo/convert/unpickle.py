"""A pickle reader that never runs code from the file, and never allocates more than the file holds.

NVlabs network pickles are not plain data: ``stylegan2-ada-pytorch`` / ``stylegan3`` pickles rebuild
every network through ``torch_utils.persistence._reconstruct_persistent_obj``, which ``exec``s the
Python source embedded in the file, and TensorFlow StyleGAN2 pickles rebuild
``dnnlib.tflib.network.Network``, whose ``__setstate__`` does the same.  torch checkpoints
(rosinality, BigGAN-PyTorch) are pickles too.  :class:`SafeUnpickler` is the one reader for all of
them.  It is built on Python's pure-Python unpickler so that *every* opcode goes through code here:

* **Names.**  ``GLOBAL``/``STACK_GLOBAL`` resolve only an explicit allow-list; what they return are
  validating wrappers written here (``_rebuild_tensor_v2``, ``_np_dtype``, ...) or the stub classes
  :class:`EasyDict`, :class:`TFNetwork` and ``argparse.Namespace`` -- never the real torch/numpy
  functions.  Anything else (``os.system``, ``builtins.eval``, a model class) is a
  :class:`~zoo.errors.ZooError` naming it, before anything is called.
* **Calls.**  ``REDUCE`` calls only an allow-listed wrapper, ``NEWOBJ`` instantiates only the stub
  classes; ``INST``/``OBJ``/``EXT*`` and out-of-band buffers are refused.
* **State.**  ``BUILD`` (``__setstate__`` / ``setattr``) is applied only to *instances* of a few data
  types (numpy arrays and dtypes, the stubs, ``OrderedDict``, ``Namespace``), with validated state.
  A pickle cannot ``BUILD`` a function, class or module from the allow-list -- otherwise it could
  rewrite e.g. ``_rebuild_tensor_v2.__defaults__`` for the rest of the process.  ``APPEND`` /
  ``SETITEM`` / ``ADDITEMS`` only touch real lists, dicts and sets.
* **Sizes.**  Every length field is checked against the bytes left in the file before it is read
  (a pickle that claims an 8 GB string is an error, not an 8 GB allocation).  A tensor's storage is
  allocated only when its bytes are really in the file, every tensor's size/stride/offset must fit
  inside its storage and may not have more elements than the storage (no stride-0 amplification),
  and stored and logical tensor/array bytes are counted against :attr:`Limits.max_bytes`.  Numpy
  arrays and dtypes must be plain numeric (no object dtypes).
* **Shape of the data.**  Opcodes are counted (:attr:`Limits.max_ops`), dict keys and set items
  must be flat hashables (a deep tuple key would recurse in C while hashing), and the finished
  object graph is checked without recursion: no cycles, at most :attr:`Limits.max_depth` levels and
  at most :attr:`Limits.max_nodes` nodes when shared references are unfolded, so the converters'
  tree walks are bounded too.

Every failure -- refusal, truncation, corruption, and also ``RecursionError``/``MemoryError`` should
one happen anyway -- surfaces as a ZooError with the file name.

torch's own storages never come from ``torch.load``: :func:`read_legacy` parses torch's pre-1.6
container format (what ``pickle`` embeds for every tensor through ``torch.storage._load_from_bytes``,
and what BigGAN-PyTorch's released weights use), and ``zoo.convert.torchfile`` the zip format, both
with this unpickler.  ``torch.load(weights_only=True)`` has had published bypasses; it is not used.
"""
from __future__ import annotations

import argparse
import collections
import io
import math
import os
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from zoo.errors import ZooError

PICKLE_FORMATS = "a StyleGAN2-ADA/StyleGAN3 network pickle (network-snapshot-*.pkl) or a TensorFlow StyleGAN2 pickle"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one file may make the reader do.  The defaults leave room for the largest
    official files (a 1024 px rosinality ``train.py`` checkpoint with optimiser state is ~1 GB;
    NVlabs config-F pickles ~0.4 GB, of the order of 100k opcodes, ~20 levels deep) while capping
    what a small hostile file can cost: each opcode can keep ~100 bytes of Python objects alive."""

    max_bytes: int = 4 << 30        # tensor/array bytes, allocated and logical (each counted separately)
    max_ops: int = 1_000_000        # pickle opcodes per file, nested storage containers included
    max_depth: int = 100            # nesting levels of the finished object graph
    max_nodes: int = 20_000_000     # nodes of the object graph with shared references unfolded
    max_line: int = 1 << 16         # text opcodes (GLOBAL names, protocol-0 numbers)
    max_dims: int = 32              # tensor/array dimensions


DEFAULT_LIMITS = Limits()


class Budget:
    """Running totals for one file, shared by the nested storage containers it embeds."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.ops = 0
        self.stored = 0    # bytes allocated for storages / array data
        self.logical = 0   # bytes the tensors/arrays would occupy if materialised

    def op(self) -> None:
        self.ops += 1
        if self.ops > self.limits.max_ops:
            raise ZooError(f"refusing: more than {self.limits.max_ops:,} pickle opcodes")

    def store(self, nbytes: int, what: str) -> None:
        self.stored += nbytes
        if self.stored > self.limits.max_bytes:
            raise ZooError(f"refusing: {what} would bring the data allocated for this file to {self.stored:,} "
                           f"bytes, over the limit of {self.limits.max_bytes:,}")

    def view(self, nbytes: int, what: str) -> None:
        self.logical += nbytes
        if self.logical > self.limits.max_bytes:
            raise ZooError(f"refusing: {what} would bring the tensor bytes in this file to {self.logical:,}, over "
                           f"the limit of {self.limits.max_bytes:,}")


# ------------------------------------------------------------------------------------------ stubs

class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setstate__(self, state) -> None:  # EasyDict pickles carry an (empty) instance __dict__
        pass


@dataclass
class PersistentObject:
    """What ``torch_utils.persistence._reconstruct_persistent_obj`` would have rebuilt, as data.

    ``state`` is the module's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` (children,
    themselves PersistentObjects), ``_init_args``, ``_init_kwargs`` and plain attributes.
    """

    class_name: str
    state: dict = field(repr=False)
    version: Any = None

    @property
    def init_kwargs(self) -> dict:
        kwargs = self.state.get("_init_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ZooError(f"{self.class_name}: _init_kwargs is a {type(kwargs).__name__}, not a dict")
        return dict(kwargs)

    def tensors(self, prefix: str = "") -> dict:
        """Flat ``{dotted.name: tensor}`` of parameters and buffers, like ``state_dict()``."""
        out = {}
        for group in ("_parameters", "_buffers"):
            values = self.state.get(group) or {}
            if not isinstance(values, dict):
                raise ZooError(f"{prefix or self.class_name}: {group} is a {type(values).__name__}, not a dict")
            for name, value in values.items():
                if value is not None:
                    out[f"{prefix}{name}"] = value
        for name, child in _modules_of(self, prefix).items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise ZooError(f"unexpected sub-module {prefix}{name} of type {type(child).__name__}")
            out.update(child.tensors(f"{prefix}{name}."))
        return out

    def module(self, path: str) -> "PersistentObject | None":
        obj = self
        for part in filter(None, path.split(".")):
            obj = _modules_of(obj, path).get(part)
            if not isinstance(obj, PersistentObject):
                return None
        return obj


def _modules_of(obj: PersistentObject, where: str) -> dict:
    modules = obj.state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise ZooError(f"{where or obj.class_name}: _modules is a {type(modules).__name__}, not a dict")
    return modules


class TFNetwork:
    """Stand-in for ``dnnlib.tflib.network.Network``: keeps the ``__getstate__`` dict (version, name,
    static_kwargs, components, build_func_name, variables) and drops ``build_module_src`` unread."""

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise ZooError("malformed TensorFlow network state in pickle")
        try:
            self.version = state.get("version")
            self.name = state.get("name")
            self.static_kwargs = dict(state.get("static_kwargs") or {})
            self.components = dict(state.get("components") or {})
            self.build_func_name = state.get("build_func_name")
            self.variables = list(state.get("variables") or [])
        except (TypeError, ValueError):
            raise ZooError("malformed TensorFlow network state in pickle") from None

    def all_variables(self, prefix: str = "") -> dict:
        """``{"mapping/Dense0/weight": ndarray, ...}`` over this network and its components."""
        out = {}
        for item in getattr(self, "variables", []):
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
                raise ZooError(f"malformed variable list in TensorFlow network {prefix or '(top)'}")
            out[f"{prefix}{item[0]}"] = item[1]
        for name, comp in getattr(self, "components", {}).items():
            if not isinstance(comp, TFNetwork):
                raise ZooError(f"unexpected component {prefix}{name} in TensorFlow network")
            out.update(comp.all_variables(f"{prefix}{name}/"))
        return out


def _reconstruct_persistent_obj(meta) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict) \
            or not isinstance(meta.get("class_name"), str):
        raise ZooError("malformed persistent object in NVlabs pickle")
    return PersistentObject(class_name=meta["class_name"], state=dict(meta["state"]), version=meta.get("version"))


def _name(text: Any) -> str:
    text = str(text) if isinstance(text, str) else _short(text)
    return text if len(text) <= 100 else text[:97] + "..."


def _short(obj: Any) -> str:
    """A bounded description for error messages (``repr`` of attacker data could be huge or deep)."""
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        text = repr(obj)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(obj).__name__}"


# ------------------------------------------------------------------------------- bounded file reader

class _Reader:
    """File-like view that knows how many bytes are left: a length field that claims more than that
    is an error *before* any buffer is allocated for it."""

    def __init__(self, fh, size: int, limits: Limits):
        self._fh = fh
        self._left = size
        self._max_line = limits.max_line

    @property
    def left(self) -> int:
        return self._left

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        if n > self._left:
            raise ZooError(f"truncated or corrupt pickle: a length field asks for {n:,} bytes, only {self._left:,} "
                           "are left in the file")
        data = self._fh.read(n)
        if len(data) != n:
            raise ZooError("truncated or corrupt pickle: the file ended early")
        self._left -= n
        return data

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = len(view)
        if n > self._left:
            raise ZooError(f"truncated or corrupt file: {n:,} bytes expected, only {self._left:,} left")
        got = 0
        while got < n:
            k = self._fh.readinto(view[got:])
            if not k:
                raise ZooError("truncated or corrupt file: it ended early")
            got += k
        self._left -= n
        return n

    def readline(self) -> bytes:
        line = self._fh.readline(min(self._max_line, self._left))
        self._left -= len(line)
        if not line.endswith(b"\n"):
            if len(line) >= self._max_line:
                raise ZooError(f"refusing: a text opcode longer than {self._max_line:,} bytes")
            raise ZooError("truncated or corrupt pickle: the file ended inside a text opcode")
        return line


# --------------------------------------------------------------------------- tensors, storages, numpy

class Storage:
    """A tensor storage read from the file: ``data`` is a fresh uint8 tensor of exactly ``numel *
    itemsize`` bytes whose contents really are in the file (allocated only after checking that)."""

    __slots__ = ("dtype", "numel", "data", "filled")

    def __init__(self, dtype, numel: int, data):
        self.dtype = dtype
        self.numel = numel
        self.data = data
        self.filled = False


class _StorageType:
    """What ``torch.FloatStorage`` & co. resolve to: a dtype token, only usable in a storage id."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype):
        self.name = name
        self.dtype = dtype


def _storage_types() -> dict[tuple[str, str], _StorageType]:
    import torch

    names = {"DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
             "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
             "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
             "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64,
             "ComplexDoubleStorage": torch.complex128}
    out = {("torch", n): _StorageType(n, dt) for n, dt in names.items()}
    for mod in ("torch", "torch.storage"):
        out[(mod, "UntypedStorage")] = _StorageType("UntypedStorage", torch.uint8)
    return out


def _itemsize(dtype) -> int:
    return dtype.itemsize


def _int(value, what: str) -> int:
    if type(value) is not int:  # bool, float, numpy ints... are not tensor geometry
        raise ZooError(f"malformed tensor in pickle: {what} is {_short(value)}, not an int")
    return value


def _shape(value, what: str, limits: Limits) -> tuple[int, ...]:
    if type(value) not in (tuple, list) or len(value) > limits.max_dims:
        raise ZooError(f"malformed tensor in pickle: {what} is {_short(value)}")
    out = tuple(_int(v, what) for v in value)
    if any(v < 0 for v in out):
        raise ZooError(f"malformed tensor in pickle: negative {what} {list(out)}")
    return out


def check_tensor_geometry(storage_numel: int, offset: int, size: tuple, stride: tuple) -> int:
    """Elements of a tensor (``size``, ``stride``, ``offset`` in elements) after checking it lies
    inside a storage of ``storage_numel`` elements and does not have more elements than it."""
    if len(size) != len(stride):
        raise ZooError(f"malformed tensor in pickle: size {list(size)} and stride {list(stride)} differ in length")
    numel = math.prod(size)
    if numel == 0:
        if offset > storage_numel:
            raise ZooError(f"malformed tensor in pickle: offset {offset} is past its storage of {storage_numel} "
                           "elements")
        return 0
    end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if end > storage_numel:
        raise ZooError(f"refusing a tensor of size {list(size)}, stride {list(stride)}, offset {offset}: it reaches "
                       f"element {end:,} of a storage that holds {storage_numel:,}")
    if numel > storage_numel:
        # only overlapping strides (e.g. stride 0) can do this: a few stored bytes would become
        # arbitrarily many once the tensor is copied
        raise ZooError(f"refusing a tensor of size {list(size)} ({numel:,} elements) over a storage of "
                       f"{storage_numel:,} elements (overlapping strides)")
    return numel


class _TensorRebuilder:
    """The ``torch._utils._rebuild_*`` entry points, checking each tensor against its storage."""

    def __init__(self, budget: Budget):
        self.budget = budget

    def tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                  metadata=None, *extra):
        import torch

        if not isinstance(storage, Storage):
            raise ZooError(f"malformed tensor in pickle: its storage is {_short(storage)}")
        limits = self.budget.limits
        offset = _int(storage_offset, "storage offset")
        size = _shape(size, "size", limits)
        stride = _shape(stride, "stride", limits)
        if offset < 0:
            raise ZooError(f"malformed tensor in pickle: negative storage offset {offset}")
        if backward_hooks:  # weights_only refuses these too: they would be callables
            raise ZooError("refusing a tensor with backward hooks in pickle")
        numel = check_tensor_geometry(storage.numel, offset, size, stride)
        self.budget.view(numel * _itemsize(storage.dtype), f"a tensor of size {list(size)}")
        t = torch.empty((0,), dtype=storage.dtype)
        # bounds were checked above, so set_ never has to grow (allocate) the storage
        t.set_(storage.data.untyped_storage(), offset, size, stride)
        return t

    def tensor_v1(self, storage, storage_offset, size, stride):
        return self.tensor_v2(storage, storage_offset, size, stride)

    @staticmethod
    def parameter(data, requires_grad=False, backward_hooks=None, *state):
        import torch

        if not isinstance(data, torch.Tensor):
            raise ZooError(f"malformed parameter in pickle: {_short(data)}")
        if backward_hooks:
            raise ZooError("refusing a parameter with backward hooks in pickle")
        return data  # parameters become plain tensors


def _numeric_dtype(dt) -> None:
    import numpy as np

    if not isinstance(dt, np.dtype) or dt.hasobject or dt.kind not in "biufc" or dt.fields is not None \
            or dt.subdtype is not None:
        what = _short(str(dt)) if isinstance(dt, np.dtype) else _short(dt)
        raise ZooError(f"refusing a non-numeric numpy dtype in pickle ({what}); object, structured and string dtypes "
                       "are not weights")


def _np_dtype(spec, align=False, copy=False):
    import numpy as np

    if type(spec) is not str or len(spec) > 8:
        raise ZooError(f"refusing numpy dtype {_short(spec)} in pickle")
    dt = np.dtype(spec)
    _numeric_dtype(dt)
    # always a copy (numpy's own pickles ask for one): BUILD then sets the state of this object, never
    # of numpy's process-wide dtype singletons, whatever the file's 'copy' argument says
    return np.dtype(spec, bool(align), True)


def _np_dtype_setstate(dt, state) -> None:
    # numpy pickles a plain numeric dtype as (3, byteorder, None, None, None, -1, -1, flags); anything
    # else (fields, subarrays, item sizes, the HASOBJECT flag) is how a structured/object dtype would
    # be smuggled in after _np_dtype checked the type code
    if not (type(state) is tuple and len(state) in (8, 9) and state[0] in (3, 4) and state[1] in ("<", ">", "|", "=")
            and state[2:5] == (None, None, None) and state[5:7] == (-1, -1)):
        raise ZooError("refusing a numpy dtype state that is not a plain numeric type")
    flags = state[7]
    if type(flags) is not int or flags != dt.flags:
        raise ZooError("refusing a numpy dtype state that changes the dtype's flags")
    dt.__setstate__(state)
    _numeric_dtype(dt)


def _np_reconstruct(subtype, shape, dtype):
    import numpy as np

    if subtype is not np.ndarray:
        raise ZooError(f"refusing numpy array subtype {_short(subtype)} in pickle")
    # numpy pickles every array as _reconstruct(ndarray, (0,), b'b') followed by BUILD with the data;
    # anything else would allocate (or pick a dtype) before the data is checked
    if type(shape) not in (tuple, list) or list(shape) != [0] or dtype not in (b"b", "b"):
        raise ZooError("refusing a numpy array constructor that is not numpy's own (shape (0,), dtype 'b')")
    return np.ndarray.__new__(np.ndarray, (0,), np.int8)


def _np_array_setstate(arr, state, budget: Budget) -> None:
    import numpy as np

    if not (type(state) is tuple and len(state) == 5):
        raise ZooError("malformed numpy array state in pickle")
    version, shape, dt, fortran, raw = state
    _numeric_dtype(dt)
    shape = _shape(shape, "array shape", budget.limits)
    if type(version) is not int or type(fortran) is not bool or type(raw) not in (bytes, bytearray):
        raise ZooError("refusing a numpy array whose data is not raw bytes (object arrays are not weights)")
    nbytes = math.prod(shape) * dt.itemsize
    if len(raw) != nbytes:
        raise ZooError(f"malformed numpy array in pickle: shape {list(shape)} of {dt} needs {nbytes:,} bytes, the "
                       f"pickle has {len(raw):,}")
    budget.store(nbytes, f"a numpy array of shape {list(shape)}")
    budget.view(nbytes, f"a numpy array of shape {list(shape)}")
    arr.__setstate__((version, shape, dt, fortran, raw))


def _np_scalar(dtype, data=None):
    import numpy as np

    _numeric_dtype(dtype)
    if type(data) not in (bytes, bytearray) or len(data) != dtype.itemsize:
        raise ZooError("refusing a non-numeric numpy scalar in pickle")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


# ----------------------------------------------------------------------------------- the allow-list

_FLAT = frozenset({str, bytes, int, float, complex, bool, type(None)})


def _flat(key, depth: int = 0) -> bool:
    """Dict keys and set items must be scalars or shallow tuples of them: hashing a deeply nested
    tuple recurses in C without a depth check (a crash, not an exception)."""
    if type(key) in _FLAT:
        return True
    return type(key) is tuple and depth < 4 and len(key) <= 64 and all(_flat(k, depth + 1) for k in key)


def _check_keys(keys, what: str) -> None:
    for k in keys:
        if not _flat(k):
            raise ZooError(f"refusing {_short(k)} as a {what} in pickle: only strings, numbers and flat tuples")


def _ordered_dict(*args):
    if args not in ((), ([],)):  # OrderedDict.__reduce__ passes no items; they follow as SETITEMS
        raise ZooError("refusing OrderedDict(...) with arguments in pickle")
    return collections.OrderedDict()


def _set(items=()):
    items = list(items) if type(items) in (list, tuple) else None
    if items is None:
        raise ZooError("refusing set(...) of a non-list in pickle")
    _check_keys(items, "set item")
    return set(items)


def _frozenset(items=()):
    return frozenset(_set(items))


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # protocol-2 pickles (torch's legacy format) write bytes as _codecs.encode(str, 'latin1')
    if type(text) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise ZooError("refusing _codecs.encode(...) other than latin-1 bytes in pickle")
    return text.encode("latin1")


def _numpy_names() -> dict:
    import numpy as np

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _np_dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _np_reconstruct
        allowed[(mod, "scalar")] = _np_scalar
    return allowed


def nvlabs_names(budget: Budget) -> dict[tuple[str, str], Any]:
    """What NVlabs pickles (stylegan2-ada/stylegan3 and TensorFlow) may name."""
    rebuild = _TensorRebuilder(budget)
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _ordered_dict,
        ("builtins", "set"): _set,
        ("builtins", "frozenset"): _frozenset,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild.tensor_v2,
        ("torch._utils", "_rebuild_parameter"): rebuild.parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild.parameter,
        ("torch.storage", "_load_from_bytes"): lambda data: _load_from_bytes(data, budget),
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("dnnlib.tflib.network", "Network"): TFNetwork,
    }
    allowed.update(_numpy_names())
    return allowed


def torch_names(budget: Budget) -> dict[tuple[str, str], Any]:
    """What a ``torch.save`` checkpoint of tensors and plain data may name (about what
    ``weights_only=True`` allows, plus ``argparse.Namespace`` for rosinality's ``args``)."""
    rebuild = _TensorRebuilder(budget)
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _ordered_dict,
        ("builtins", "set"): _set,
        ("builtins", "frozenset"): _frozenset,
        ("_codecs", "encode"): _codecs_encode,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild.tensor_v2,
        ("torch._utils", "_rebuild_tensor"): rebuild.tensor_v1,
        ("torch._utils", "_rebuild_parameter"): rebuild.parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): rebuild.parameter,
        ("argparse", "Namespace"): argparse.Namespace,
    }
    allowed.update(_storage_types())
    allowed.update(_numpy_names())
    return allowed


# The classes a pickle may instantiate (NEWOBJ, no arguments) and the instance types BUILD may set
# state on.  Exact types: a class object is never an instance of these, so BUILD can never reach a
# function, class or module from the allow-list.
_NEWOBJ_CLASSES = (EasyDict, TFNetwork, argparse.Namespace)
_OWN_SETSTATE = (EasyDict, TFNetwork)
_DICT_STATE = (collections.OrderedDict, argparse.Namespace)
_DICTS = (dict, collections.OrderedDict, EasyDict)


# ---------------------------------------------------------------------------------- the unpickler

class _Dispatch(dict):
    def __missing__(self, code: int):
        name = _OPNAMES.get(code)
        raise ZooError(f"refusing pickle opcode {name or hex(code)}: not used by tensors and plain data"
                       if name else f"truncated or corrupt pickle (unknown opcode {hex(code)})")


_OPNAMES: dict[int, str] = {}


def _opcodes():
    import pickletools

    for op in pickletools.opcodes:
        _OPNAMES[op.code.encode("latin1")[0]] = op.name
    return {op.name: op.code.encode("latin1")[0] for op in pickletools.opcodes}


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: every opcode is ours to check
    """Restricted, bounded unpickler; see the module docstring.

    ``allowed`` maps ``(module, name)`` to what a GLOBAL resolves to (default: the NVlabs list);
    ``persistent_load`` handles persistent ids (torch storages), default: refuse them.
    """

    def __init__(self, file, *, what: str = PICKLE_FORMATS, allowed: Optional[dict] = None,
                 persistent_load: Optional[Callable] = None, budget: Optional[Budget] = None,
                 size: Optional[int] = None, encoding: str = "ASCII"):
        self.budget = budget or Budget(DEFAULT_LIMITS)
        if size is None:
            pos = file.tell()
            size = file.seek(0, os.SEEK_END) - pos
            file.seek(pos)
        super().__init__(_Reader(file, size, self.budget.limits), encoding=encoding)
        self._allowed = nvlabs_names(self.budget) if allowed is None else allowed
        self._callable_ids = {id(v) for v in self._allowed.values()
                              if callable(v) and not isinstance(v, type)}
        self._what = what
        self._persistent = persistent_load

    # -- names
    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise ZooError(f"refusing to unpickle {_name(module)}.{_name(name)}: it is not part of {self._what}, and "
                           "loading it could run code from the file") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise ZooError(f"unexpected persistent id ({_short(pid)}): this is not {self._what}")
        return self._persistent(pid)

    # -- guarded opcodes
    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in self._callable_ids:
            raise ZooError(f"refusing to call {_short(func)} while unpickling: only allow-listed constructors")
        if type(args) is not tuple:
            raise ZooError("malformed REDUCE in pickle")
        self.stack[-1] = func(*args)

    def _load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        if not any(cls is c for c in _NEWOBJ_CLASSES) or type(args) is not tuple or args:
            raise ZooError(f"refusing to instantiate {_short(cls)} while unpickling")
        self.stack.append(cls.__new__(cls))

    def _load_newobj_ex(self):
        kwargs = self.stack.pop()
        if type(kwargs) is not dict or kwargs:
            raise ZooError("refusing NEWOBJ_EX with keyword arguments in pickle")
        self._load_newobj()

    def _load_build(self):
        import numpy as np

        state = self.stack.pop()
        inst = self.stack[-1]
        t = type(inst)
        if t is np.ndarray:
            _np_array_setstate(inst, state, self.budget)
        elif isinstance(inst, np.dtype):
            _np_dtype_setstate(inst, state)
        elif t in _OWN_SETSTATE:
            inst.__setstate__(state)
        elif t in _DICT_STATE:
            if type(state) is tuple and len(state) == 2 and state[1] is None:
                state = state[0]
            if state is None:
                return
            if type(state) is not dict or not all(type(k) is str and not k.startswith("__") for k in state):
                raise ZooError(f"refusing to set the state of {t.__name__} to {_short(state)} in pickle")
            inst.__dict__.update(state)
        else:
            # functions, classes, modules, tensors...: setting their state would let the file patch
            # code (e.g. __defaults__ of an allow-listed function) for the rest of the process
            raise ZooError(f"refusing to set the state of {_short(inst)} while unpickling")

    def _load_append(self):
        value = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not list:
            raise ZooError(f"refusing to append to {_short(target)} in pickle")
        target.append(value)

    def _load_appends(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not list:
            raise ZooError(f"refusing to append to {_short(target)} in pickle")
        target.extend(items)

    def _setitems(self, items: list):
        target = self.stack[-1]
        if type(target) not in _DICTS:
            raise ZooError(f"refusing to set items of {_short(target)} in pickle")
        keys = items[0::2]
        _check_keys(keys, "dict key")
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    def _load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._setitems([key, value])

    def _load_setitems(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise ZooError("truncated or corrupt pickle (odd SETITEMS)")
        self._setitems(items)

    def _load_dict(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise ZooError("truncated or corrupt pickle (odd DICT)")
        _check_keys(items[0::2], "dict key")
        self.stack.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def _load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise ZooError(f"refusing to add items to {_short(target)} in pickle")
        _check_keys(items, "set item")
        target.update(items)

    def _load_frozenset(self):
        items = self.pop_mark()
        _check_keys(items, "set item")
        self.stack.append(frozenset(items))

    def load(self):
        obj = super().load()
        check_graph(obj, self.budget.limits)
        return obj


def _build_dispatch() -> _Dispatch:
    codes = _opcodes()
    base = pickle._Unpickler.dispatch
    plain = ["PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE", "INT",
             "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING",
             "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "BINUNICODE",
             "SHORT_BINUNICODE", "BINUNICODE8", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST",
             "LIST", "EMPTY_DICT", "EMPTY_SET", "GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT", "LONG_BINPUT",
             "MEMOIZE", "GLOBAL", "STACK_GLOBAL", "PERSID", "BINPERSID"]
    ours = {"REDUCE": SafeUnpickler._load_reduce, "NEWOBJ": SafeUnpickler._load_newobj,
            "NEWOBJ_EX": SafeUnpickler._load_newobj_ex, "BUILD": SafeUnpickler._load_build,
            "APPEND": SafeUnpickler._load_append, "APPENDS": SafeUnpickler._load_appends,
            "SETITEM": SafeUnpickler._load_setitem, "SETITEMS": SafeUnpickler._load_setitems,
            "DICT": SafeUnpickler._load_dict, "ADDITEMS": SafeUnpickler._load_additems,
            "FROZENSET": SafeUnpickler._load_frozenset}
    # not listed, so refused: INST, OBJ (protocol-0/1 instantiation), EXT1/2/4 (copyreg registry),
    # BYTEARRAY8 (allocates its declared length before reading), NEXT_BUFFER, READONLY_BUFFER

    def counted(fn):
        def op(self):
            self.budget.op()
            fn(self)
        return op

    table = _Dispatch()
    for name in plain:
        table[codes[name]] = counted(base[codes[name]])
    for name, fn in ours.items():
        table[codes[name]] = counted(fn)
    return table


SafeUnpickler.dispatch = _build_dispatch()


# ------------------------------------------------------------------------------- the finished graph

def _children(obj) -> tuple:
    import numpy as np
    import torch

    t = type(obj)
    if t in _FLAT or isinstance(obj, (torch.Tensor, np.ndarray, np.generic, np.dtype, Storage)):
        return ()
    if t in (list, tuple, set, frozenset):
        return tuple(obj)
    if isinstance(obj, dict):
        extra = tuple(vars(obj).values()) if t is not dict else ()
        return tuple(obj.keys()) + tuple(obj.values()) + extra
    if t is PersistentObject:
        return obj.class_name, obj.state, obj.version
    if t in (TFNetwork, argparse.Namespace):
        return tuple(vars(obj).values())
    raise ZooError(f"unexpected {t.__name__} in the unpickled data")


def check_graph(root, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse cyclic object graphs, graphs nested deeper than ``limits.max_depth`` and graphs with
    more than ``limits.max_nodes`` nodes once shared references are unfolded (what a recursive walk
    of the result would visit).  Iterative: a hostile graph cannot exhaust the Python stack here."""
    height: dict[int, int] = {}   # id -> levels below (finished nodes)
    count: dict[int, int] = {}    # id -> nodes in the unfolded subtree
    on_path: set[int] = set()
    stack = [(root, None)]
    while stack:
        obj, kids = stack.pop()
        key = id(obj)
        if kids is None:
            if key in height:
                continue
            if key in on_path:
                raise ZooError("refusing a cyclic object graph (an object that contains itself)")
            kids = _children(obj)
            if not kids:
                height[key], count[key] = 0, 1
                continue
            on_path.add(key)
            if len(on_path) > limits.max_depth:
                raise ZooError(f"refusing data nested deeper than {limits.max_depth} levels")
            stack.append((obj, kids))
            for kid in kids:
                if id(kid) in on_path:
                    raise ZooError("refusing a cyclic object graph (an object that contains itself)")
                if id(kid) not in height:
                    stack.append((kid, None))
            continue
        on_path.discard(key)
        height[key] = 1 + max(height[id(k)] for k in kids)
        count[key] = min(1 + sum(count[id(k)] for k in kids), limits.max_nodes + 1)
        if height[key] > limits.max_depth:
            raise ZooError(f"refusing data nested deeper than {limits.max_depth} levels")
        if count[key] > limits.max_nodes:
            raise ZooError(f"refusing data whose shared references unfold to more than {limits.max_nodes:,} objects")


# ----------------------------------------------------------------------- torch's legacy container

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _storage_id(pid) -> tuple:
    """Validate a persistent id ``('storage', storage_type, key, location, numel[, view])``."""
    if type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage":
        if type(pid) is tuple and pid and pid[0] == "module":
            raise ZooError("refusing a pickled nn.Module (with its source): the checkpoint must hold tensors only")
        raise ZooError(f"unexpected persistent id ({_short(pid)}) in torch data")
    stype, key, location, numel = pid[1:5]
    if not isinstance(stype, _StorageType) or type(key) is not str or type(location) is not str:
        raise ZooError("malformed storage id in torch data")
    if len(pid) == 6 and pid[5] is not None:
        raise ZooError("storage views (torch < 1.0 files) are not supported")
    numel = _int(numel, "storage size")
    if numel < 0:
        raise ZooError("malformed storage id in torch data (negative size)")
    return stype.dtype, key, numel


def storage_once(storages: dict, pid, create) -> "Storage":
    """The storage a persistent id names: the one already built for its key (which must agree in type and
    size), else ``create(dtype, key, numel)``, remembered under the key."""
    dtype, key, numel = _storage_id(pid)
    if key in storages:
        st = storages[key]
        if st.dtype != dtype or st.numel != numel:
            raise ZooError(f"storage {_short(key)} is declared twice with different types or sizes")
        return st
    storages[key] = create(dtype, key, numel)
    return storages[key]


def read_legacy(fh, size: int, budget: Budget, allowed: dict, what: str) -> Any:
    """Parse torch's pre-1.6 ``torch.save`` container from ``fh`` (``size`` bytes from its current
    position): magic number, protocol, sys info, the object pickle (storages as persistent ids), the
    list of storage keys, then each storage's raw bytes.  A storage is allocated only after checking
    that its bytes fit in what is left of the file."""
    import torch

    end = fh.tell() + size

    def plain():  # the small header pickles: plain data, no names at all
        return SafeUnpickler(fh, what=what, allowed={}, budget=budget, size=end - fh.tell(), encoding="utf-8").load()

    if plain() != _LEGACY_MAGIC:
        raise ZooError("not a torch checkpoint (bad magic number)")
    if plain() != _LEGACY_PROTOCOL:
        raise ZooError("unsupported torch legacy protocol version")
    sys_info = plain()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ZooError("refusing a big-endian torch checkpoint (not supported)")
    storages: dict[str, Storage] = {}
    declared = [0]

    def new_storage(dtype, key, numel):
        nbytes = numel * _itemsize(dtype)
        # its bytes (after an 8-byte size header) must follow the object pickle in this file
        declared[0] += nbytes + 8
        left = end - fh.tell()
        if declared[0] > left:
            raise ZooError(f"truncated or corrupt torch data: storages of {declared[0]:,} bytes declared, only "
                           f"{left:,} bytes left in the file")
        budget.store(nbytes, f"a storage of {nbytes:,} bytes")
        return Storage(dtype, numel, torch.empty((nbytes,), dtype=torch.uint8))

    def persistent(pid):
        return storage_once(storages, pid, new_storage)

    obj = SafeUnpickler(fh, what=what, allowed=allowed, persistent_load=persistent, budget=budget,
                        size=end - fh.tell(), encoding="utf-8").load()
    keys = plain()
    if type(keys) is not list or any(type(k) is not str for k in keys):
        raise ZooError("malformed storage list in torch data")
    reader = _Reader(fh, end - fh.tell(), budget.limits)
    for key in keys:
        st = storages.get(key)
        if st is None or st.filled:
            raise ZooError(f"malformed torch data: storage {_short(key)} is unknown or listed twice")
        (numel,) = struct.unpack("<q", reader.read(8))
        if numel != st.numel:
            raise ZooError(f"malformed torch data: storage {_short(key)} has {numel} elements, {st.numel} were "
                           "declared")
        reader.readinto(st.data.numpy())
        st.filled = True
    missing = [k for k, st in storages.items() if not st.filled]
    if missing:
        raise ZooError(f"truncated or corrupt torch data: no bytes for storage(s) {[_short(k) for k in missing[:3]]}")
    return obj


def _load_from_bytes(data, budget: Budget) -> Storage:
    """``torch.storage._load_from_bytes``: one storage in torch's legacy container, parsed here."""
    if type(data) not in (bytes, bytearray):
        raise ZooError("malformed tensor storage in pickle")
    storage = read_legacy(io.BytesIO(data), len(data), budget, _storage_types(), "a tensor storage")
    if not isinstance(storage, Storage):
        raise ZooError("malformed tensor storage in pickle")
    return storage


# --------------------------------------------------------------------------------------- entry points

def guarded(path, what: str, fn: Callable[[], Any]) -> Any:
    """Run a reader; every failure becomes a ZooError naming ``path`` (never a traceback)."""
    try:
        return fn()
    except ZooError as exc:
        raise ZooError(f"{path}: {exc}") from None
    except (RecursionError, MemoryError) as exc:
        raise ZooError(f"{path}: refusing: reading it raised {type(exc).__name__} (data too deep or too large); "
                       f"expected {what}") from None
    except Exception as exc:  # the input is untrusted: any parse failure means a corrupt file
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ZooError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {first}); expected {what}") \
            from None


def safe_load(path, *, what: str = PICKLE_FORMATS, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Unpickle an NVlabs pickle at ``path`` with :class:`SafeUnpickler`; any failure is a ZooError."""
    def run():
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            budget = Budget(limits)
            return SafeUnpickler(fh, what=what, allowed=nvlabs_names(budget), budget=budget, size=size).load()

    return guarded(path, what, run)


def safe_loads(data: bytes, *, what: str = PICKLE_FORMATS, limits: Limits = DEFAULT_LIMITS) -> Any:
    """:func:`safe_load` for bytes in memory."""
    def run():
        budget = Budget(limits)
        return SafeUnpickler(io.BytesIO(data), what=what, allowed=nvlabs_names(budget), budget=budget,
                             size=len(data)).load()

    return guarded("<bytes>", what, run)
