"""``zoo compare``: the paper's tables from training runs, or the widths of one registry entry.

    zoo compare stylegan2-emoji                                   # registry widths (zoo.registry, as before)
    zoo compare --experiment ganzoo-study                         # MLflow runs -> tables (Markdown)
    zoo compare --runs 3f2a...,9c1b... --tracking-uri sqlite:///out/mlruns.db --format json
    zoo compare --runs-dir out/study/runs --format csv            # no MLflow: run directories
    zoo compare --experiment ganzoo-study --format html --out report/   # train/report.py

Run mode reads each *finished* run's identity (MLflow tags ``family, config, preset, ch_mul, method,
seed, lambda, dgl_interval, teacher``; in directory mode ``summary.json``), its final metrics, how they
were computed (``metrics_info`` in ``summary.json``: n, the real data's sha256, the feature network, ...),
its architecture (the final checkpoint's ``config.json``) and, for the report, its score curves.  It
prints per configuration (family and dataset):

* one row per (method / variant, ch_mul): params of G, compression, MACs of G in both conventions
  (``export.stats``), latency and speedup per device / back-end / batch where the registry entry of that
  width has ``zoo bench`` rows, and each quality metric as mean +- std over seeds plus each seed's value;
* paired differences variant - Baseline (paired by seed) with a 95 % interval (Student t, n - 1 dof),
  read as "inconclusive" whenever the interval contains 0; a lazy DGL variant (K > 1) is also paired with
  the every-step DGL run of its lambda.

A metric whose runs were evaluated differently (real data sha256, feature network, n, resolution, ...)
is never put in one column: the column is refused and the message says what differs.  Exit status 1
then (the rest of the tables are still printed); 2 for bad input.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Optional

from zoo.errors import ZooError
from zoo.metrics import MetricValue, basis_text
from zoo.registry.cli import format_count

# metric key -> (label in tables, display scale, direction: -1 lower is better, +1 higher is better)
METRICS: dict[str, tuple[str, float, int]] = {
    "kid": ("KID-EffLite0 ×10³", 1e3, -1),
    "fd": ("FD-EffLite0", 1.0, -1),
    "precision": ("precision", 1.0, +1),
    "recall": ("recall", 1.0, +1),
    "swd": ("SWD ×10³", 1.0, -1),
    "cc": ("class consistency", 1.0, +1),
    "fid": ("FID", 1.0, -1),
    "is": ("IS", 1.0, +1),
}
SCORES = ("score/h_real", "score/h_fake", "score/hbar_real", "score/hbar_fake")  # paper Fig. 4
METHOD_ORDER = {"teacher": 0, "dgl": 1, "baseline": 2}
CONFIDENCE = 0.95
STUDY_STORE = "study/mlruns.db"   # under $GANZOO_HOME: where `zoo sweep` studies log by default


# ------------------------------------------------------------------------------------------ statistics

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: int) -> float:
    """P(T <= t) for Student's t with ``dof`` degrees of freedom."""
    tail = 0.5 * _betainc(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t (dof >= 1), by bisection on :func:`t_cdf` (|error| < 1e-10)."""
    if not 0.0 < p < 1.0 or dof < 1:
        raise ValueError(f"t_quantile needs 0 < p < 1 and dof >= 1, got p={p}, dof={dof}")
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, dof) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, dof) < p else (lo, mid)
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def mean_std(values: list[float]) -> tuple[float, Optional[float]]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_interval(diffs: list[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean of paired differences with its Student-t interval (n - 1 dof); no interval for n < 2."""
    n = len(diffs)
    mean, std = mean_std(diffs)
    out: dict[str, Any] = {"n": n, "mean": mean, "std": std, "dof": n - 1, "t": None, "ci": None}
    if n >= 2:
        t = t_quantile(0.5 + confidence / 2.0, n - 1)
        half = t * std / math.sqrt(n)
        out.update(t=t, ci=[mean - half, mean + half])
    return out


def reading(metric: str, ci: Optional[list[float]], n: int, variant: str, baseline: str = "Baseline") -> str:
    """What the interval supports, and nothing more."""
    if ci is None:
        return f"no interval ({n} seed pair{'s' if n != 1 else ''}; an interval needs at least 2)"
    lo, hi = ci
    if lo <= 0.0 <= hi:
        return "inconclusive (the interval contains 0)"
    label, scale, direction = METRICS.get(metric, (metric, 1.0, 0))
    higher = lo > 0
    better = None if direction == 0 else (higher == (direction > 0))
    judged = "" if better is None else (" (better)" if better else " (worse)")
    return f"{variant} {'higher' if higher else 'lower'} than {baseline}{judged}: by {_num(abs(lo) * scale)} " \
           f"to {_num(abs(hi) * scale)} at {CONFIDENCE:.0%} (interval excludes 0)"


# ------------------------------------------------------------------------------------------ run records

@dataclass
class RunRecord:
    """One training run as ``zoo compare`` sees it, from MLflow or from its run directory."""

    key: str                                  # MLflow run id, or the run directory relative to --runs-dir
    name: str                                 # short human label
    source: str                               # "mlflow" | "dir"
    status: str                               # FINISHED / RUNNING / KILLED / FAILED / UNFINISHED
    config: Optional[str] = None
    family: Optional[str] = None
    preset: Optional[str] = None
    method: Optional[str] = None
    ch_mul: Optional[str] = None
    seed: Optional[int] = None
    lam: float = 0.0
    dgl_interval: int = 1
    student_adv: bool = True                  # Adv(G, D) in stage II's G loss (False: the D-bar-only ablation)
    T_kimg: Optional[float] = None
    S_kimg: Optional[float] = None
    teacher: Optional[str] = None             # sha256 (prefix) of the teacher D-bar the run used
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_info: Optional[dict[str, Any]] = None
    data: dict[str, Any] = field(default_factory=dict)
    end_time: float = 0.0
    run_id: Optional[str] = None              # MLflow run id (also known in directory mode when it logged)
    path: Optional[str] = None                # run directory, when known
    checkpoint_loader: Optional[Callable[[], Optional[Path]]] = None   # -> local final checkpoint dir
    history_loader: Optional[Callable[[list[str]], dict[str, list[tuple[float, float]]]]] = None
    _checkpoint: Any = None

    def checkpoint(self) -> Optional[Path]:
        """The run's final checkpoint directory on this machine (downloaded from MLflow if need be)."""
        if self._checkpoint is None:
            self._checkpoint = (self.checkpoint_loader() if self.checkpoint_loader else None) or False
        return self._checkpoint or None

    def history(self, keys: Iterable[str] = SCORES) -> dict[str, list[tuple[float, float]]]:
        """{metric: [(kimg, value), ...]} of the per-tick series."""
        return self.history_loader(list(keys)) if self.history_loader else {}

    @property
    def finished(self) -> bool:
        return self.status == "FINISHED"


def _as_int(value, default=None):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _as_float(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _norm_ch(value) -> Optional[str]:
    if value is None:
        return None
    try:
        from zoo.widths import format_ch_mul, parse_ch_mul

        return format_ch_mul(parse_ch_mul(value))
    except (ValueError, ZooError, TypeError):
        return str(value)


def _apply_summary(rec: RunRecord, summary: dict[str, Any]) -> None:
    """Fill what ``summary.json`` knows (it wins over tags for metrics and their provenance)."""
    if not isinstance(summary, dict):
        return
    rec.config = rec.config or summary.get("config")
    rec.preset = rec.preset or summary.get("preset")
    rec.method = rec.method or summary.get("method")
    rec.ch_mul = rec.ch_mul or _norm_ch(summary.get("ch_mul"))
    if rec.seed is None:
        rec.seed = _as_int(summary.get("seed"))
    if "lambda" in summary:
        rec.lam = _as_float(summary.get("lambda"), rec.lam)
    if summary.get("dgl_interval") is not None:
        rec.dgl_interval = _as_int(summary.get("dgl_interval"), rec.dgl_interval)
    if summary.get("stage2_student_adv") is not None:
        rec.student_adv = summary["stage2_student_adv"] is not False
    rec.T_kimg = _as_float(summary.get("T_kimg"), rec.T_kimg)
    rec.S_kimg = _as_float(summary.get("S_kimg"), rec.S_kimg)
    teacher = summary.get("teacher") or {}
    if isinstance(teacher, dict) and teacher.get("discriminator_sha256"):
        rec.teacher = teacher["discriminator_sha256"]
    metrics = summary.get("metrics")
    if isinstance(metrics, dict) and metrics:
        rec.metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    if isinstance(summary.get("metrics_info"), dict):
        rec.metrics_info = summary["metrics_info"]
    if isinstance(summary.get("data"), dict):
        rec.data = summary["data"]
    mlflow = summary.get("mlflow") or {}
    if isinstance(mlflow, dict) and mlflow.get("run_id"):
        rec.run_id = rec.run_id or mlflow["run_id"]


# ------------------------------------------------------------------------------ from run directories

def _log_history(log: Path) -> Callable[[list[str]], dict[str, list[tuple[float, float]]]]:
    def load(keys: list[str]) -> dict[str, list[tuple[float, float]]]:
        from zoo.train.tracking import read_log

        out: dict[str, list[tuple[float, float]]] = {}
        for record in read_log(log):
            if record.get("event") != "tick":
                continue
            kimg = record.get("kimg", record.get("nimg", 0) / 1000)
            for k in keys:
                if isinstance(record.get(k), (int, float)):
                    out.setdefault(k, []).append((float(kimg), float(record[k])))
        return out

    return load


def runs_from_dirs(runs_dir: str | os.PathLike, selected: Optional[list[str]] = None) -> list[RunRecord]:
    """Every run directory under ``runs_dir`` (a directory holding ``log.jsonl`` or ``summary.json``).

    Finished runs (``summary.json`` + ``final/config.json``) get their identity and metrics from
    ``summary.json`` (else ``final/metadata.json``'s ``training`` block); the others come back with
    status UNFINISHED.  ``selected``: keep runs whose relative path, directory name or MLflow run id is listed.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise ZooError(f"--runs-dir {runs_dir}: no such directory")
    records = []
    for directory, subdirs, files in os.walk(root):
        if "log.jsonl" not in files and "summary.json" not in files:
            # MLflow's artifact stores beside the runs hold copies of summary.json: not runs
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in ("mlartifacts", "mlruns"))
            continue
        subdirs[:] = []  # a run directory's own subdirectories (final/, state/, images/) are not runs
        path = Path(directory)
        rel = str(path.relative_to(root)) if path != root else path.name
        final = path / "final"
        summary = _read_json(path / "summary.json")
        metadata = _read_json(final / "metadata.json") or {}
        finished = isinstance(summary, dict) and (final / "config.json").is_file()
        if not isinstance(summary, dict) and isinstance(metadata.get("training"), dict) \
                and (final / "config.json").is_file():
            summary, finished = metadata["training"], True
        rec = RunRecord(key=rel, name=rel, source="dir", status="FINISHED" if finished else "UNFINISHED",
                        path=str(path))
        _apply_summary(rec, summary or {})
        if not rec.metrics and isinstance(metadata.get("metrics"), dict):
            rec.metrics = {k: float(v) for k, v in metadata["metrics"].items() if isinstance(v, (int, float))}
        if finished:
            rec.end_time = (path / "summary.json").stat().st_mtime if (path / "summary.json").exists() else 0.0
            rec.checkpoint_loader = (lambda final=final: final)
            name, arch = _checkpoint_config(final)
            rec.family = getattr(arch, "family", None)
        rec.history_loader = _log_history(path / "log.jsonl")
        records.append(rec)
    if selected:
        wanted = set(selected)
        found = [r for r in records if {r.key, Path(r.key).name, r.run_id} & wanted]
        missing = wanted - {x for r in found for x in (r.key, Path(r.key).name, r.run_id)}
        if missing:
            raise ZooError(f"--runs: no run directory under {runs_dir} is {', '.join(sorted(missing))} "
                           f"(runs there: {', '.join(r.key for r in records) or 'none'})")
        records = found
    return records


def _checkpoint_config(directory: Optional[Path]):
    """(name, architecture config) of a checkpoint directory, or (None, None)."""
    if directory is None or not (Path(directory) / "config.json").is_file():
        return None, None
    from zoo.checkpoint import read_config

    try:
        return read_config(directory)
    except ZooError:
        return None, None


# ------------------------------------------------------------------------------------- from MLflow

def default_tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the study store ``sqlite:///$GANZOO_HOME/study/mlruns.db``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    home = Path(os.environ.get("GANZOO_HOME") or Path.home() / ".cache" / "ganzoo").expanduser()
    return f"sqlite:///{home / STUDY_STORE}"


def mlflow_client(uri: str):
    """An MlflowClient on an existing store (a missing SQLite file is an error, never created)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ZooError("reading MLflow runs needs MLflow: pip install 'dglgan-zoo[mlflow]' "
                       "(or read the run directories with --runs-dir DIR)") from None
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.is_file():
            raise ZooError(f"no MLflow store at {db} (give --tracking-uri, set MLFLOW_TRACKING_URI, or read "
                           "run directories with --runs-dir DIR)")
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _local_artifacts(artifact_uri: str) -> Optional[Path]:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else artifact_uri)
        return path if path.is_dir() else None
    return None


class _Downloads:
    """Where artifacts of non-local stores are downloaded (one temporary directory per process)."""

    root: Optional[Path] = None

    @classmethod
    def dir(cls, *parts: str) -> Path:
        if cls.root is None:
            cls.root = Path(tempfile.mkdtemp(prefix="zoo-compare-"))
        path = cls.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


def _artifact(client, run, rel: str) -> Optional[Path]:
    """A run's artifact file or directory on this machine (read in place from a local store)."""
    local = _local_artifacts(run.info.artifact_uri)
    if local is not None:
        path = local / rel
        return path if path.exists() else None
    try:
        return Path(client.download_artifacts(run.info.run_id, rel, str(_Downloads.dir(run.info.run_id))))
    except Exception:  # noqa: BLE001 - a missing artifact or an unreachable artifact store
        return None


def _mlflow_history(client, run_id: str):
    def load(keys: list[str]) -> dict[str, list[tuple[float, float]]]:
        out = {}
        for k in keys:
            try:
                hist = client.get_metric_history(run_id, k)
            except Exception:  # noqa: BLE001
                continue
            if hist:
                points = {}
                for m in hist:  # a resumed run may log a step twice: the last value wins
                    points[m.step] = (m.timestamp, m.value)
                out[k] = [(step / 1000, v) for step, (_, v) in sorted(points.items())]
        return out

    return load


def _record_from_mlflow(client, run) -> RunRecord:
    tags, params, info = run.data.tags, run.data.params, run.info
    rec = RunRecord(key=info.run_id, name=f"{info.run_name or 'run'} ({info.run_id[:8]})", source="mlflow",
                    status=info.status, run_id=info.run_id, end_time=(info.end_time or 0) / 1000)

    def pick(tag: str, param: Optional[str] = None):
        value = tags.get(tag)
        if value in (None, "") and param:
            value = params.get(param)
        if isinstance(value, str) and value.startswith('"') and value.endswith('"'):
            value = value[1:-1]  # flattened params are JSON text
        return value

    rec.config, rec.family, rec.preset = pick("config", "config"), pick("family"), pick("preset", "preset")
    rec.method, rec.ch_mul = pick("method", "method"), _norm_ch(pick("ch_mul", "ch_mul"))
    rec.seed = _as_int(pick("seed", "seed"))
    rec.lam = _as_float(pick("lambda", "lambda"), 0.0)
    rec.dgl_interval = _as_int(pick("dgl_interval", "train.dgl_interval"), 1)
    rec.student_adv = str(pick("stage2_student_adv", "train.stage2_student_adv")).lower() != "false"
    rec.T_kimg, rec.S_kimg = _as_float(params.get("T_kimg")), _as_float(params.get("S_kimg"))
    teacher = pick("teacher", "teacher.discriminator_sha256")
    rec.teacher = None if teacher in (None, "none", "null") else teacher
    rec.metrics = {k.split("/", 1)[1]: float(v) for k, v in run.data.metrics.items() if k.startswith("metric/")}
    rec.data = {k.split(".", 1)[1]: v.strip('"') for k, v in params.items() if k.startswith("data.")}
    if rec.finished:
        summary_path = _artifact(client, run, "summary.json")
        if summary_path is not None:
            _apply_summary(rec, _read_json(summary_path) or {})
    rec.checkpoint_loader = lambda: _artifact(client, run, "checkpoint")
    rec.history_loader = _mlflow_history(client, info.run_id)
    return rec


def runs_from_mlflow(uri: str, experiment: Optional[str] = None, run_ids: Optional[list[str]] = None
                     ) -> list[RunRecord]:
    """The runs of one experiment, or the listed run ids, as records (MLflow must be installed)."""
    client = mlflow_client(uri)
    runs = []
    if run_ids:
        for rid in run_ids:
            try:
                runs.append(client.get_run(rid))
            except Exception as exc:  # noqa: BLE001 - MlflowException: RESOURCE_DOES_NOT_EXIST
                raise ZooError(f"--runs: no run {rid!r} at {uri} ({str(exc).splitlines()[0][:200]})") from None
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = sorted(e.name for e in client.search_experiments())
            raise ZooError(f"no MLflow experiment named {experiment!r} at {uri} "
                           f"(experiments there: {', '.join(names) or 'none'})")
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
        if not runs:
            raise ZooError(f"MLflow experiment {experiment!r} at {uri} has no runs")
    return [_record_from_mlflow(client, r) for r in runs]


# ------------------------------------------------------------------------------------------ the tables

def _num(x: Optional[float], digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if x == 0:
        return "0"
    x = float(f"{x:.{digits}g}")  # round first, so 99.999... is shown as 100.0, not 100.00
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    return f"{x:.{decimals}f}"


def variant_label(method: str, lam: float, dgl_interval: int, student_adv: bool = True) -> str:
    if method == "teacher":
        return "teacher"
    if method == "baseline":
        return "Baseline"
    if method == "dgl":
        return (f"DGL-GAN (λ={lam:g}" + (f", lazy K={dgl_interval}" if dgl_interval != 1 else "")
                + ("" if student_adv else ", D̄ only in stage II") + ")")
    return f"{method} (λ={lam:g}, K={dgl_interval})"


_ARCH_STATS: dict[str, dict[str, Any]] = {}


def arch_stats(arch) -> dict[str, Any]:
    """params / MACs of an architecture (export.stats), cached per architecture."""
    key = json.dumps(arch.to_dict(), sort_keys=True, default=str)
    if key not in _ARCH_STATS:
        from zoo.export.stats import config_stats

        try:
            stats = config_stats(arch, fvcore=True)
        except Exception:  # noqa: BLE001 - fvcore missing or failing: the paper's analytic count still holds
            stats = config_stats(arch, fvcore=False)
        _ARCH_STATS[key] = {k: stats.get(k) for k in ("params_G", "params_D", "macs_G_paper", "macs_G_fvcore")}
    return _ARCH_STATS[key]


def registry_latency(config: str, registry=None) -> tuple[dict[str, dict[str, Any]], Optional[str]]:
    """{ch_mul: {"params_G": ..., "version": ..., "latency": [LatencyRow]}} from the registry entries named
    ``config`` (rows in any stored shape, read by :func:`zoo.latency.parse_rows`)."""
    from zoo.latency import parse_rows
    from zoo.registry.api import compare as registry_compare

    try:
        rows = registry_compare(config, registry=registry)
    except ZooError:
        return {}, (f"no registry entry named {config!r}: no latency / speedup columns (publish the widths with "
                    "`zoo publish`, then record `zoo bench` rows in their metadata)")
    except Exception as exc:  # noqa: BLE001 - an unreachable registry must not stop the tables
        return {}, f"registry not readable for {config!r}: {exc}"
    out = {}
    for r in rows:
        out[_norm_ch(r["ch_mul"])] = {"params_G": r.get("params_G"), "version": r.get("version"),
                                      "latency": parse_rows(r.get("latency"))}
    return out, None


def latency_tables(runs_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The bench tables ``zoo sweep bundle`` kept beside a study's records (``latency/*.json``, each
    ``{"config": NAME, "bench": TABLE}``), oldest first; [] where there are none."""
    from zoo.integrity import read_json
    from zoo.train.sweep import LATENCY_DIR

    out = []
    for path in sorted((Path(runs_dir) / LATENCY_DIR).glob("*.json")):
        data = read_json(path)
        data = data if isinstance(data, dict) else {}
        bench = data.get("bench")
        if not (isinstance(data.get("config"), str) and isinstance(bench, dict) and isinstance(bench.get("rows"), list)):
            raise ZooError(f"{path}: not a latency record ({{\"config\": NAME, \"bench\": a zoo bench table}})")
        out.append({"path": str(path), "config": data["config"], "bench": bench})
    return out


def _table_latency(table: dict[str, Any], ch: str) -> list[Any]:
    """LatencyRows of one width from a kept bench table (:func:`latency_tables`)."""
    from zoo.latency import latency_for, parse_rows

    try:
        return parse_rows(latency_for(table["bench"], ch))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ZooError(f"{table['path']}: a malformed bench table ({type(exc).__name__}: {exc})") from None


def _latency_group(row) -> tuple:
    """(device, back-end, dtype, batch) of a :class:`zoo.latency.LatencyRow`: one latency column."""
    return (str(row.device or row.extra.get("device_type") or "?"), row.backend, row.dtype, row.batch)


def _metric_value(rec: RunRecord, metric: str) -> MetricValue:
    """``metric`` of a run as a :class:`zoo.metrics.MetricValue` with what it was computed on."""
    value = MetricValue.from_info(metric, rec.metrics.get(metric, math.nan), rec.metrics_info)
    if not rec.metrics_info and rec.data.get("sha256"):  # trained before metrics_info existed: train.cli
        value = replace(value, data_sha256=rec.data["sha256"])  # evaluates on the training data, so that hash
    return value                                                # is the metric data's


def check_provenance(runs: list[RunRecord], metric: str) -> tuple[Optional[str], dict[str, Any], list[str]]:
    """(refusal message or None, the agreed facts, runs whose provenance is not recorded) for one column:
    the :meth:`zoo.metrics.MetricValue.basis` of every run's value must agree."""
    values: dict[str, dict[str, list[str]]] = {}
    unrecorded = sorted({r.name for r in runs if not r.metrics_info})
    for r in runs:
        for fact, value in _metric_value(r, metric).basis().items():
            if value is None:
                continue
            values.setdefault(fact, {}).setdefault(basis_text(value), []).append(r.name)
    differ = []
    for fact, by_value in values.items():
        if len(by_value) > 1:
            parts = "; ".join(f"{v[:24]}: {', '.join(sorted(names))}" for v, names in sorted(by_value.items()))
            differ.append(f"{fact} differs ({parts})")
    agreed = {fact: next(iter(v)) for fact, v in values.items() if len(v) == 1}
    if differ:
        return (f"{METRICS.get(metric, (metric,))[0]}: refused to put in one column, computed differently: "
                + " | ".join(differ)), agreed, unrecorded
    return None, agreed, unrecorded


class RowKey(NamedTuple):
    """What makes runs one row of a table (their seeds are its columns of values)."""

    method: str
    ch_mul: str
    lam: float
    dgl_interval: int
    preset: str
    T: Optional[float]
    S: Optional[float]
    student_adv: bool


def _row_key(r: RunRecord) -> RowKey:
    return RowKey(r.method or "?", r.ch_mul or "?", float(r.lam), int(r.dgl_interval or 1), r.preset or "",
                  r.T_kimg, r.S_kimg, bool(r.student_adv))


def _ch_value(ch: Optional[str]) -> Fraction:
    try:
        return Fraction(ch)
    except (TypeError, ValueError):
        return Fraction(0)


def build_report(runs: list[RunRecord], *, source: dict[str, Any], configs: Optional[list[str]] = None,
                 registry=None, stats: bool = True, tables: Iterable[dict[str, Any]] = (),
                 curves: Optional[str] = None) -> dict[str, Any]:
    """The tables (a JSON-able dict) from run records: per configuration, rows, paired differences, refusals.
    Latency comes from the registry entries, and from kept bench ``tables`` (:func:`latency_tables`) for
    the (width, device, back-end, dtype, batch) cells the registry has no row for.  ``curves`` (a metric
    name): also that metric at every evaluation of stage II for each paired comparison (:func:`stage2_curve`)."""
    if curves is not None and curves not in METRICS:
        raise ZooError(f"--curves {curves!r}: not a metric; use one of {', '.join(METRICS)}")
    tables = list(tables)
    notes: list[str] = []
    unfinished = [r for r in runs if not r.finished]
    if unfinished:
        notes.append(f"skipped {len(unfinished)} unfinished run(s) (no final checkpoint yet, or killed): "
                     + ", ".join(f"{r.name} [{r.status}]" for r in unfinished[:12])
                     + (" ..." if len(unfinished) > 12 else ""))
    finished = [r for r in runs if r.finished]
    unknown = [r for r in finished if not (r.config and r.method and r.ch_mul)]
    if unknown:
        notes.append("skipped run(s) without config / method / ch_mul tags: " + ", ".join(r.name for r in unknown))
    finished = [r for r in finished if r not in unknown]
    present = sorted({r.config for r in finished})
    if configs:
        missing = [c for c in configs if c not in present]
        if missing:
            raise ZooError(f"--config {', '.join(missing)}: no finished run of that configuration "
                           f"(finished runs are of: {', '.join(present) or 'none'})")
        finished = [r for r in finished if r.config in configs]
    if not finished:
        what = f"{len(runs)} run(s), none finished" if runs else "no runs"
        raise ZooError(f"nothing to compare: {what}" + (f" ({notes[0]})" if unfinished else ""))

    report: dict[str, Any] = {"source": source, "notes": notes, "refusals": [], "configs": [],
                              "confidence": CONFIDENCE}
    for config in sorted({r.config for r in finished}):
        report["configs"].append(_config_table(config, [r for r in finished if r.config == config], registry,
                                               report, stats, [t for t in tables if t["config"] == config],
                                               curves))
    return report


def _config_table(config: str, runs: list[RunRecord], registry, report: dict[str, Any], stats: bool,
                  tables: list[dict[str, Any]], curves: Optional[str] = None) -> dict[str, Any]:
    notes: list[str] = []
    # --- one run per (row, seed): the latest finished one
    chosen: dict[tuple, RunRecord] = {}
    for r in sorted(runs, key=lambda r: r.end_time):
        k = (_row_key(r), r.seed)
        if k in chosen:
            notes.append(f"{variant_label(r.method, r.lam, r.dgl_interval, r.student_adv)} ch_mul {r.ch_mul} "
                         f"seed {r.seed}: "
                         f"finished more than once; using the latest ({r.name}), not {chosen[k].name}")
        chosen[k] = r
    runs = list(chosen.values())
    family = next((r.family for r in runs if r.family), None)

    # --- architecture: params / MACs per width (from the final checkpoints)
    arch_by_ch: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r.ch_mul in arch_by_ch or not stats:
            continue
        _, arch = _checkpoint_config(r.checkpoint())
        if arch is not None:
            family = family or arch.family
            arch_by_ch[r.ch_mul] = {**arch_stats(arch), "resolution": arch.resolution}
    full = arch_by_ch.get("1")

    # --- latency from the registry (only where the entry has this architecture)
    latency_by_ch, note = registry_latency(config, registry) if stats else ({}, None)
    if note:
        notes.append(note)
    groups: list[tuple] = []
    usable: dict[str, list[Any]] = {}  # ch_mul -> [LatencyRow]
    for ch, entry in latency_by_ch.items():
        ours = arch_by_ch.get(ch, {}).get("params_G")
        if ours is not None and entry.get("params_G") is not None and entry["params_G"] != ours:
            notes.append(f"registry entry {config} ch_mul {ch} v{entry.get('version')} has another architecture "
                         f"({format_count(entry['params_G'])} vs {format_count(ours)} G params here): its latency is not shown")
            continue
        if entry["latency"]:
            usable[ch] = list(entry["latency"])
    for table in tables if stats else []:  # e.g. a shipped teacher timed again beside its new students
        for ch in arch_by_ch:
            have = {_latency_group(lrow) for lrow in usable.get(ch, [])}
            usable.setdefault(ch, []).extend(r for r in _table_latency(table, ch) if _latency_group(r) not in have)
    for lrow in (lrow for rows_ in usable.values() for lrow in rows_):
        if _latency_group(lrow) not in groups:
            groups.append(_latency_group(lrow))
    groups.sort()

    # --- rows
    by_row: dict[RowKey, list[RunRecord]] = {}
    for r in runs:
        by_row.setdefault(_row_key(r), []).append(r)
    metric_names = [m for m in METRICS if any(m in r.metrics for r in runs)]
    schedules: dict[tuple, set] = {}
    for key in by_row:
        schedules.setdefault((key.method, key.lam, key.dgl_interval, key.student_adv), set()).add(
            (key.preset, key.T, key.S))

    # teachers: which D-bar did the students use?
    used_teachers = {r.teacher for r in runs if r.method != "teacher" and r.teacher}
    teacher_sha = {}
    for r in runs:
        if r.method == "teacher":
            ck = r.checkpoint()
            manifest = _read_json(Path(ck) / "manifest.json") if ck else None
            sha = (((manifest or {}).get("files") or {}).get("discriminator.safetensors") or {}).get("sha256")
            teacher_sha[r.key] = sha
    if len(used_teachers) > 1:
        notes.append(f"the students used {len(used_teachers)} different teacher discriminators "
                     f"({', '.join(sorted(t[:12] for t in used_teachers))})")

    # --- provenance per metric (over every run of the configuration)
    refused: dict[str, str] = {}
    provenance: dict[str, dict[str, Any]] = {}
    for m in metric_names:
        msg, agreed, unrecorded = check_provenance([r for r in runs if m in r.metrics], m)
        provenance[m] = agreed
        if msg:
            refused[m] = msg
            report["refusals"].append(f"{config}: {msg}")
        elif unrecorded:
            notes.append(f"{METRICS[m][0]}: how it was computed (n, feature network) is not recorded for "
                         f"{', '.join(unrecorded[:6])}{' ...' if len(unrecorded) > 6 else ''} (their evaluator "
                         "recorded no metrics_info: trained before summary.json had it, or a custom evaluator); only "
                         "the real data's hash could be checked")
    cc_real = sorted({round(r.metrics["cc_real"], 4) for r in runs if "cc_real" in r.metrics})
    if cc_real:
        notes.append(f"class consistency ceiling (the probe's accuracy on held-out real images): "
                     f"{', '.join(_num(v) for v in cc_real)}")

    rows = []
    for key in sorted(by_row, key=lambda k: (METHOD_ORDER.get(k.method, 3), -_ch_value(k.ch_mul), k.lam,
                                             k.dgl_interval, not k.student_adv, k.preset, k.T or 0, k.S or 0)):
        members = sorted(by_row[key], key=lambda r: (r.seed is None, r.seed or 0))
        method, ch, lam, interval, preset, T, S, student_adv = key
        label = variant_label(method, lam, interval, student_adv)
        if len(schedules[(method, lam, interval, student_adv)]) > 1:
            label += f" [{preset}, T+S {T:g}+{S or 0:g} kimg]" if T is not None else f" [{preset}]"
        if method == "teacher" and teacher_sha:
            shas = {teacher_sha.get(r.key) for r in members}
            if used_teachers and not any(s and any(s.startswith(u) or u.startswith(s) for u in used_teachers)
                                         for s in shas):
                label += " (not the students' D̄)"
        arch = arch_by_ch.get(ch, {})
        row: dict[str, Any] = {
            "label": label, "method": method, "ch_mul": ch, "lambda": lam, "dgl_interval": interval,
            "student_adv": student_adv,
            "preset": preset, "T_kimg": T, "S_kimg": S, "seeds": [r.seed for r in members],
            "runs": [r.key for r in members], "run_names": [r.name for r in members],
            "params_G": arch.get("params_G"), "params_D": arch.get("params_D"),
            "macs_G_paper": arch.get("macs_G_paper"), "macs_G_fvcore": arch.get("macs_G_fvcore"),
            "compression": (full["params_G"] / arch["params_G"]) if full and arch.get("params_G") else None,
            "mac_reduction_fvcore": (full["macs_G_fvcore"] / arch["macs_G_fvcore"])
            if full and arch.get("macs_G_fvcore") and full.get("macs_G_fvcore") else None,
            "mac_reduction_paper": (full["macs_G_paper"] / arch["macs_G_paper"])
            if full and arch.get("macs_G_paper") else None,
            "latency": [], "metrics": {},
        }
        for lrow in usable.get(ch, []):
            device, backend, dtype, batch = _latency_group(lrow)
            row["latency"].append({"device": device, "backend": backend, "dtype": dtype, "batch": batch,
                                   "ms": lrow.ms, "speedup": lrow.speedup})
        for m in metric_names:
            vals = {r.seed: r.metrics[m] for r in members if m in r.metrics}
            if not vals:
                continue
            mean, std = mean_std(list(vals.values()))
            row["metrics"][m] = {"mean": mean, "std": std, "n": len(vals),
                                 "values": {str(s): v for s, v in vals.items()}, "refused": m in refused}
        rows.append(row)

    # --- paired differences: every non-baseline student variant vs the Baseline of its width and schedule,
    # and a lazy (K > 1) or D-bar-only DGL variant also vs the plain DGL run of the same lambda: the question
    # such a variant has to answer is whether it loses anything against Algorithm 1 itself
    paired, curve_tables = [], []
    records = {r.key: r for r in runs}
    base_rows = {(r["ch_mul"], r["preset"], r["T_kimg"], r["S_kimg"]): r for r in rows if r["method"] == "baseline"}
    every_step = {(r["ch_mul"], r["preset"], r["T_kimg"], r["S_kimg"], r["lambda"]): r for r in rows
                  if r["method"] == "dgl" and r["dgl_interval"] == 1 and r["student_adv"]}
    for row in rows:
        if row["method"] in ("baseline", "teacher"):
            continue
        schedule = (row["ch_mul"], row["preset"], row["T_kimg"], row["S_kimg"])
        base = base_rows.get(schedule)
        if base is None:
            notes.append(f"{row['label']} ch_mul {row['ch_mul']}: no Baseline with the same width and schedule "
                         "to pair with")
        references = [base] if base is not None else []
        variant = row["dgl_interval"] != 1 or not row["student_adv"]
        if row["method"] == "dgl" and variant and (*schedule, row["lambda"]) in every_step:
            references.append(every_step[(*schedule, row["lambda"])])
        for ref in references:
            paired += _paired(row, ref, [m for m in metric_names if m not in refused])
            curve = stage2_curve(row, ref, records, curves) if curves and curves not in refused else None
            if curve:
                curve_tables.append(curve)
    if paired:
        notes.append(f"paired intervals are per comparison ({len(paired)} of them here), not corrected for "
                     "multiple comparisons; with few seeds they are wide by construction")
    return {"config": config, "family": family, "metrics": metric_names, "refused": refused,
            "provenance": provenance, "latency_groups": [list(g) for g in groups], "rows": rows,
            "paired": paired, "curves": curve_tables, "notes": notes, "arch": arch_by_ch}


def stage2_curve(row: dict[str, Any], ref: dict[str, Any], records: dict[str, RunRecord],
                 metric: str) -> Optional[dict[str, Any]]:
    """``metric`` at every evaluation of stage II, seed by seed, for a variant row and its reference row, from
    the runs' logged histories.  A pair shares stage I (the reference is forked from the variant at T), so the
    value at T is shown once; "better" counts, per evaluation, the seeds where the variant was ahead."""
    key, T = f"metric/{metric}", row["T_kimg"]

    def points(run_key: str) -> dict[float, float]:
        return {round(k, 3): v for k, v in records[run_key].history([key]).get(key, [])}

    per_seed = {}
    for seed, run_key in zip(row["seeds"], row["runs"]):
        if seed not in ref["seeds"]:
            continue
        ours, theirs = points(run_key), points(ref["runs"][ref["seeds"].index(seed)])
        stage2 = sorted(k for k in set(ours) & set(theirs) if T is None or k > T)
        if stage2:
            per_seed[str(seed)] = {"T": ours.get(round(T, 3)) if T is not None else None,
                                   "points": {k: (ours[k], theirs[k]) for k in stage2}}
    if not per_seed:
        return None
    kimg = sorted({k for seed in per_seed.values() for k in seed["points"]})
    sign = METRICS[metric][2]
    better = [sum(1 for seed in per_seed.values() if k in seed["points"]
                  and sign * (seed["points"][k][0] - seed["points"][k][1]) > 0) for k in kimg]
    return {"ch_mul": row["ch_mul"], "variant": row["label"], "baseline": ref["label"], "metric": metric,
            "T_kimg": T, "kimg": kimg, "better": better,
            "counted": [sum(1 for seed in per_seed.values() if k in seed["points"]) for k in kimg],
            "seeds": {s: {"T": d["T"], "variant": [d["points"].get(k, (None, None))[0] for k in kimg],
                          "baseline": [d["points"].get(k, (None, None))[1] for k in kimg]}
                      for s, d in per_seed.items()}}


def _paired(row: dict[str, Any], ref: dict[str, Any], metric_names: list[str]) -> list[dict[str, Any]]:
    """row − ref per metric over the seeds both have, with the t interval and what it supports."""
    out = []
    for m in metric_names:
        if m not in row["metrics"] or m not in ref["metrics"]:
            continue
        a, b = row["metrics"][m]["values"], ref["metrics"][m]["values"]
        seeds = sorted((s for s in a if s in b), key=lambda s: int(s))
        unpaired = sorted(set(a) ^ set(b), key=lambda s: int(s))
        if not seeds:
            continue
        diffs = {s: a[s] - b[s] for s in seeds}
        stat = paired_interval(list(diffs.values()))
        out.append({"ch_mul": row["ch_mul"], "variant": row["label"], "baseline": ref["label"],
                    "metric": m, "seeds": [int(s) for s in seeds], "unpaired_seeds": [int(s) for s in unpaired],
                    "differences": diffs, **stat,
                    "direction": "lower is better" if METRICS[m][2] < 0 else "higher is better",
                    "reading": reading(m, stat["ci"], stat["n"], row["label"], ref["label"])})
    return out


# ------------------------------------------------------------------------------------------ formatting

def metric_cell(cell: Optional[dict[str, Any]], metric: str) -> str:
    if not cell:
        return "-"
    if cell.get("refused"):
        return "refused"
    scale = METRICS[metric][1]
    seeds = ", ".join(f"s{s} {_num(v * scale)}" for s, v in cell["values"].items())
    if cell["n"] == 1:
        return f"{_num(cell['mean'] * scale)} ({seeds})"
    return f"{_num(cell['mean'] * scale)} ± {_num(cell['std'] * scale)} ({seeds})"


def latency_cell(row: dict[str, Any], group: list) -> str:
    for lat in row["latency"]:
        if [lat["device"], lat["backend"], lat["dtype"], lat["batch"]] == list(group):
            sp = lat.get("speedup")
            return f"{_num(lat['ms'], 3)} ms" + (f" ({sp:.2f}x)" if isinstance(sp, (int, float)) else "")
    return "-"


def group_label(group: list) -> str:
    device, backend, dtype, batch = group
    return f"{device} {backend} {dtype} b{batch}"


def table_columns(cfg: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table of one configuration (shared by Markdown and HTML)."""
    header = ["method", "ch_mul", "seeds", "params G", "compression", "MACs G (paper)", "MACs G (fvcore)"]
    header += [f"latency {group_label(g)} (speedup)" for g in cfg["latency_groups"]]
    header += [METRICS[m][0] for m in cfg["metrics"]]
    body = []
    for r in cfg["rows"]:
        cells = [r["label"], r["ch_mul"], ",".join(str(s) for s in r["seeds"]), format_count(r["params_G"]),
                 "-" if r["compression"] is None else f"{r['compression']:.2f}x", format_count(r["macs_G_paper"]),
                 format_count(r["macs_G_fvcore"])]
        cells += [latency_cell(r, g) for g in cfg["latency_groups"]]
        cells += [metric_cell(r["metrics"].get(m), m) for m in cfg["metrics"]]
        body.append(cells)
    return header, body


def paired_columns(cfg: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["ch_mul", "comparison", "metric", "seeds", "per-seed difference", "mean difference",
              f"{CONFIDENCE:.0%} interval (t, n−1 dof)", "reading"]
    body = []
    for p in cfg["paired"]:
        scale = METRICS[p["metric"]][1]
        ci = p["ci"]
        body.append([p["ch_mul"], f"{p['variant']} − {p['baseline']}", f"{METRICS[p['metric']][0]} "
                     f"({p['direction']})", ",".join(map(str, p["seeds"])),
                     ", ".join(f"s{s} {_signed(d * scale)}" for s, d in p["differences"].items()),
                     _signed(p["mean"] * scale),
                     "-" if ci is None else f"[{_signed(ci[0] * scale)}, {_signed(ci[1] * scale)}]"
                     + (f" (t={p['t']:.3f}, {p['dof']} dof)" if p["t"] else ""),
                     p["reading"]])
    return header, body


def curve_caption(curve: dict[str, Any]) -> str:
    T = curve["T_kimg"]
    shared = f"; the pair shares stage I, to T = {T:g} kimg" if T is not None else ""
    return (f"{METRICS[curve['metric']][0]} at each evaluation of stage II (kimg), ch_mul {curve['ch_mul']}: "
            f"{curve['variant']} / {curve['baseline']}{shared}:")


def curve_columns(curve: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    scale = METRICS[curve["metric"]][1]
    # the T column only where some run was evaluated at T (the stage switch)
    T = curve["T_kimg"] if any(d["T"] is not None for d in curve["seeds"].values()) else None
    fmt = (lambda v: _num(None if v is None else v * scale))
    header = ["seed"] + ([f"T = {T:g}"] if T is not None else []) + [f"{k:g}" for k in curve["kimg"]]
    body = [[s] + ([fmt(d["T"])] if T is not None else [])
            + [f"{fmt(a)} / {fmt(b)}" for a, b in zip(d["variant"], d["baseline"])]
            for s, d in sorted(curve["seeds"].items(), key=lambda kv: int(kv[0]))]
    direction = "lower" if METRICS[curve["metric"]][2] < 0 else "higher"
    body.append([f"{curve['variant']} {direction} (better)"] + ([""] if T is not None else [])
                + [f"{b} of {n}" for b, n in zip(curve["better"], curve["counted"])])
    return header, body


def _signed(x: float) -> str:
    return ("+" if x > 0 else "") + _num(x)


def _md_table(header: list[str], body: list[list[str]]) -> str:
    esc = (lambda c: str(c).replace("|", "\\|"))
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in body]
    return "\n".join(lines)


def provenance_text(cfg: dict[str, Any]) -> list[str]:
    lines = []
    for m in cfg["metrics"]:
        if m in cfg["refused"]:
            continue
        facts = cfg["provenance"].get(m) or {}
        if facts:
            lines.append(f"{METRICS[m][0]}: " + "; ".join(f"{k} {str(v)[:40]}" for k, v in facts.items()))
    return lines


def source_text(source: dict[str, Any]) -> str:
    if source.get("kind") == "mlflow":
        what = f"experiment {source['experiment']!r}" if source.get("experiment") else \
            f"runs {', '.join(source.get('runs') or [])}"
        return f"MLflow {source['tracking_uri']}, {what}"
    return f"run directories under {source.get('runs_dir')}"


def format_markdown(report: dict[str, Any]) -> str:
    out = [f"Source: {source_text(report['source'])}"]
    for note in report["notes"]:
        out.append(f"Note: {note}")
    for cfg in report["configs"]:
        out += ["", f"## {cfg['config']} ({cfg['family'] or '?'})", "", _md_table(*table_columns(cfg))]
        if cfg["paired"]:
            out += ["", "Paired by seed (variant − reference of the same seed, width and schedule):", "",
                    _md_table(*paired_columns(cfg))]
        for curve in cfg.get("curves", []):
            out += ["", curve_caption(curve), "", _md_table(*curve_columns(curve))]
        for msg in cfg["refused"].values():
            out += ["", f"REFUSED {msg}"]
        prov = provenance_text(cfg)
        if prov:
            out += ["", "How the metrics were computed (equal for every run in the column):"]
            out += [f"- {line}" for line in prov]
        for note in cfg["notes"]:
            out.append(f"Note: {note}")
    return "\n".join(out) + "\n"


CSV_FIELDS = ["kind", "config", "label", "method", "ch_mul", "lambda", "dgl_interval", "preset", "T_kimg",
              "S_kimg", "params_G", "macs_G_paper", "macs_G_fvcore", "metric", "n", "seeds", "values", "mean",
              "std", "ci_low", "ci_high", "reading", "refused", "kimg"]


def format_csv(report: dict[str, Any]) -> str:
    """Long format, raw values (KID not scaled): one line per (row, metric) and per paired comparison, and with
    curves one per (comparison, seed, evaluation) whose ``values`` are "variant;reference"."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for cfg in report["configs"]:
        for r in cfg["rows"]:
            base = {"config": cfg["config"], "label": r["label"], "method": r["method"], "ch_mul": r["ch_mul"],
                    "lambda": r["lambda"], "dgl_interval": r["dgl_interval"], "preset": r["preset"],
                    "T_kimg": r["T_kimg"], "S_kimg": r["S_kimg"], "params_G": r["params_G"],
                    "macs_G_paper": r["macs_G_paper"], "macs_G_fvcore": r["macs_G_fvcore"]}
            if not r["metrics"]:
                w.writerow({**base, "kind": "size", "seeds": ";".join(map(str, r["seeds"]))})
            for m, cell in r["metrics"].items():
                refused = m in cfg["refused"]
                w.writerow({**base, "kind": "quality", "metric": m, "n": cell["n"],
                            "seeds": ";".join(cell["values"]),
                            "values": "" if refused else ";".join(repr(v) for v in cell["values"].values()),
                            "mean": "" if refused else repr(cell["mean"]),
                            "std": "" if refused or cell["std"] is None else repr(cell["std"]),
                            "refused": cfg["refused"].get(m, "")})
        for p in cfg["paired"]:
            w.writerow({"kind": "paired", "config": cfg["config"], "label": f"{p['variant']} - {p['baseline']}",
                        "ch_mul": p["ch_mul"], "metric": p["metric"], "n": p["n"],
                        "seeds": ";".join(map(str, p["seeds"])),
                        "values": ";".join(repr(d) for d in p["differences"].values()), "mean": repr(p["mean"]),
                        "std": "" if p["std"] is None else repr(p["std"]),
                        "ci_low": "" if p["ci"] is None else repr(p["ci"][0]),
                        "ci_high": "" if p["ci"] is None else repr(p["ci"][1]), "reading": p["reading"]})
        for c in cfg.get("curves", []):  # one line per (evaluation, seed): the variant's value, then the reference's
            for seed, d in c["seeds"].items():
                for kimg, ours, theirs in zip(c["kimg"], d["variant"], d["baseline"]):
                    w.writerow({"kind": "curve", "config": cfg["config"], "label": f"{c['variant']} / {c['baseline']}",
                                "ch_mul": c["ch_mul"], "metric": c["metric"], "T_kimg": c["T_kimg"], "seeds": seed,
                                "kimg": repr(kimg), "values": ";".join("" if v is None else repr(v)
                                                                      for v in (ours, theirs))})
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", default=None,
                        help="a registry entry: compare its published widths (as `zoo compare NAME` always did)")
    parser.add_argument("--version", default=None,
                        help="registry mode: version or alias at each width (default latest)")
    parser.add_argument("--registry", default=None,
                        help="registry URI (registry mode; in run mode, where `zoo bench` latency rows are looked up)")
    parser.add_argument("--json", action="store_true", help="print JSON (same as --format json in run mode)")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--experiment", default=None, help="run mode: every run of this MLflow experiment")
    runs.add_argument("--runs", default=None, help="run mode: comma-separated MLflow run ids (or, with --runs-dir, "
                                                   "run directory names)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default $MLFLOW_TRACKING_URI, else "
                             "sqlite:///$GANZOO_HOME/study/mlruns.db); 'none' reads --runs-dir instead")
    parser.add_argument("--runs-dir", default=None,
                        help="read the run directories (summary.json, final/, log.jsonl) under DIR instead of MLflow; "
                             "with --experiment, only when MLflow is not installed or --tracking-uri is none")
    parser.add_argument("--config", default=None, help="only these configurations (comma-separated)")
    parser.add_argument("--format", choices=["md", "csv", "json", "html"], default=None,
                        help="run mode output (default md); html writes DIR/report.html (needs --out)")
    parser.add_argument("--out", default=None, help="also write the output into this directory (html: required)")
    parser.add_argument("--curves", default=None, metavar="METRIC",
                        help="run mode: also METRIC (e.g. kid) at every evaluation of stage II, seed by seed, for "
                             "each paired comparison, from the runs' logged histories")


def _split(text: Optional[str]) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def gather(args) -> tuple[list[RunRecord], dict[str, Any]]:
    """Run records and a description of where they came from, per the command line."""
    ids = _split(args.runs)
    uri = args.tracking_uri or default_tracking_uri()
    mlflow_off = uri.lower() == "none"
    if not mlflow_off and (args.experiment or ids):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            if not args.runs_dir:
                raise ZooError("reading MLflow runs needs MLflow: pip install 'dglgan-zoo[mlflow]' "
                               "(or read run directories with --runs-dir DIR)") from None
            mlflow_off = True
            print("zoo compare: MLflow is not installed: reading the run directories under "
                  f"{args.runs_dir} instead", file=sys.stderr)
    if args.runs_dir and (mlflow_off or not args.experiment):
        if args.experiment:
            print("zoo compare: note: run directories do not record their MLflow experiment; --experiment is "
                  "not applied to --runs-dir", file=sys.stderr)
        records = runs_from_dirs(args.runs_dir, ids or None)
        if not records:
            raise ZooError(f"no runs under {args.runs_dir} (no directory holds a log.jsonl or summary.json)")
        return records, {"kind": "dir", "runs_dir": str(args.runs_dir)}
    if mlflow_off:
        raise ZooError("--tracking-uri none: give --runs-dir DIR to read run directories")
    records = runs_from_mlflow(uri, args.experiment, ids or None)
    return records, {"kind": "mlflow", "tracking_uri": uri, "experiment": args.experiment, "runs": ids or None}


def run(args) -> int:
    run_mode = bool(args.experiment or args.runs or args.runs_dir)
    if not run_mode:
        if args.name is None:
            raise ZooError("give a registry NAME, or runs: --experiment NAME, --runs ID,... or --runs-dir DIR")
        if args.format not in (None, "md") or args.out or args.config or args.tracking_uri or args.curves:
            raise ZooError("--format, --out, --config, --curves and --tracking-uri apply to runs (--experiment / --runs / "
                           "--runs-dir); `zoo compare NAME` compares registry widths (use --json)")
        from zoo.registry.cli import run_compare

        return run_compare(args)
    if args.name is not None:
        raise ZooError(f"give either a registry NAME ({args.name!r}) or runs (--experiment / --runs / --runs-dir), "
                       "not both")
    fmt = args.format or ("json" if args.json else "md")
    if fmt == "html" and not args.out:
        raise ZooError("--format html writes a file: give --out DIR")
    records, source = gather(args)
    tables = latency_tables(args.runs_dir) if args.runs_dir else []
    report = build_report(records, source=source, configs=_split(args.config) or None, registry=args.registry,
                          tables=tables, curves=args.curves)
    out_dir = Path(args.out) if args.out else None
    if fmt == "html":
        from zoo.train.report import write_html

        path = write_html(report, records, out_dir)
        print(f"wrote {path}")
    else:
        text = {"md": format_markdown, "csv": format_csv,
                "json": lambda r: json.dumps(r, indent=2, sort_keys=True, default=str) + "\n"}[fmt](report)
        sys.stdout.write(text)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"compare.{fmt}").write_text(text)
    for msg in report["refusals"]:
        print(f"zoo compare: {msg}", file=sys.stderr)
    return 1 if report["refusals"] else 0
