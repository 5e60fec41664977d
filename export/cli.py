"""``zoo export``: a checkpoint, zoo entry or configuration -> a verified runtime artifact.

    zoo export runs/student --backend onnx --out exports/student-onnx
    zoo export stylegan2-ffhq --ch-mul 1/4 --backend compile --dynamic-batch 1:8:48 --out out/ffhq-q
    zoo export runs/student --backend tensorrt --device cuda --out exports/student-trt   # fp16 by default
"""
from __future__ import annotations

from zoo.backends import BACKENDS, get_backend
from zoo.errors import ZooError
from zoo.export.options import DTYPES, check_dtype
from zoo.runtime.base import BatchRange


def add_arguments(parser) -> None:
    parser.add_argument("source", help="checkpoint directory, zoo entry name, or configuration name (random weights)")
    parser.add_argument("--backend", required=True,
                        help="; ".join(f"{b.name}: {b.description}" for b in BACKENDS.values()))
    parser.add_argument("--out", required=True, help="artifact directory to create (model file + export.json)")
    parser.add_argument("--dtype", default=None,
                        help=f"{' or '.join(DTYPES)} (default fp32; fp16 for tensorrt)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--batch", default=None, help="static batch size N (the artifact serves only N)")
    group.add_argument("--dynamic-batch", default="1:8:64",
                       help="batch range MIN:OPT:MAX (default 1:8:64; OPT is what TensorRT tunes for)")
    parser.add_argument("--ch-mul", default="1", help="width of the zoo entry / configuration (default 1)")
    parser.add_argument("--version", default=None, help="zoo entry version or alias")
    parser.add_argument("--random-weights", action="store_true",
                        help="a configuration name builds random weights even if a zoo entry has that name")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the artifact runs (default cpu)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    parser.add_argument("--truncation-cutoff", type=int, default=None,
                        help="StyleGAN2: truncate only the first N ws (baked in; default: all layers)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")


# Export verifies the artifact by running it at its batch sizes (and TensorRT builds a profile for MAX):
# beyond this a batch is a typo that would end in an allocation failure deep inside a backend.
MAX_EXPORT_BATCH = 2**16


def parse_batch_args(batch: str | None, dynamic_batch: str | None) -> BatchRange:
    if batch is not None:
        text = str(batch).strip()
        # ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() then rejects or reads
        if not (text.isascii() and text.isdigit() and len(text) <= 6) or not 1 <= int(text) <= MAX_EXPORT_BATCH:
            raise ZooError(f"bad --batch {batch!r:.80}: give one batch size in [1, {MAX_EXPORT_BATCH}] "
                           "(or --dynamic-batch MIN:OPT:MAX)")
        return BatchRange.static(int(text))
    rng = BatchRange.parse(dynamic_batch or "1:8:64")
    if rng.max > MAX_EXPORT_BATCH:
        raise ZooError(f"bad --dynamic-batch {dynamic_batch!r:.80}: MAX must be <= {MAX_EXPORT_BATCH}")
    return rng


def run(args) -> int:
    import importlib

    from zoo.export.artifact import resolve_source
    from zoo.export.exporter import export_generator

    chosen = get_backend(args.backend)
    backend = chosen.name
    dtype = check_dtype(args.dtype or chosen.default_dtype)
    batch = parse_batch_args(args.batch, args.dynamic_batch)
    if args.truncation_cutoff is not None and not 0 <= args.truncation_cutoff <= 64:
        # a count of ws (StyleGAN2: at most 18 at 1024 px) or z chunks (BigGAN: at most 7)
        raise ZooError(f"bad --truncation-cutoff {args.truncation_cutoff}: give a layer count in [0, 64]")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise ZooError(f"bad --device {args.device!r}: use cpu or cuda")
    # fail before loading weights
    importlib.import_module(chosen.export_module).check_available(device=args.device, dtype=dtype)
    G, provenance = resolve_source(args.source, args.ch_mul, args.version, device=args.device,
                                   random_weights=args.random_weights)
    path, meta = export_generator(G, args.out, backend=backend, dtype=dtype, batch=batch, device=args.device,
                                  source=provenance, opset=args.opset, truncation_cutoff=args.truncation_cutoff,
                                  overwrite=args.overwrite)
    v = meta["verification"]
    psnr = "identical" if v["psnr_db"] is None else f"{v['psnr_db']:.1f} dB"
    rng = meta["batch"]
    print(f"wrote {path}/{meta['file']} ({meta['file_size'] / 2**20:.1f} MiB, {backend} {dtype}, "
          f"batch {rng['min']}..{rng['max']}{' (dynamic)' if rng['dynamic'] else ''})")
    print(f"verified against eager PyTorch at batch {', '.join(map(str, v['batch_sizes']))}: "
          f"max abs {v['max_abs']:.2e}, PSNR {psnr} (limits {v['thresholds']['max_abs']:g} / "
          f"{v['thresholds']['psnr_db']:g} dB)")
    return 0
