"""The HTTP shim: any zoo generator at any width, one image request at a time.

Routes (all errors are 4xx with a JSON body ``{"error": ...}``):

* ``GET /healthz``                           liveness.
* ``GET /models``                            what can be served: registry entries and pinned checkpoints.
* ``GET /generate?model=NAME&ch_mul=1/2``    a PNG grid (or ``format=npy``: uint8 NHWC array) of ``n`` images
  for seeds ``seed .. seed+n-1``; optional ``version``, ``truncation``, ``class`` (conditional models).
  Response headers say which model served it and its measured speedup over the full-width model
  (``X-Ganzoo-Speedup``, from the latency table ``zoo bench`` recorded in the entry's metadata).

Generators are loaded lazily into a small LRU keyed by (model, ch_mul, version).
"""
from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError, require
from zoo.sample import MAX_SEED, check_class, parse_truncation
from zoo.widths import format_ch_mul, parse_ch_mul

MAX_IMAGES_PER_REQUEST = 64


@dataclass
class Served:
    """A loaded generator and what the server says about it."""

    G: Any
    model: str
    ch_mul: str
    version: str | None
    metadata: dict


def measured_speedup(metadata: dict) -> float | None:
    """The speedup over the full-width model recorded by ``zoo bench`` (best-effort: the first
    latency row with a ``speedup`` field, preferring the largest batch)."""
    rows = metadata.get("latency") or []
    if isinstance(rows, dict):
        rows = rows.get("rows") or rows.get("results") or []
    rows = [r for r in rows if isinstance(r, dict) and r.get("speedup") is not None]
    if not rows:
        return None
    return float(max(rows, key=lambda r: r.get("batch", 0))["speedup"])


