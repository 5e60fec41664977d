"""``zoo serve``: the HTTP API (serve/app.py) on uvicorn, or on Ray Serve with ``--ray``."""
from __future__ import annotations

from zoo.errors import ZooError, require


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", default=None,
                        help="registry URI (default: the default chain); 'none' serves pinned checkpoints only")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="also serve a checkpoint directory under NAME (repeatable; one NAME may be pinned at "
                             "several widths)")
    parser.add_argument("--capacity", type=int, default=4, help="variants kept loaded (LRU, default 4)")
    parser.add_argument("--memory-budget-mb", type=float, default=4096,
                        help="weights kept loaded, in MB (LRU; default 4096)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch", type=int, default=16,
                        help="images per batched forward (default 16; 1 turns dynamic batching off)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="longest a request waits for others to batch with (default 5 ms)")
    parser.add_argument("--workers", type=int, default=1, help="inference threads (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--max-queue", type=int, default=1024, help="images that may wait; beyond: 503 (default 1024)")
    parser.add_argument("--max-images", type=int, default=64, help="images per request (default 64)")
    parser.add_argument("--max-body-kb", type=int, default=2048, help="largest request body in KiB (default 2048)")
    parser.add_argument("--warm", action="append", default=[], metavar="MODEL[:CH_MUL[:VERSION]]",
                        help="load and run once at start (repeatable; MODEL alone: every width)")
    parser.add_argument("--ray", action="store_true",
                        help="deploy on Ray Serve: a deployment per family, multiplexed by variant, @serve.batch")
    parser.add_argument("--replicas", type=int, default=1, help="--ray: replicas per family deployment")
    parser.add_argument("--ray-address", default=None, help="--ray: an existing cluster (default: start a local one)")
    parser.add_argument("--log-level", default="info")


def _check(name: str, value, lo, hi) -> None:
    if not lo <= value <= hi:
        raise ZooError(f"{name} must be in [{lo}, {hi}], got {value}")


def parse_checkpoints(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ZooError(f"--checkpoint expects NAME=DIR, got {item!r}")
        out.append((name, path))
    return out


def app_options(args) -> dict:
    """create_app keyword arguments from the command line (range-checked)."""
    import math

    _check("--port", args.port, 0, 65535)
    _check("--capacity", args.capacity, 1, 1024)
    _check("--max-batch", args.max_batch, 1, 4096)
    _check("--workers", args.workers, 1, 64)
    _check("--max-queue", args.max_queue, 1, 1 << 20)
    _check("--max-images", args.max_images, 1, 4096)
    _check("--max-body-kb", args.max_body_kb, 1, 1 << 20)
    _check("--replicas", args.replicas, 1, 1024)
    if not (math.isfinite(args.max_wait_ms) and 0 <= args.max_wait_ms <= 10_000):
        raise ZooError(f"--max-wait-ms must be in [0, 10000], got {args.max_wait_ms}")
    if not (math.isfinite(args.memory_budget_mb) and 1 <= args.memory_budget_mb <= 1 << 24):
        raise ZooError(f"--memory-budget-mb must be in [1, {1 << 24}], got {args.memory_budget_mb}")
    if args.threads is not None:
        _check("--threads", args.threads, 1, 1024)
    registry = False if args.registry in ("none", "") else args.registry
    return dict(checkpoints=parse_checkpoints(args.checkpoint), registry=registry, capacity=args.capacity,
                device=args.device, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, workers=args.workers,
                max_queue=args.max_queue, memory_budget_mb=args.memory_budget_mb, max_images=args.max_images,
                max_body_bytes=args.max_body_kb * 1024, warm=list(args.warm), freeze_gc=True)


def single_malloc_arena() -> bool:
    """Make every thread allocate from glibc's main arena when ``zoo``'s malloc tuning is on.

    The tuning (zoo.launch: MALLOC_MMAP_THRESHOLD_ and friends) keeps large freed blocks in the heap
    instead of returning them to the OS.  But threads other than the main one allocate from secondary
    arenas, whose heaps are at most 64 MiB: a larger activation is then mmapped and page-faulted on every
    forward anyway (what that cost: docs/serving.md, "malloc").  One arena for all threads
    (``mallopt(M_ARENA_MAX, 1)``, before any worker thread starts) keeps the tuning for every thread.
    Nothing happens without the tuning, with MALLOC_ARENA_MAX set, or outside glibc."""
    import ctypes
    import os

    if "MALLOC_MMAP_THRESHOLD_" not in os.environ or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        return bool(ctypes.CDLL(None).mallopt(-8, 1))  # M_ARENA_MAX
    except (AttributeError, ValueError, OSError):
        return False


def run(args) -> int:
    import logging

    options = app_options(args)
    single_malloc_arena()
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.ray:
        from zoo.serve.ray_app import run_ray

        return run_ray(options, host=args.host, port=args.port, replicas=args.replicas, address=args.ray_address,
                       threads=args.threads)
    uvicorn = require("uvicorn", "serve", "the HTTP server")
    from zoo.serve.app import create_app

    app = create_app(**options)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
