"""``zoo train``: a teacher, a DGL-GAN student, or a baseline student (Algorithm 1 of the paper).

    zoo train --config stylegan2-emoji --ch-mul 1   --stage2-kimg 0 --out runs/teacher       # teacher
    zoo train --config stylegan2-emoji --ch-mul 1/2 --teacher runs/teacher/final --out runs/dgl
    zoo train --config stylegan2-emoji --ch-mul 1/2 --baseline --out runs/base               # lambda = 0
    zoo train ... --resume                                                                   # continue
    torchrun --standalone --nproc-per-node 8 -m zoo.cli train ...                            # data parallel

Every input is checked (configuration, width, teacher family / resolution / classes / width, files,
dataset, output directory) before any training starts.  See docs/training.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from zoo.errors import ZooError

# Bounds of the numeric flags, checked before anything is built.  Past them a value is a typo or an
# attack, not a run: kimg beyond 1e9 (10**12 images, ~3,500x the longest run of the paper, the 282,624-kimg
# BigGAN teacher) and non-finite values turn into OverflowErrors in int(kimg * 1000) mid-training; lambda
# is 0.1 in the paper (1000x that already makes the teacher term swamp Adv(G, D)); batch sizes and
# intervals beyond 2**20 exhaust memory or never fire; seeds feed numpy's SeedSequence and torch's
# manual_seed, which take non-negative 64-bit values.
MAX_KIMG = 1e9
MAX_LAMBDA = 1e3
MAX_COUNT = 2**20
MAX_SEED = 2**63 - 1


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _check_number(flag: str, value, lo: float, hi: float, integer: bool = False):
    """``value`` unchanged when it is None or a finite number (an int if ``integer``) in [lo, hi]; else a
    one-line ZooError."""
    if value is None:
        return None
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or (isinstance(value, float) and not
                                                                    math.isfinite(value)) or not lo <= value <= hi:
        what = "an integer" if integer else "a finite number"
        raise ZooError(f"{flag} must be {what} in [{_num(lo)}, {_num(hi)}], got {value!r:.80}")
    return value


def check_numeric_args(args) -> None:
    """Every numeric flag of ``zoo train`` in range (nan, inf and absurd values are one-line errors)."""
    for flag, value in (("--stage1-kimg", args.stage1_kimg), ("--stop-at-kimg", args.stop_at_kimg)):
        _check_number(flag, value, 0, MAX_KIMG)
    _check_number("--lambda", args.lam, 0, MAX_LAMBDA)
    for flag, value in (("--batch", args.batch), ("--batch-gpu", args.batch_gpu),
                        ("--dgl-interval", args.dgl_interval)):
        _check_number(flag, value, 1, MAX_COUNT, integer=True)
    _check_number("--seed", args.seed, 0, MAX_SEED, integer=True)


def check_config_numbers(cfg) -> None:
    """No setting of the final training config (flags and ``--set`` values alike) is nan or infinite, and
    the schedule fits MAX_KIMG."""
    def walk(name, value):
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(f"{name}.{f.name}", getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                walk(f"{name}[{i}]", v)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ZooError(f"training setting {name} must be finite, got {value!r}")

    for f in dataclasses.fields(cfg):
        walk(f.name, getattr(cfg, f.name))
    for name in ("stage1_kimg", "stage2_kimg", "teacher_kimg"):
        _check_number(f"training setting {name}", getattr(cfg, name), 0, MAX_KIMG)
    _check_number("training setting divergence.max_kimg", cfg.divergence.max_kimg, 0, MAX_KIMG)
    _check_number("training setting lam", cfg.lam, 0, MAX_LAMBDA)
    for name in ("batch", "batch_gpu", "dgl_interval"):
        _check_number(f"training setting {name}", getattr(cfg, name), 1, MAX_COUNT, integer=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from zoo.train.config import PRESETS

    p = parser
    p.add_argument("--config", required=True, help="named configuration (zoo stats --list), e.g. stylegan2-emoji")
    p.add_argument("--ch-mul", default="1", help="student width: 1, 1/2, 1/3, 1/4, 1/8 (default 1)")
    p.add_argument("--teacher", default=None,
                   help="full-width teacher: checkpoint directory (e.g. RUN/final) or registry entry NAME[@version]")
    p.add_argument("--out", required=True, help="run directory (final/, state/, log.jsonl, images/, summary.json)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="settings preset (default: paper for the paper's targets, study for embedded configs)")
    p.add_argument("--stage1-kimg", type=float, default=None, help="T: stage I length in kimg")
    p.add_argument("--stage2-kimg", default=None,
                   help="S: stage II length in kimg, or 'divergence' (until the watched metric diverges)")
    p.add_argument("--lambda", dest="lam", type=float, default=None, help="weight of Adv(G, D_bar) (default 0.1)")
    p.add_argument("--dgl-interval", type=int, default=None, metavar="K",
                   help="lazy teacher term: Adv(G, D_bar) every K-th G step, weighted lambda*K (default 1 = paper)")
    p.add_argument("--baseline", action="store_true",
                   help="same student and schedule with lambda = 0 (a teacher, if given, is only monitored)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest state")
    p.add_argument("--stage1-from", default=None, metavar="RUN",
                   help="start from another run's stage-I state (RUN/state_stage1; same settings up to T)")
    p.add_argument("--data", default=None,
                   help="dataset directory (default for embedded configs: data/<name> as `zoo data build` writes "
                        "it), or 'random[:N]' for N random images (smoke tests)")
    p.add_argument("--batch", type=int, default=None, help="global batch size")
    p.add_argument("--batch-gpu", type=int, default=None, help="micro-batch per process (gradient accumulation)")
    p.add_argument("--metrics", default=None, help="comma-separated metrics to evaluate, or 'none'")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="autocast precision of the main phases on GPU (default fp32)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default sqlite:///<out parent>/mlruns.db; 'none' = log.jsonl only)")
    p.add_argument("--experiment", default=None, help="MLflow experiment name (default: the configuration)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training setting (docs/training.md lists them), e.g. --set tick_kimg=1")
    p.add_argument("--arch", dest="arch", action="append", default=[], metavar="KEY=VALUE",
                   help="override an architecture field (experiments and tests), e.g. --arch resolution=32")
    p.add_argument("--stop-at-kimg", type=float, default=None,
                   help="save the state and exit at this kimg (for time-limited jobs; continue with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per tick instead)")


def _float_or_divergence(text: str | None):
    if text is None:
        return None
    if text.strip().lower() in ("divergence", "until-divergence", "none"):
        return "divergence"
    try:
        return float(text)
    except ValueError:
        raise ZooError(f"--stage2-kimg must be a number of kimg or 'divergence', got {text!r}") from None


# where `zoo data build` puts each embedded configuration's dataset (its default --out), and how to build it
def load_data(data: str | None, config: str, arch):
    """The dataset of a run: a built dataset directory (default: the catalogue entry's ``default_data``),
    or ``random[:N]``."""
    from zoo.models import get_spec
    from zoo.train.teacher import num_classes

    if data is None:
        default = get_spec(config).default_data
        if default is None:
            raise ZooError(f"--data is required for {config} (build or import a dataset with `zoo data`)")
        data, build = default
        if not Path(data).exists():
            raise ZooError(f"{config} trains on {data}, which does not exist yet: run `{build}` (or pass --data)")
    if data == "random" or data.startswith("random:"):
        from zoo.train.sources import RandomImages

        n = int(data.split(":", 1)[1]) if ":" in data else 256
        return RandomImages(arch.resolution, arch.img_channels, num_classes(arch), n=n)
    if not Path(data).exists():
        raise ZooError(f"--data {data}: no such dataset (build it with `zoo data build ...`)")
    try:
        from zoo.train.data import load_dataset
    except ImportError:
        raise ZooError("train.data is not available to load datasets; use --data random for a smoke test") from None
    return load_dataset(data)


def make_evaluator(names: tuple[str, ...], dataset, config: str):
    """(G_ema, names, device) -> {name: value} through train.metrics, or None when it is unavailable."""
    if not names:
        return None
    try:
        from zoo.train.metrics import evaluate
    except ImportError as exc:
        import warnings

        warnings.warn(f"metrics {', '.join(names)} skipped: train.metrics is not available ({exc})", stacklevel=2)
        return None

    def evaluator(G, metric_names, device):
        from zoo.train.metrics.evaluation import provenance

        result = evaluate(G, dataset, metrics=metric_names, device=device)
        evaluator.info = provenance(result)  # n, data sha256, feature net...: summary.json "metrics_info"
        return {name: _scalar(value) for name, value in result["metrics"].items() if _scalar(value) is not None}

    evaluator.info = None
    return evaluator


def _scalar(value):
    """A metric's headline number: a float, {'value': ...}, or the mean of a (mean, std) pair."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    return float(value) if isinstance(value, (int, float)) else None


def build_run(args):
    """Validate every input and return a ``zoo.train.loop.TrainRun`` (no training, no writes)."""
    from zoo.train.config import get_train_config, parse_assignments
    from zoo.train.loop import TrainRun, check_dataset
    from zoo.train.runlock import LOCK_FILE
    from zoo.train.state import find_state, resume_state
    from zoo.train.teacher import resolve_teacher
    from zoo.models import get_config, get_spec
    from zoo.widths import format_ch_mul, parse_ch_mul

    get_spec(args.config)
    ch_mul = format_ch_mul(parse_ch_mul(args.ch_mul))
    check_numeric_args(args)
    overrides = parse_assignments(args.settings)
    if args.stage1_kimg is not None:
        overrides["stage1_kimg"] = args.stage1_kimg
    stage2 = _float_or_divergence(args.stage2_kimg)
    if stage2 is not None:
        overrides["stage2_kimg"] = None if stage2 == "divergence" else _check_number("--stage2-kimg", stage2, 0,
                                                                                      MAX_KIMG)
    if args.lam is not None:
        if args.baseline:
            raise ZooError("--lambda and --baseline contradict each other (a baseline has lambda = 0)")
        overrides["lam"] = args.lam
    if args.dgl_interval is not None:
        overrides["dgl_interval"] = args.dgl_interval
    if args.batch is not None:
        overrides["batch"] = args.batch
    if args.batch_gpu is not None:
        overrides["batch_gpu"] = args.batch_gpu
    if args.metrics is not None:
        overrides["metrics"] = () if args.metrics.strip().lower() in ("", "none") else tuple(
            m.strip() for m in args.metrics.split(",") if m.strip())
    try:  # a --set / --arch value of the wrong type fails a comparison deep inside: say which flag
        cfg = get_train_config(args.config, args.preset, ch_mul, **overrides)
    except (TypeError, OverflowError) as exc:
        raise ZooError(f"bad --set value ({exc})") from None
    check_config_numbers(cfg)
    try:
        arch = get_config(args.config, ch_mul, **parse_assignments(args.arch))
    except (TypeError, OverflowError) as exc:
        raise ZooError(f"bad --arch value ({exc})") from None

    # which run is this: DGL student, baseline student, or teacher / plain GAN
    if args.baseline:
        method = "baseline"
    elif args.teacher is not None:
        method = "dgl"
    elif cfg.stage2_kimg == 0:
        method = "teacher" if ch_mul == "1" else "baseline"
        if method == "teacher" and args.stage1_kimg is None and "stage1_kimg" not in overrides:
            cfg = cfg.replace(stage1_kimg=cfg.teacher_kimg)
    else:
        raise ZooError("stage II of DGL-GAN needs --teacher (or pass --baseline for lambda = 0, or "
                       "--stage2-kimg 0 to train a teacher / plain GAN)")
    teacher = resolve_teacher(args.teacher, arch) if args.teacher is not None else None

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out} exists and is not a directory")
    if args.resume and args.stage1_from is None and resume_state(out) is None:
        # never silently start over: a lost or mistyped run directory must not become a fresh run at 0
        raise ZooError(f"--resume: no saved training state in {out} (start the run without --resume)")
    if not args.resume and out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        hint = "pass --resume to continue it" if find_state(out) else "choose another --out or empty it"
        raise ZooError(f"--out {out} already holds files ({hint})")
    stage1_from = Path(args.stage1_from) if args.stage1_from else None
    if stage1_from is not None and not stage1_from.is_dir():
        raise ZooError(f"--stage1-from {stage1_from}: no such run directory")

    dataset = load_data(args.data, args.config, arch)
    check_dataset(dataset, arch, args.config)
    if cfg.stage2_kimg is None and not cfg.metrics:
        raise ZooError("--stage2-kimg divergence needs a metric (--metrics fid)")
    evaluator = make_evaluator(cfg.metrics, dataset, args.config)
    if evaluator is None and cfg.stage2_kimg is None:
        raise ZooError("--stage2-kimg divergence needs train.metrics to watch a metric, and it is unavailable")
    return TrainRun(cfg=cfg, arch=arch, method=method, out=out, dataset=dataset, teacher=teacher, seed=args.seed,
                   device=args.device, precision=args.precision, tracking_uri=args.tracking_uri,
                   experiment=args.experiment, resume=args.resume, stage1_from=stage1_from, evaluator=evaluator,
                   progress=not args.no_progress, stop_kimg=args.stop_at_kimg)


def run(args) -> int:
    from zoo.train.loop import train

    run = build_run(args)
    summary = train(run)
    if summary.get("stopped_at_kimg") is not None:
        print(f"stopped at {summary['stopped_at_kimg']:g} kimg; continue with --resume --out {run.out}")
    elif summary:
        print(f"{summary['method']} {summary['config']} ch_mul={summary['ch_mul']}: {summary['kimg']:g} kimg -> "
              f"{run.out / 'final'}")
    return 0
