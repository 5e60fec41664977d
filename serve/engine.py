"""Running generators in one process: a model pool and dynamic batching, off the event loop.

* :class:`ModelPool`: loaded variants in an LRU bounded by a count and a memory budget (parameter and
  buffer bytes).  Each variant loads in a worker thread of its own pool; requests for a variant that is
  loading await that one load, and nothing else waits for it: there is no global lock, so a slow load
  (a slow remote registry) never blocks requests for other variants or the health routes.
* :class:`Batcher`: concurrent jobs for one (variant, truncation psi, noise mode) are grouped until
  ``max_batch`` images are waiting, the first has waited ``max_wait_ms``, or every generate request the
  server holds is already in the group (nothing else could join: a request alone never waits), then run
  as one forward in an inference thread and split back.  While every inference thread is busy, jobs keep
  queueing, so batches grow with load.  At most ``max_queue`` images wait; beyond that a request gets a 503.
* :class:`LocalEngine`: both, plus encoding (also in a thread); what ``create_app`` uses by default.

An exception inside a forward fails only the requests of that batch, with a 500 carrying an error id
(the traceback goes to the log under that id); the server keeps serving.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from zoo.serve.catalog import PINNED, Variant
from zoo.serve.core import Facts, Job, Problem, check_job, encode, facts_of, run_batch
from zoo.serve.metrics import Metrics

log = logging.getLogger("serve")


def error_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(eq=False)
class Loaded:
    variant: Variant
    G: Any
    facts: Facts
    nbytes: int
    load_s: float


def load_variant(variant: Variant, device: str = "cpu") -> Loaded:
    """Load a variant's EMA generator (blocking; files verified as always), prepared for inference by its
    family (``GANFamily.prepare``: a CPU fast path, say).  Runs in a load thread."""
    from zoo.families import family_of

    t0 = time.perf_counter()
    if variant.source == PINNED:
        from zoo.checkpoint import load_checkpoint

        G = load_checkpoint(variant.path, device=device, load_D=False).G_ema
    else:
        from zoo.registry import load_entry

        G = load_entry(variant.model, variant.ch_mul, variant.version, device=device, load_D=False,
                       registry=variant.store).G_ema
    # the checkpoint loaders give the network as trained; zoo.load prepares it, and so must this path
    G = family_of(G).prepare(G.eval())
    facts = facts_of(G)
    nbytes = sum(t.numel() * t.element_size() for t in list(G.parameters()) + list(G.buffers()))
    variant.facts.update({"family": facts.family, "resolution": facts.resolution, "c_dim": facts.c_dim,
                          "z_dim": facts.z_dim, "params_G": sum(p.numel() for p in G.parameters())})
    return Loaded(variant, G, facts, nbytes, time.perf_counter() - t0)


class ModelPool:
    """Loaded variants: an LRU of at most ``capacity`` variants and ``budget_bytes`` of weights."""

    def __init__(self, device: str = "cpu", capacity: int = 4, budget_bytes: int = 4 << 30,
                 executor: ThreadPoolExecutor | None = None, metrics: Metrics | None = None,
                 loader: Callable[[Variant, str], Loaded] = load_variant):
        self.device, self.capacity, self.budget_bytes = device, max(1, capacity), budget_bytes
        self.executor = executor or ThreadPoolExecutor(4, thread_name_prefix="ganzoo-load")
        self.metrics = metrics or Metrics()
        self.loader = loader
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}

    def loaded(self) -> list[Loaded]:
        return list(self._loaded.values())

    def loading(self) -> list[str]:
        return list(self._loading)

    def loaded_bytes(self) -> int:
        return sum(x.nbytes for x in self._loaded.values())

    async def get(self, variant: Variant) -> Loaded:
        """The loaded variant; starts its load (in a thread) or joins the one in progress."""
        key = variant.key
        hit = self._loaded.get(key)
        if hit is not None:
            self._loaded.move_to_end(key)
            return hit
        future = self._loading.get(key)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(self.executor, self.loader, variant, self.device)
            self._loading[key] = future
            future.add_done_callback(lambda f, variant=variant: self._finish(variant, f))
        try:
            return await asyncio.shield(future)
        except Problem:
            raise
        except Exception as exc:  # noqa: BLE001 - reported as a 503 with the id _finish logged
            raise Problem(503, f"could not load {variant.label} (error id {getattr(exc, 'ganzoo_error_id', '?')}); "
                               "the server log has the details", getattr(exc, "ganzoo_error_id", None)) from None

    def _finish(self, variant: Variant, future: asyncio.Future) -> None:
        key = variant.key
        self._loading.pop(key, None)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            eid = error_id()
            try:
                exc.ganzoo_error_id = eid
            except AttributeError:
                pass
            log.error("loading %s failed [error id %s]", variant.label, eid, exc_info=exc)
            self.metrics.load(key, "error")
            return
        loaded = future.result()
        self._loaded[key] = loaded
        self.metrics.load(key, "ok")
        log.info("loaded %s in %.2f s (%.1f MB)", variant.label, loaded.load_s, loaded.nbytes / 2**20)
        self._evict()

    def _evict(self) -> None:
        while len(self._loaded) > 1 and (len(self._loaded) > self.capacity or self.loaded_bytes() > self.budget_bytes):
            key, old = self._loaded.popitem(last=False)  # least recently used; a running batch keeps its own ref
            log.info("unloaded %s (LRU: %d variants, %.1f MB loaded)", old.variant.label, len(self._loaded),
                     self.loaded_bytes() / 2**20)


@dataclass
class BatchInfo:
    images: int          # images in the forward this request ran in
    requests: int        # requests in that forward
    queue_ms: float      # from arrival in the queue to the start of the forward
    compute_ms: float    # the forward


@dataclass(eq=False)
class _Item:
    job: Job
    future: asyncio.Future
    enqueued: float
    public: dict[str, Any] | None = None


def forward_and_encode(G, jobs: list[Job], psi: float, noise_mode: str, device: str,
                       publics: list[dict[str, Any]] | None) -> tuple[list[Any], float]:
    """One batched forward, then (``publics`` given) each job's images encoded, in the same worker thread:
    one hand-over between threads per batch, not per request.  Returns (outputs, forward seconds)."""
    start = time.perf_counter()
    images = run_batch(G, jobs, psi, noise_mode, device)
    forward = time.perf_counter() - start
    if publics is None:
        return images, forward
    return [encode(x, job, public) for x, job, public in zip(images, jobs, publics)], forward


class Batcher:
    """Dynamic batching per (variant, psi, noise mode); see the module docstring."""

    def __init__(self, executor: ThreadPoolExecutor, workers: int, max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_queue: int = 1024, metrics: Metrics | None = None, device: str = "cpu"):
        self.executor, self.max_batch, self.max_wait_s = executor, max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self.max_queue, self.device = max_queue, device
        self.metrics = metrics or Metrics()
        self._workers = max(1, workers)
        self._slots: asyncio.Semaphore | None = None
        self._queues: dict[tuple, deque[_Item]] = {}
        self._wake: dict[tuple, asyncio.Future | None] = {}
        self._collectors: dict[tuple, asyncio.Task] = {}
        self.depth = 0          # images waiting
        self.forwards = 0       # forwards run (also in the metrics)
        self.running = 0
        self.held = 0           # generate requests in the server (parsed, loading, queued, computing, encoding)

    def enter(self) -> None:
        self.held += 1

    def leave(self) -> None:
        """A request left the server: a waiting group may now hold every request there is."""
        self.held -= 1
        for key in self._wake:
            self._poke(key)

    def _poke(self, key: tuple) -> None:
        waiter = self._wake.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def submit(self, loaded: Loaded, job: Job, public: dict[str, Any] | None = None) -> tuple[Any, BatchInfo]:
        """Queue a job; its output (images, or (body, media type) when ``public`` is given) and batch facts."""
        if self.depth + job.n > self.max_queue:
            raise Problem(503, f"server busy: {self.depth} images are queued (at most {self.max_queue}); retry later")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._workers)
        loop = asyncio.get_running_loop()
        key = (loaded.variant.key, job.psi, job.noise_mode, public is not None)
        item = _Item(job, loop.create_future(), time.perf_counter(), public)
        self._queues.setdefault(key, deque()).append(item)
        self.depth += job.n
        if key in self._collectors:
            self._poke(key)
        else:
            self._wake[key] = None
            self._collectors[key] = asyncio.create_task(self._collect(key, loaded))
        return await item.future

    async def _collect(self, key: tuple, loaded: Loaded) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues[key]
        try:
            while queue:
                deadline = queue[0].enqueued + self.max_wait_s
                # wait for more only while other requests are in the server (one of them may join)
                while sum(i.job.n for i in queue) < self.max_batch and len(queue) < self.held:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    waiter = self._wake[key] = loop.create_future()
                    timer = loop.call_later(remaining, lambda w=waiter: w.done() or w.set_result(None))
                    await waiter
                    timer.cancel()
                    self._wake[key] = None
                await self._slots.acquire()  # while every worker is busy, more jobs join the queue
                batch, images = [], 0
                while queue and (not batch or images + queue[0].job.n <= self.max_batch):
                    item = queue.popleft()
                    batch.append(item)
                    images += item.job.n
                self.depth -= images
                asyncio.create_task(self._run(loaded, key, batch))
        finally:
            del self._collectors[key], self._wake[key]
            if not queue:
                del self._queues[key]

    async def _run(self, loaded: Loaded, key: tuple, batch: list[_Item]) -> None:
        _, psi, noise_mode, encoded = key
        jobs = [i.job for i in batch]
        start = time.perf_counter()
        self.running += 1
        try:
            outputs, forward = await asyncio.get_running_loop().run_in_executor(
                self.executor, forward_and_encode, loaded.G, jobs, psi, noise_mode, self.device,
                [i.public for i in batch] if encoded else None)
        except Exception as exc:  # noqa: BLE001 - any fault in a forward: 500 for this batch, keep serving
            eid = error_id()
            log.error("inference failed for %s, batch of %d requests [error id %s]", loaded.variant.label,
                      len(batch), eid, exc_info=exc)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(Problem(500, f"inference failed (error id {eid})", eid))
            return
        finally:
            self.running -= 1
            self._slots.release()
        self.forwards += 1
        images = sum(j.n for j in jobs)
        self.metrics.forward(loaded.variant.key, images, len(batch), forward, [start - i.enqueued for i in batch])
        for item, out in zip(batch, outputs):
            if not item.future.done():
                item.future.set_result((out, BatchInfo(images, len(batch), (start - item.enqueued) * 1000,
                                                       forward * 1000)))


class LocalEngine:
    """Generation in this process: :class:`ModelPool` + :class:`Batcher` + encoding in threads."""

    def __init__(self, device: str = "cpu", capacity: int = 4, memory_budget_mb: float = 4096, max_batch: int = 16,
                 max_wait_ms: float = 5.0, workers: int = 1, max_queue: int = 1024, metrics: Metrics | None = None):
        self.device = device
        self.metrics = metrics or Metrics()
        self.infer_executor = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ganzoo-infer")
        self.load_executor = ThreadPoolExecutor(4, thread_name_prefix="ganzoo-load")
        self.pool = ModelPool(device, capacity, int(memory_budget_mb * 2**20), self.load_executor, self.metrics)
        self.batcher = Batcher(self.infer_executor, workers, max_batch, max_wait_ms, max_queue, self.metrics, device)
        self.metrics.bind(lambda: self.batcher.depth, lambda: len(self.pool.loaded()), self.pool.loaded_bytes)
        self.settings = {"device": device, "capacity": capacity, "memory_budget_mb": memory_budget_mb,
                         "max_batch": max_batch, "max_wait_ms": max_wait_ms, "workers": workers,
                         "max_queue": max_queue}

    async def facts(self, variant: Variant) -> Facts:
        return (await self.pool.get(variant)).facts

    async def generate(self, variant: Variant, job: Job) -> tuple[bytes, str, BatchInfo]:
        self.batcher.enter()
        try:
            loaded = await self.pool.get(variant)
            check_job(job, loaded.facts)
            public = {"model": variant.model, "ch_mul": variant.ch_mul, "version": variant.version}
            (body, media), info = await self.batcher.submit(loaded, job, public)
            return body, media, info
        finally:
            self.batcher.leave()

    async def warm(self, variant: Variant) -> None:
        """Load a variant and run untimed forwards at every batch size up to ``max_batch`` (powers of two
        beyond 16): oneDNN picks and builds its kernels per shape, which made the first batch of each new
        size several times slower than the next."""
        loaded = await self.pool.get(variant)
        top = self.batcher.max_batch
        sizes = sorted({*range(1, min(top, 16) + 1), *(2 ** k for k in range(5, 13) if 2 ** k < top), top})
        loop = asyncio.get_running_loop()
        for n in sizes:
            job = check_job(Job(seeds=list(range(n))), loaded.facts)
            await loop.run_in_executor(self.infer_executor, run_batch, loaded.G, [job], 1.0, "const", self.device)

    def status(self) -> dict[str, Any]:
        return {"loaded": [x.variant.key for x in self.pool.loaded()], "loading": self.pool.loading(),
                "queue_images": self.batcher.depth, "running_batches": self.batcher.running,
                "forwards": self.batcher.forwards, "loaded_mb": round(self.pool.loaded_bytes() / 2**20, 2),
                **self.settings}

    def close(self) -> None:
        self.infer_executor.shutdown(wait=False, cancel_futures=True)
        self.load_executor.shutdown(wait=False, cancel_futures=True)