class ModelCache:
    """Resolves (model, ch_mul, version) to a loaded generator; keeps at most ``capacity`` loaded."""

    def __init__(self, checkpoints: dict[str, str] | None = None, registry: str | None = None, capacity: int = 4,
                 device: str = "cpu"):
        self.checkpoints = {k: Path(v) for k, v in (checkpoints or {}).items()}
        self.registry, self.capacity, self.device = registry, capacity, device
        self._cache: OrderedDict[tuple, Served] = OrderedDict()
        self._lock = threading.Lock()

    def available(self) -> list[dict]:
        out = []
        for name, path in self.checkpoints.items():
            from zoo.checkpoint import read_config

            _, cfg = read_config(path)
            out.append({"model": name, "ch_mul": cfg.ch_mul, "source": str(path)})
        try:
            from zoo.registry import list_entries
        except ImportError:
            return out
        for entry in list_entries(registry=self.registry) if self.registry else list_entries():
            out.append(entry if isinstance(entry, dict) else getattr(entry, "__dict__", {"entry": str(entry)}))
        return out

    def _load(self, model: str, ch_mul: str, version: str | None) -> Served:
        if model in self.checkpoints:
            from zoo.checkpoint import load_checkpoint

            ckpt = load_checkpoint(self.checkpoints[model], device=self.device, load_D=False)
            if ckpt.config.ch_mul != ch_mul:
                raise ZooError(f"model {model!r} is pinned at ch_mul={ckpt.config.ch_mul}, not {ch_mul}")
            return Served(ckpt.G_ema, model, ch_mul, None, ckpt.metadata)
        try:
            import zoo.registry as registry
        except ImportError:
            raise ZooError(f"unknown model {model!r}; served: {', '.join(self.checkpoints) or 'none'}") from None
        kwargs = {"registry": self.registry} if self.registry else {}
        G = registry.load(model, ch_mul=ch_mul, version=version, device=self.device, **kwargs)
        try:
            info = registry.info(model, ch_mul=ch_mul, version=version, **kwargs)
            metadata = info.get("metadata", info) if isinstance(info, dict) else {}
        except ZooError:
            metadata = {}
        return Served(G, model, ch_mul, version, metadata)

    def get(self, model: str, ch_mul: str, version: str | None) -> Served:
        key = (model, ch_mul, version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            served = self._load(model, ch_mul, version)
            self._cache[key] = served
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
            return served


def render(served: Served, seed: int, n: int, truncation: float, label: int | None) -> torch.Tensor:
    from zoo.images import class_inputs, seeded_latents

    G = served.G
    if G.c_dim and label is None:
        raise ZooError(f"{served.model} is class-conditional: pass class=0..{G.c_dim - 1}")
    check_class(label, G.c_dim)  # before torch sees it: class=10**30 would be an overflow (a 500)
    z = seeded_latents(G, list(range(seed, seed + n)))
    c = class_inputs(G, [label] * n) if G.c_dim else None
    with torch.inference_mode():
        return G(z, c, truncation_psi=truncation, noise_mode="const")


def create_app(checkpoints: dict[str, str] | None = None, registry: str | None = None, capacity: int = 4,
               device: str = "cpu"):
    """The FastAPI application (needs the ``serve`` extra)."""
    fastapi = require("fastapi", "serve", "the HTTP server")
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response

    app = fastapi.FastAPI(title="ganzoo", description="DGL-GAN compressed generators")
    cache = ModelCache(checkpoints, registry, capacity, device)
    app.state.cache = cache

    def error(status: int, message: str):
        return JSONResponse(status_code=status, content={"error": message})

    @app.exception_handler(RequestValidationError)
    def invalid_request(request, exc: RequestValidationError):
        # FastAPI's own 422 (a missing or non-numeric parameter) in this API's error shape; ``detail`` kept
        # for clients of FastAPI's default body
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
                             for e in exc.errors())
        return JSONResponse(status_code=422, content={"error": f"invalid request: {problems}"[:500],
                                                      "detail": jsonable_encoder(exc.errors())})

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/models")
    def models():
        return {"models": cache.available()}

    @app.get("/generate")
    def generate(model: str, ch_mul: str = "1", version: str | None = None, seed: int = 0, n: int = 1,
                 truncation: float = 1.0, label: int | None = fastapi.Query(None, alias="class"),
                 format: str = "png"):
        try:
            width = format_ch_mul(parse_ch_mul(ch_mul))
        except ValueError as exc:
            return error(400, str(exc))
        if not 1 <= n <= MAX_IMAGES_PER_REQUEST:
            return error(400, f"n must be in [1, {MAX_IMAGES_PER_REQUEST}], got {n}")
        if seed < 0 or format not in ("png", "npy"):
            return error(400, "seed must be >= 0 and format 'png' or 'npy'")
        if seed + n - 1 > MAX_SEED:
            return error(400, f"seeds seed .. seed+n-1 must be in [0, {MAX_SEED}], got seed={seed!r:.40}, n={n}")
        try:
            psi = parse_truncation(truncation)
        except ValueError as exc:
            return error(400, str(exc))
        try:
            served = cache.get(model, width, version)
        except (ZooError, ValueError, FileNotFoundError, KeyError) as exc:
            return error(404, str(exc.args[0] if isinstance(exc, KeyError) else exc))
        started = time.perf_counter()
        try:
            images = render(served, seed, n, psi, label)
        except (ZooError, ValueError) as exc:
            return error(400, str(exc))
        elapsed_ms = (time.perf_counter() - started) * 1000
        headers = {"X-Ganzoo-Model": served.model, "X-Ganzoo-Ch-Mul": served.ch_mul,
                   "X-Ganzoo-Latency-Ms": f"{elapsed_ms:.1f}"}
        speedup = measured_speedup(served.metadata)
        if speedup is not None:
            headers["X-Ganzoo-Speedup"] = f"{speedup:.2f}"
        from zoo.images import make_grid, to_uint8

        buffer = io.BytesIO()
        if format == "npy":
            np.save(buffer, to_uint8(images))
            return Response(buffer.getvalue(), media_type="application/octet-stream", headers=headers)
        from PIL import Image

        Image.fromarray(make_grid(images)).save(buffer, format="PNG", compress_level=1)
        return Response(buffer.getvalue(), media_type="image/png", headers=headers)

    return app
