"""The HTTP API of ``zoo serve``: any zoo generator at any width, batched, measured, for many users at once.

Routes (every error is a JSON body ``{"error": ...}``, never a traceback or a server path):

* ``GET /``                    a page: the teacher and every width side by side for the same seeds.
* ``GET /v1/models``           every servable variant: params, MACs, quality metrics, latency rows.
* ``POST /v1/generate``        JSON ``{model, ch_mul | max_latency_ms, version?, seeds? | z?, class?,
  truncation_psi?, noise_mode?, format: png|jpeg|npy}`` -> the image(s) (a grid for several; NPY: uint8
  NHWC).  Headers: ``X-Ganzoo-Model``, ``-Ch-Mul``, ``-Version``, ``-Batch-Size`` (images in the forward it
  ran in), ``-Batch-Requests``, ``-Queue-Ms``, ``-Compute-Ms``, ``-Latency-Ms``, ``-Speedup`` (measured, with
  ``-Speedup-Basis``) and, for a latency budget, ``-Selection``.  PNGs carry their provenance in text
  chunks (``ganzoo.model``, ``ganzoo.version``, ``ganzoo.seeds``, ``ganzoo.truncation_psi``, ...).
* ``GET /v1/generate?model=..&ch_mul=..&seeds=0-3&...``  the same as a link.
* ``GET /healthz`` (liveness: answers while models load), ``GET /readyz`` (catalogue read, warm-up done),
  ``GET /metrics`` (Prometheus).
* Kept from the first version: ``GET /models``, ``GET /generate?model=&ch_mul=&seed=&n=&truncation=&class=``.

Only registry entries and checkpoints pinned at start are servable; a request never names a path.
Inference, loading, registry reads and encoding run in worker threads, never on the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from zoo.serve.catalog import Catalog, Variant
from zoo.serve.core import (FORMATS, NOISE_MODES, Job, Problem, Request, ascii_header, parse_budget, parse_choice,
                        parse_generate, parse_json, parse_labels, parse_model, parse_psi, parse_seed_text,
                        parse_version, parse_width, short)
from zoo.serve.engine import LocalEngine, error_id
from zoo.serve.metrics import Metrics
from zoo.errors import ZooError, require
from zoo.sample import MAX_SEED

try:  # route annotations are resolved from this module's globals (``from __future__ import annotations``)
    from starlette.requests import Request as HTTPRequest
except ImportError:  # without the serve extra create_app says which extra to install
    HTTPRequest = Any

log = logging.getLogger("serve")

MAX_IMAGES_PER_REQUEST = 64
MAX_BODY_BYTES = 2 << 20


def parse_warm(items) -> list[tuple[str, str | None, str | None]]:
    """``--warm MODEL[:CH_MUL[:VERSION]]`` (repeatable; MODEL alone: every width) -> (model, ch, version)."""
    out = []
    for item in items or []:
        if isinstance(item, tuple):
            out.append(item)
            continue
        model, _, rest = str(item).partition(":")
        ch, _, version = rest.partition(":")
        out.append((model, parse_width(ch) if ch else None, version or None))
    return out


class Server:
    """State shared by the routes: catalogue, engine, metrics, limits, calibration rows."""

    def __init__(self, catalog: Catalog, engine, metrics: Metrics, device: str, max_images: int,
                 max_body_bytes: int, warm: list, freeze_gc: bool = False):
        from zoo.environment import hardware

        self.catalog, self.engine, self.metrics = catalog, engine, metrics
        self.max_images, self.max_body_bytes = max_images, max_body_bytes
        self.fingerprint = hardware(device)["fingerprint"]
        self.warm_list, self.warm_done, self.warm_errors = parse_warm(warm), False, []
        self._refresh: asyncio.Future | None = None
        self._registry_executor = None
        self._calibration: tuple[float, dict] | None = None
        self._rows: dict[str, tuple[int, dict, list]] = {}
        self.freeze_gc = freeze_gc

    # ------------------------------------------------------------------ catalogue
    async def refresh_catalog(self, wait: bool) -> None:
        """Re-read the registry index in a thread; ``wait``: until it is read (else in the background)."""
        from concurrent.futures import ThreadPoolExecutor

        if self._refresh is None or self._refresh.done():
            if self._registry_executor is None:
                self._registry_executor = ThreadPoolExecutor(1, thread_name_prefix="ganzoo-registry")
            self._refresh = asyncio.get_running_loop().run_in_executor(self._registry_executor, self.catalog.refresh)
        if wait:
            await asyncio.shield(self._refresh)

    async def find(self, model: str, ch_mul: str, version: str | None) -> Variant:
        await self._fresh()
        try:
            return self.catalog.find(model, ch_mul, version)
        except Problem:
            if self.catalog.refreshed_at is not None and time.monotonic() - self.catalog.refreshed_at < 2:
                raise
            await self.refresh_catalog(wait=True)  # published a moment ago?
            return self.catalog.find(model, ch_mul, version)

    async def _fresh(self) -> None:
        if self.catalog.refreshed_at is None:
            await self.refresh_catalog(wait=True)
        elif self.catalog.stale():
            await self.refresh_catalog(wait=False)

    async def calibration(self) -> dict:
        """This machine's calibration rows (``zoo bench --calibrate``), re-read at most every 30 s."""
        from zoo.latency import read_calibration

        now = time.monotonic()
        if self._calibration is None or now - self._calibration[0] > 30:
            try:
                rows = await asyncio.to_thread(read_calibration, self.fingerprint)
            except ZooError as exc:
                log.warning("calibration cache not read: %s", exc)
                rows = {}
            self._calibration = (now, rows)
        return self._calibration[1]

    async def rows(self, variant: Variant) -> list:
        """The variant's latency rows: its own and this machine's calibration rows (cached per snapshot)."""
        from zoo.latency import parse_rows

        calibration = await self.calibration()
        cached = self._rows.get(variant.key)
        if cached is not None and cached[0] == id(calibration) and cached[1] is variant.metadata:
            return cached[2]
        cal = calibration.get(variant.config_sha256) or {}
        rows = parse_rows(variant.metadata.get("latency")) + list(cal.get("rows", []))
        self._rows[variant.key] = (id(calibration), variant.metadata, rows)
        return rows

    # ------------------------------------------------------------------ selection
    async def select(self, req: Request) -> tuple[Variant, Any]:
        from zoo.latency import Candidate, select

        await self._fresh()
        try:
            widths = self.catalog.widths(req.model, req.version)
        except Problem:
            await self.refresh_catalog(wait=True)
            widths = self.catalog.widths(req.model, req.version)
        candidates = [Candidate(v.model, v.ch_mul, v.version, v.metadata, v.config_sha256) for v in widths]
        try:
            chosen = select(candidates, req.max_latency_ms, self.fingerprint, "eager", "fp32", req.job.n,
                            await self.calibration())
        except ZooError as exc:
            raise Problem(422, str(exc)) from None
        return widths[candidates.index(chosen.candidate)], chosen

    # ------------------------------------------------------------------ one request
    async def generate(self, req: Request):
        from fastapi.responses import Response

        started = time.perf_counter()
        label = "none"
        try:
            selection = None
            if req.max_latency_ms is not None:
                variant, selection = await self.select(req)
            else:
                variant = await self.find(req.model, req.ch_mul, req.version)
            label = variant.key
            body, media, info = await self.engine.generate(variant, req.job)
            headers = await self.headers(variant, info, selection, started)
        except Problem as problem:
            self.metrics.request(label, problem.status)
            return problem_response(problem)
        self.metrics.request(label, 200, time.perf_counter() - started)
        return Response(body, media_type=media, headers=headers)

    async def headers(self, variant: Variant, info, selection, started: float) -> dict[str, str]:
        from zoo.latency import speedup_row

        out = {"X-Ganzoo-Model": variant.model, "X-Ganzoo-Ch-Mul": variant.ch_mul,
               "X-Ganzoo-Version": variant.version or "pinned", "X-Ganzoo-Batch-Size": str(info.images),
               "X-Ganzoo-Batch-Requests": str(info.requests), "X-Ganzoo-Queue-Ms": f"{info.queue_ms:.1f}",
               "X-Ganzoo-Compute-Ms": f"{info.compute_ms:.1f}",
               "X-Ganzoo-Latency-Ms": f"{(time.perf_counter() - started) * 1000:.1f}",
               "Cache-Control": "no-store"}
        row = speedup_row(await self.rows(variant), self.fingerprint, info.images)
        if row is not None:
            out["X-Ganzoo-Speedup"] = f"{row.speedup:.2f}"
            out["X-Ganzoo-Speedup-Basis"] = ascii_header(
                f"batch {row.batch}, {row.backend}, {row.dtype}, "
                f"measured on {row.fingerprint or 'an unrecorded machine'}")
        if selection is not None:
            out["X-Ganzoo-Selection"] = ascii_header(
                f"{selection.candidate.label}: {selection.row.ms:.2f} ms measured at batch {selection.row.batch} "
                f"fits {selection.max_latency_ms:g} ms; " + selection.reason.split("; its latency")[0], 600)
        return {k: ascii_header(v, 600) for k, v in out.items()}

    # ------------------------------------------------------------------ listing
    async def models(self) -> dict[str, Any]:
        from zoo.latency import pick_row, speedup_row

        await self._fresh()
        out = []
        for variant in self.catalog.variants():
            item = variant.public()
            rows = await self.rows(variant)
            item["latency"] = [r.to_dict() for r in rows]
            here = pick_row(rows, self.fingerprint, "eager", "fp32", 1)
            speed = speedup_row(rows, self.fingerprint, 1)
            item["here"] = {"ms_batch1": here.ms if here else None, "batch": here.batch if here else None,
                            "speedup": speed.speedup if speed else None,
                            "speedup_measured_here": bool(speed and speed.fingerprint == self.fingerprint)}
            out.append(item)
        return {"models": out, "fingerprint": self.fingerprint,
                "limits": {"max_images": self.max_images, "max_body_bytes": self.max_body_bytes,
                           "max_seed": MAX_SEED, "formats": list(FORMATS), "noise_modes": list(NOISE_MODES)}}

    # ------------------------------------------------------------------ start-up
    async def start(self) -> None:
        try:
            await self.refresh_catalog(wait=True)
            for model, ch, version in self.warm_list:
                try:
                    targets = ([await self.find(model, ch, version)] if ch else self.catalog.widths(model, version))
                    for variant in targets:
                        await self.engine.warm(variant)
                except (Problem, ZooError) as exc:
                    message = exc.message if isinstance(exc, Problem) else str(exc)
                    self.warm_errors.append(f"{model}: {message}")
                    log.warning("warm-up of %s failed: %s", model, message)
            if self.freeze_gc:
                # what exists now (torch, the app, loaded models) lives as long as the process: keep it out of
                # the collector's full passes, which otherwise pause requests (docs/serving.md)
                import gc

                gc.collect()
                gc.freeze()
        finally:
            self.warm_done = True

    def ready(self) -> tuple[bool, dict[str, Any]]:
        status = {"catalog_read": self.catalog.refreshed_at is not None, "registry_error": self.catalog.error,
                  "warm_up_done": self.warm_done, "warm_up_errors": self.warm_errors,
                  "variants": len(self.catalog.variants()), **self.engine.status()}
        return status["catalog_read"] and self.warm_done, status


