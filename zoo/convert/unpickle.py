"""A pickle reader that never runs code from the file.

NVlabs network pickles are not plain data: ``stylegan2-ada-pytorch`` / ``stylegan3`` pickles rebuild
every network through ``torch_utils.persistence._reconstruct_persistent_obj``, which ``exec``s the
Python source embedded in the file, and TensorFlow StyleGAN2 pickles rebuild
``dnnlib.tflib.network.Network``, whose ``__setstate__`` does the same.  :class:`SafeUnpickler`
resolves only an explicit allow-list of names:

* data constructors: ``collections.OrderedDict``, ``builtins.set``/``frozenset``, numpy arrays,
  dtypes and scalars (no object dtypes), torch tensors and parameters (storages are read with
  ``torch.load(weights_only=True)``);
* the two NVlabs entry points, mapped to stubs that keep the *state* (tensors, constructor
  arguments) as plain Python data -- :class:`PersistentObject` and :class:`TFNetwork`.  The embedded
  source is dropped unread;
* ``dnnlib.util.EasyDict`` (a dict).

Any other global -- ``os.system``, a model class, anything -- raises :class:`~zoo.errors.ZooError`
naming it, before anything is constructed.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError

PICKLE_FORMATS = "a StyleGAN2-ADA/StyleGAN3 network pickle (network-snapshot-*.pkl) or a TensorFlow StyleGAN2 pickle"


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
        return dict(self.state.get("_init_kwargs") or {})

    def tensors(self, prefix: str = "") -> dict:
        """Flat ``{dotted.name: tensor}`` of parameters and buffers, like ``state_dict()``."""
        out = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    out[prefix + name] = value
        for name, child in (self.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise ZooError(f"unexpected sub-module {prefix + name!r} of type {type(child).__name__}")
            out.update(child.tensors(f"{prefix}{name}."))
        return out

    def module(self, path: str) -> "PersistentObject | None":
        obj = self
        for part in filter(None, path.split(".")):
            obj = (obj.state.get("_modules") or {}).get(part)
            if obj is None:
                return None
        return obj


class TFNetwork:
    """Stand-in for ``dnnlib.tflib.network.Network``: keeps the ``__getstate__`` dict (version, name,
    static_kwargs, components, build_func_name, variables) and drops ``build_module_src`` unread."""

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise ZooError("malformed TensorFlow network state in pickle")
        self.version = state.get("version")
        self.name = state.get("name")
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.components = dict(state.get("components") or {})
        self.build_func_name = state.get("build_func_name")
        self.variables = list(state.get("variables") or [])

    def all_variables(self, prefix: str = "") -> dict:
        """``{"mapping/Dense0/weight": ndarray, ...}`` over this network and its components."""
        out = {f"{prefix}{name}": value for name, value in self.variables}
        for name, comp in self.components.items():
            if not isinstance(comp, TFNetwork):
                raise ZooError(f"unexpected component {prefix + name!r} in TensorFlow network")
            out.update(comp.all_variables(f"{prefix}{name}/"))
        return out


def _reconstruct_persistent_obj(meta) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise ZooError("malformed persistent object in NVlabs pickle")
    return PersistentObject(class_name=str(meta.get("class_name")), state=dict(meta["state"]),
                            version=meta.get("version"))


# -------------------------------------------------------------------------------- torch / numpy data

def _load_storage(data: bytes):
    import torch

    if not isinstance(data, (bytes, bytearray)):
        raise ZooError("malformed tensor storage in pickle")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    import torch

    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise ZooError("malformed tensor in pickle")
    t = torch.empty((0,), dtype=storage.dtype)
    t.set_(storage._untyped_storage if isinstance(storage, torch.TypedStorage) else storage,
           storage_offset, tuple(size), tuple(stride))
    return t


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_state):
    return data  # parameters become plain tensors


def _np_reconstruct(subtype, shape, dtype):
    import numpy as np

    if subtype is not np.ndarray:
        raise ZooError(f"refusing numpy array subtype {subtype!r} in pickle")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_scalar(dtype, data=None):
    import numpy as np

    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise ZooError("refusing a non-numeric numpy scalar in pickle")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _np_dtype(*args):
    import numpy as np

    dt = np.dtype(*args)
    if dt.hasobject:
        raise ZooError("refusing an object-dtype numpy array in pickle")
    return dt


def _allowed() -> dict[tuple[str, str], Any]:
    import numpy as np

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _np_dtype,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("dnnlib.tflib.network", "Network"): TFNetwork,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _np_reconstruct
        allowed[(mod, "scalar")] = _np_scalar
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` restricted to the allow-list above; see the module docstring."""

    def __init__(self, file, *, what: str = PICKLE_FORMATS):
        super().__init__(file)
        self._allowed = _allowed()
        self._what = what

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ZooError(
                f"refusing to unpickle {module}.{name}: it is not part of {self._what}, and loading it could run "
                "code from the file"
            ) from None

    def persistent_load(self, pid):
        raise ZooError(f"unexpected persistent id {pid!r}: this is not {self._what}")


def safe_load(path, *, what: str = PICKLE_FORMATS) -> Any:
    """Unpickle ``path`` with :class:`SafeUnpickler`; truncated or corrupt files raise ZooError."""
    with open(path, "rb") as fh:
        try:
            return SafeUnpickler(fh, what=what).load()
        except ZooError as exc:
            raise ZooError(f"{path}: {exc}") from None
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                RuntimeError, MemoryError, OverflowError) as exc:
            raise ZooError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc}); expected {what}") \
                from None
