"""Mirror registry entries into an MLflow Model Registry (optional extra ``dglgan-zoo[mlflow]``).

One MLflow registered model per (name, width): ``<name>-ch<ch_mul with / -> _>``, e.g.
``stylegan2-emoji-ch1_2``, because versions are numbered per width.  Each published zoo version
becomes an MLflow model version whose ``source`` is the entry's location (a plain artifact directory,
no MLmodel file, no pickle), linked to the training run when the checkpoint's metadata names an
``mlflow_run_id`` that exists on that tracking server, and tagged with ``zoo_version``, ``ch_mul``,
``generator_sha256``, ``params_G``.  Aliases set with ``zoo alias`` are mirrored (``latest`` is
reserved by MLflow and is not mirrored; it is implicit in both registries).
"""
from __future__ import annotations

import warnings
from typing import Any

from zoo.errors import ZooError, require
from zoo.registry.model import EntryRef, Store, ch_dir


def model_name(name: str, ch_mul) -> str:
    return f"{name}-ch{ch_dir(ch_mul)}"


def _client(tracking_uri: str):
    require("mlflow", "mlflow", "registering entries in the MLflow Model Registry")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _run_id(metadata: dict[str, Any]) -> str | None:
    """The training run id, wherever the training step recorded it."""
    for holder in (metadata, metadata.get("training") or {}, metadata.get("mlflow") or {}):
        if isinstance(holder, dict):
            for key in ("mlflow_run_id", "run_id"):
                if isinstance(holder.get(key), str):
                    return holder[key]
    return None


def _source(store: Store, ref: EntryRef) -> str:
    root = getattr(store, "root", None)
    if root is not None:
        return (root / ref.path).as_uri()
    return f"{store.location.rstrip('/')}/{ref.path}"


def register_entry(ref: EntryRef, store: Store, tracking_uri: str) -> dict[str, Any]:
    """Register ``ref`` as a new model version (and its current aliases); returns what to record."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    mname = model_name(ref.name, ref.ch_mul)
    try:
        client.create_registered_model(mname, tags={"zoo_name": ref.name, "ch_mul": ref.ch_mul},
                                       description=f"ganzoo entry {ref.name} at ch_mul={ref.ch_mul}")
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise ZooError(f"MLflow ({tracking_uri}): cannot create registered model {mname}: {exc}") from None
    run_id = _run_id(ref.metadata)
    if run_id is not None:
        try:
            client.get_run(run_id)
        except MlflowException:
            warnings.warn(f"MLflow run {run_id} is not on {tracking_uri}; registering {ref} without a run link")
            run_id = None
    reg = ref.metadata.get("registry", {})
    tags = {"zoo_version": ref.version, "ch_mul": ref.ch_mul, "zoo_name": ref.name,
            "generator_sha256": reg.get("generator_sha256", ""), "params_G": str(ref.metadata.get("params_G"))}
    mv = client.create_model_version(mname, source=_source(store, ref), run_id=run_id, tags=tags,
                                     description=f"{ref} from {store.location}")
    for alias in ref.aliases:
        if alias != "latest":
            client.set_registered_model_alias(mname, alias, mv.version)
    return {"tracking_uri": tracking_uri, "model_name": mname, "version": str(mv.version), "run_id": run_id}


def mirror_alias(tracking_uri: str, name: str, ch_mul, alias: str, target: EntryRef | None) -> bool:
    """Set (or with ``target=None`` delete) ``alias`` on the MLflow model; False when not mirrored."""
    client = _client(tracking_uri)
    mname = model_name(name, ch_mul)
    if target is None:
        from mlflow.exceptions import MlflowException

        try:
            client.delete_registered_model_alias(mname, alias)
        except MlflowException as exc:
            warnings.warn(f"alias {alias!r} not removed from MLflow model {mname}: {exc}")
            return False
        return True
    mlflow_info = target.record.get("mlflow")
    if not mlflow_info:
        warnings.warn(f"{target} was not registered in MLflow; alias {alias!r} not mirrored there")
        return False
    client.set_registered_model_alias(mlflow_info["model_name"], alias, mlflow_info["version"])
    return True