def problem_response(problem: Problem):
    from fastapi.responses import JSONResponse

    headers = {"Retry-After": "1"} if problem.status == 503 else None
    return JSONResponse(status_code=problem.status, content=problem.body(), headers=headers)


async def read_body(request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it exceeds ``limit`` bytes (never buffered beyond)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Problem(413, f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(checkpoints=None, registry: Any = None, capacity: int = 4, device: str = "cpu", *,
               max_batch: int = 16, max_wait_ms: float = 5.0, workers: int = 1, max_queue: int = 1024,
               memory_budget_mb: float = 4096, max_images: int = MAX_IMAGES_PER_REQUEST,
               max_body_bytes: int = MAX_BODY_BYTES, warm=(), refresh_s: float = 30.0, engine=None,
               freeze_gc: bool = False):
    """The FastAPI application (needs the ``serve`` extra).

    ``checkpoints``: pinned checkpoint directories, ``{name: dir}`` or ``[(name, dir), ...]`` (a name may
    be pinned at several widths); ``registry``: a registry URI, None for the default chain, False for
    none.  ``max_batch`` images / ``max_wait_ms`` bound dynamic batching (``max_batch=1``: off);
    ``workers`` inference threads; ``max_queue`` images may wait; ``capacity`` variants and
    ``memory_budget_mb`` of weights stay loaded (LRU); ``max_images`` per request; ``warm``: variants
    loaded and run at start (``"model"``, ``"model:1/2"``, ``"model:1/2:stable"``).  ``engine``
    replaces the in-process engine (``serve.ray_app`` passes one that calls Ray Serve deployments).
    ``freeze_gc``: after warm-up, ``gc.freeze()`` what exists (``zoo serve`` does; off in-process)."""
    fastapi = require("fastapi", "serve", "the HTTP server")
    from contextlib import asynccontextmanager

    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    if not 1 <= max_images <= 4096:
        raise ZooError(f"max_images must be in [1, 4096], got {max_images}")
    catalog = Catalog(checkpoints, registry, refresh_s)
    metrics = Metrics()
    if engine is None:
        engine = LocalEngine(device, capacity, memory_budget_mb, max_batch, max_wait_ms, workers, max_queue, metrics)
    server = Server(catalog, engine, metrics, device, max_images, max_body_bytes, list(warm), freeze_gc)

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(server.start())  # health routes answer while this runs
        try:
            yield
        finally:
            task.cancel()
            if hasattr(engine, "close"):
                engine.close()

    app = fastapi.FastAPI(title="ganzoo", description="DGL-GAN compressed generators", lifespan=lifespan,
                          docs_url="/docs", redoc_url=None)
    app.state.server, app.state.cache, app.state.engine, app.state.catalog = server, engine, engine, catalog

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc: RequestValidationError):
        # FastAPI's own 422 (a missing or non-numeric parameter) in this API's error shape; ``detail`` kept
        # for clients of FastAPI's default body
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
                             for e in exc.errors())
        detail = [{k: e.get(k) for k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"error": f"invalid request: {problems}"[:500],
                                                      "detail": jsonable_encoder(detail)})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return JSONResponse(status_code=exc.status_code, content={"error": str(exc.detail)[:300]},
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        eid = error_id()
        log.error("unhandled error on %s [error id %s]", request.url.path, eid, exc_info=exc)
        return JSONResponse(status_code=500, content={"error": f"internal error (error id {eid})", "error_id": eid})

    @app.get("/", response_class=HTMLResponse)
    async def page():
        from zoo.serve.page import PAGE

        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        ready, status = server.ready()
        return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, **status})

    @app.get("/metrics")
    async def metrics_route():
        if not metrics.enabled:
            return JSONResponse(status_code=501, content={"error": "metrics need prometheus_client: "
                                                                   "pip install 'dglgan-zoo[serve]'"})
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def models_v1():
        return await server.models()

    @app.get("/models")
    async def models_legacy():
        return {"models": (await server.models())["models"]}

    @app.post("/v1/generate")
    async def generate_post(request: HTTPRequest):
        try:
            data = parse_json(await read_body(request, server.max_body_bytes))
            req = parse_generate(data, server.max_images)
        except Problem as problem:
            metrics.request("none", problem.status)
            return problem_response(problem)
        return await server.generate(req)

    @app.get("/v1/generate")
    async def generate_get(model: str | None = None, ch_mul: str | None = None, max_latency_ms: str | None = None,
                           version: str | None = None, seeds: str | None = None, truncation_psi: str | None = None,
                           label: str | None = fastapi.Query(None, alias="class"), noise_mode: str = "const",
                           format: str = "png"):
        try:
            if model is None:
                raise Problem(400, "model is required (GET /v1/models lists them)")
            if ch_mul is not None and max_latency_ms is not None:
                raise Problem(400, "give either ch_mul or max_latency_ms, not both")
            budget = parse_budget(_float(max_latency_ms, "max_latency_ms")) if max_latency_ms is not None else None
            job = Job(seeds=parse_seed_text(seeds, server.max_images) if seeds is not None else [0],
                      psi=parse_psi(truncation_psi) if truncation_psi is not None else 1.0,
                      noise_mode=parse_choice(noise_mode, "noise_mode", NOISE_MODES),
                      format=parse_choice("jpeg" if format == "jpg" else format, "format", tuple(FORMATS)))
            job.labels = parse_labels(_int_text(label, "class"), job.n) if label is not None else None
            job.label_given = job.labels is not None
            req = Request(parse_model(model), parse_width(ch_mul) if ch_mul is not None else
                          (None if budget is not None else "1"), budget, parse_version(version), job)
        except Problem as problem:
            metrics.request("none", problem.status)
            return problem_response(problem)
        return await server.generate(req)

    @app.get("/generate")
    async def generate_legacy(model: str, ch_mul: str = "1", version: str | None = None, seed: int = 0, n: int = 1,
                              truncation: float = 1.0, label: int | None = fastapi.Query(None, alias="class"),
                              format: str = "png"):
        try:
            width = parse_width(ch_mul)
            if not 1 <= n <= server.max_images:
                raise Problem(400, f"n must be in [1, {server.max_images}], got {n}")
            if seed < 0 or format not in FORMATS:
                raise Problem(400, f"seed must be >= 0 and format one of {', '.join(FORMATS)}")
            if seed + n - 1 > MAX_SEED:
                raise Problem(400, f"seeds seed .. seed+n-1 must be in [0, {MAX_SEED}], got seed={seed!r:.40}, n={n}")
            job = Job(seeds=list(range(seed, seed + n)), psi=parse_psi(truncation), format=format)
            if label is not None:
                if not 0 <= label < 2**31:
                    raise Problem(400, f"class must be a small non-negative integer, got {short(label)}")
                job.labels, job.label_given = [label] * n, True
            req = Request(parse_model(model), width, None, parse_version(version), job)
        except Problem as problem:
            metrics.request("none", problem.status)
            return problem_response(problem)
        return await server.generate(req)

    return app


def _float(text: str, what: str) -> float:
    try:
        return float(text[:100])
    except ValueError:
        raise Problem(400, f"{what} must be a number, got {short(text)}") from None


def _int_text(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 12:
        raise Problem(400, f"{what} must be a non-negative integer, got {short(text)}")
    return int(text)
