"""Where a registry URI leads: the scheme -> store table.

    a directory path, or file://PATH     LocalStore  (zoo.registry.local)
    http://...  https://...              HttpStore   (zoo.registry.http)
    hf://org/repo[@revision]             HfStore     (zoo.registry.hf; extra ``hub``)

Each store module is imported only when a URI of its scheme is opened, so ``import zoo.registry`` pulls
in no store and no optional extra.  Stores depend on :mod:`zoo.registry.model` and :mod:`zoo.integrity`
only; neither of those, nor any store, imports this table.  (Named for the schemes: ``zoo.registry.stores``
is the function that lists the stores a load searches.)  An MLflow Model Registry is not a store
(nothing is loaded from it): ``publish`` and ``set_alias`` mirror entries into one through
:mod:`zoo.registry.mlflow_registry`.
"""
from __future__ import annotations

import os
from typing import Callable

from zoo.errors import ZooError
from zoo.registry.model import Store, default_registry_uri


def _local(uri: str) -> Store:
    from zoo.registry.local import LocalStore

    return LocalStore(uri[len("file://"):] if uri.startswith("file://") else uri)


def _http(uri: str) -> Store:
    from zoo.registry.http import HttpStore

    return HttpStore(uri)


def _hf(uri: str) -> Store:
    from zoo.registry.hf import HfStore

    return HfStore.from_uri(uri)


SCHEMES: dict[str, Callable[[str], Store]] = {"file": _local, "http": _http, "https": _http, "hf": _hf}


def open_store(uri: str | os.PathLike | Store | None = None) -> Store:
    """A store from a URI: a directory path or file:// URL, http(s)://..., or hf://org/repo[@revision]
    (``None``: :func:`zoo.registry.model.default_registry_uri`)."""
    if isinstance(uri, Store):
        return uri
    text = default_registry_uri() if uri is None else os.fspath(uri)
    scheme, sep, _ = text.partition("://")
    if not sep:
        return _local(text)
    if scheme not in SCHEMES:
        raise ZooError(f"unsupported registry URI {text!r}: use a directory, file://, http(s):// or hf://org/repo")
    return SCHEMES[scheme](text)
