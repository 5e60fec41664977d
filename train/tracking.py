"""Experiment tracking: a local JSONL log always, MLflow when it is installed and not switched off.

* ``<run>/log.jsonl`` - one JSON object per line: ``{"event": "tick", "nimg": ..., "kimg": ...,
  "stage": ..., "loss/G_adv": ...}``, plus events (``start``, ``resume``, ``stage2``, ``end``).
  It holds every number MLflow gets, so training without the ``mlflow`` extra loses nothing.
* MLflow: a real tracking store.  Default ``sqlite:///<output root>/mlruns.db`` with artifacts in
  ``<output root>/mlartifacts`` (the file store is gone in MLflow 3.13+); any ``--tracking-uri``
  (another sqlite file, ``http://host:5000`` for an MLflow server) works; ``none`` switches it off.
  Runs are opened through ``MlflowClient`` (no global "active run"), one experiment per named
  configuration, and a resumed run keeps logging into the same MLflow run.

Only the main process (rank 0) constructs a :class:`Tracker`; the others use :class:`NullTracker`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

LOG_FILE = "log.jsonl"
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def default_tracking_uri(out_dir: str | os.PathLike) -> str:
    """``sqlite:///<parent of the run directory>/mlruns.db``: runs under one root share one store."""
    return f"sqlite:///{Path(out_dir).resolve().parent / 'mlruns.db'}"


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> {'a.b': 'value'} with values as short strings (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:MAX_PARAM_CHARS]
    return out


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a log.jsonl (a torn last line from a killed process is skipped)."""
    records = []
    path = Path(path)
    if not path.exists():
        return records
    with open(path) as fh:
        for line in fh:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class NullTracker:
    """What non-main ranks log to: nothing."""

    run_id: str | None = None
    tracking_uri: str | None = None

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], nimg: int, **fields: Any) -> None: ...
    def log_event(self, event: str, **fields: Any) -> None: ...
    def log_image(self, image, key: str, nimg: int) -> None: ...
    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def log_artifacts(self, directory: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def close(self, status: str = "FINISHED") -> None: ...


@contextlib.contextmanager
def _sqlite_lock(uri: str):
    """An exclusive lock beside a ``sqlite:///PATH`` store (``PATH.lock``); a no-op for other URIs."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Tracker(NullTracker):
    """Rank 0's log: ``log.jsonl`` in the run directory, mirrored to MLflow when enabled."""

    def __init__(self, out_dir: str | os.PathLike, *, tracking_uri: str | None, experiment: str, run_name: str,
                 run_id: str | None = None, tags: dict[str, str] | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / LOG_FILE
        self.client = None
        self.run_id = None
        self.tracking_uri = None
        if tracking_uri and tracking_uri.lower() != "none":
            self._open_mlflow(tracking_uri, experiment, run_name, run_id, tags or {})

    # ------------------------------------------------------------------ MLflow
    def _open_mlflow(self, uri: str, experiment: str, run_name: str, run_id: str | None,
                     tags: dict[str, str]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            warnings.warn("mlflow is not installed (pip install 'dglgan-zoo[mlflow]'): logging to "
                          f"{self.path} only", stacklevel=3)
            return
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # two runs starting at once on a new SQLite store would both create its tables (and one dies with
        # "table experiments already exists"): serialise store creation and experiment lookup per file
        with _sqlite_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            if run_id is not None:
                client.get_run(run_id)  # raises if the store lost it
                client.update_run(run_id, status="RUNNING")
                for key, value in tags.items():  # runs started before a tag existed get it on resume
                    client.set_tag(run_id, key, value)
            else:
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    location = None
                    if uri.startswith("sqlite:///"):
                        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
                    exp_id = client.create_experiment(experiment, artifact_location=location)
                else:
                    exp_id = exp.experiment_id
                run_id = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        self.client, self.run_id, self.tracking_uri = client, run_id, uri

    # ------------------------------------------------------------------ logging
    def _append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=float) + "\n")
            fh.flush()

    def log_params(self, params: dict[str, Any]) -> None:
        if self.client is None:
            return
        from mlflow.entities import Param

        flat = flatten(params)
        existing = self.client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in flat.items() if k not in existing]
        for i in range(0, len(new), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def log_metrics(self, metrics: dict[str, float], nimg: int, **fields: Any) -> None:
        """One tick: metrics at step ``nimg`` (images shown); ``fields`` go to the JSONL record only."""
        self._append({"event": "tick", "nimg": int(nimg), **fields, **metrics})
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(nimg)) for k, v in metrics.items() if v is not None]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    def log_event(self, event: str, **fields: Any) -> None:
        self._append({"event": event, "time": time.time(), **fields})
        if self.client is not None and event not in ("tick",):
            self.client.set_tag(self.run_id, f"event.{event}", json.dumps(fields, default=str)[:5000])

    def log_image(self, image, key: str, nimg: int) -> None:
        """An image (HWC uint8) as a step-indexed MLflow image series (the UI slides through them)."""
        if self.client is not None:
            self.client.log_image(self.run_id, image, key=key, step=int(nimg))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.client is not None:
            self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def truncate(self, nimg: int) -> None:
        """Drop records past ``nimg`` (a resumed run re-does them; a run without state starts over)."""
        records = [r for r in read_log(self.path) if nimg > 0 and r.get("nimg", 0) <= nimg]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as fh:
            for r in records:
                fh.write(json.dumps(r, sort_keys=True, default=float) + "\n")
        os.replace(tmp, self.path)

    def close(self, status: str = "FINISHED") -> None:
        if self.client is not None:
            self.client.set_terminated(self.run_id, status=status)
