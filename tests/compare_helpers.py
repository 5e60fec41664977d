"""A tiny study for the `zoo compare` / HTML report tests: a teacher, DGL-GAN and Baseline at ch_mul 1/2
for seeds 0 and 1 (each Baseline forked from its DGL run at T), logged to one MLflow SQLite store, with a
stub evaluator whose values are known, so the tables can be checked against numbers computed here.

Built once per test session (about 20-30 s on a busy 2-core machine) and shared by tests/test_compare.py
and tests/test_report.py: the tests only read it (a test that edits runs copies them first)."""
from __future__ import annotations

from pathlib import Path

from train_helpers import SG2, TINY_TRAIN, tiny_arch, tiny_dataset

EXPERIMENT = "tiny-study"
SEEDS = (0, 1)
# (method, seed) -> final metric values the stub evaluator reports
VALUES = {("teacher", 0): {"kid": 0.010, "precision": 0.80},
          ("dgl", 0): {"kid": 0.030, "precision": 0.60}, ("dgl", 1): {"kid": 0.026, "precision": 0.61},
          ("baseline", 0): {"kid": 0.035, "precision": 0.50}, ("baseline", 1): {"kid": 0.027, "precision": 0.50}}
# how the stub "computed" them: what `zoo compare` checks before putting values in one column
INFO = {"n": 64, "n_real": 32, "seed": 0,
        "real": {"name": "random", "sha256": "random:16:3:0:32:0", "count": 32, "resolution": 16, "channels": 3},
        "feature_net": {"net": "stub", "weights_sha256": "0" * 64, "input_resolution": 128},
        "inception": None, "truncation_psi": 1.0, "settings": {"kid_subsets": 100, "kid_subset_size": 1000}}


def stub_evaluator(method: str, seed: int):
    def evaluator(G, names, device):
        return {k: v for k, v in VALUES[(method, seed)].items() if k in names}

    evaluator.info = INFO
    return evaluator


def train_tiny(out: Path, method: str, seed: int, tracking_uri: str, ch_mul: str = "1/2", teacher=None,
               stage1_from=None, T: float = 0.016, S: float = 0.016):
    """tests/train_helpers.run_tiny with a seed, an experiment and the stub evaluator."""
    from zoo.train.config import get_train_config
    from zoo.train.loop import TrainRun, train
    from zoo.train.teacher import resolve_teacher

    arch = tiny_arch(SG2, ch_mul)
    cfg = get_train_config(SG2, "demo", ch_mul, **{**TINY_TRAIN, "stage1_kimg": T, "stage2_kimg": S, "lam": 0.1,
                                                    "metrics": ("kid", "precision")})
    ref = resolve_teacher(str(teacher), arch) if teacher is not None else None
    run = TrainRun(cfg=cfg, arch=arch, method=method, out=Path(out), dataset=tiny_dataset(SG2), teacher=ref,
                   seed=seed, tracking_uri=tracking_uri, experiment=EXPERIMENT, progress=False,
                   stage1_from=stage1_from, evaluator=stub_evaluator(method, seed))
    return train(run)


_BUILT: dict[str, Path] = {}


def tiny_study(tmp_path_factory) -> Path:
    """The study's root (runs under ROOT/runs, the store at ROOT/mlruns.db), built once per session."""
    key = str(tmp_path_factory.getbasetemp())
    if key in _BUILT:
        return _BUILT[key]
    root = tmp_path_factory.mktemp("tiny_study")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    runs = root / "runs"
    train_tiny(runs / "teacher", "teacher", 0, uri, ch_mul="1", S=0)
    for seed in SEEDS:
        dgl = runs / "1_2" / f"dgl-s{seed}"
        train_tiny(dgl, "dgl", seed, uri, teacher=runs / "teacher" / "final")
        train_tiny(runs / "1_2" / f"baseline-s{seed}", "baseline", seed, uri, stage1_from=dgl)
    _BUILT[key] = root
    return root
