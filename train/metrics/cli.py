"""``zoo eval``: sample-quality metrics of a generator (checkpoint) or an image folder against a dataset.

    zoo eval --real data/emoji-portrait-64 --fake runs/teacher/final --metrics kid,pr,swd --n 2048 --json
    zoo eval --real data/emoji-groups-32 --fake runs/biggan/final --metrics kid,cc
    GANZOO_INCEPTION=~/inception-2015-12-05.pt zoo eval --real ... --fake ... --metrics fid,is --n 50000
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from zoo.train.metrics.evaluation import DEFAULT_METRICS, METRICS

    parser.add_argument("--real", required=True, help="dataset directory (zoo data build / import)")
    parser.add_argument("--fake", required=True,
                        help="checkpoint directory (its EMA generator is sampled), dataset directory, "
                             "image folder or zip")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                        help="comma-separated: " + "; ".join(f"{k} = {v}" for k, v in METRICS.items()))
    parser.add_argument("--n", type=int, default=2048, help="fake images (default 2048)")
    parser.add_argument("--n-real", default=None,
                        help="real images (default min(n, dataset size); 'all' = the whole dataset)")
    parser.add_argument("--seed", type=int, default=0, help="fixes z, labels, real subset, subsets, patches")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--truncation-psi", type=float, default=1.0)
    parser.add_argument("--inception", default=None,
                        help="TorchScript Inception weights (inception-2015-12-05.pt) for fid/is; default "
                             "$GANZOO_INCEPTION; never downloaded")
    parser.add_argument("--feature-res", type=int, default=128, help="EfficientNet-Lite0 input size (default 128)")
    parser.add_argument("--no-cache", action="store_true", help="recompute real-data features")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from zoo.errors import ZooError

    from zoo.train.metrics.evaluation import MetricSettings, evaluate, format_result

    n_real = None
    if args.n_real is not None:
        if args.n_real == "all":
            n_real = 1 << 62
        else:
            try:
                n_real = int(args.n_real)
            except ValueError:
                raise ZooError(f"--n-real must be an integer or 'all', got {args.n_real!r}") from None
    result = evaluate(args.fake, args.real, args.metrics, n=args.n, n_real=n_real, seed=args.seed,
                      batch_size=args.batch_size, device=args.device, truncation_psi=args.truncation_psi,
                      inception=args.inception, settings=MetricSettings(feature_res=args.feature_res),
                      use_cache=not args.no_cache, progress=not args.quiet)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(format_result(result))
    return 0
