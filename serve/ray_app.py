"""``zoo serve --ray``: the same app on Ray Serve, for serving past one process or one machine.

* **Ingress** (one deployment, ``ganzoo-ingress``): the FastAPI app of :func:`serve.app.create_app`, built in
  the replica (``__serve_build_asgi_app__``), with an engine that forwards each generate call to the
  family deployment of the variant.  Routes, validation, errors, the page and the metrics of the ingress
  are exactly those of ``zoo serve``.
* **A deployment per model family** (``ganzoo-stylegan2``, ``ganzoo-biggan``): variants are multiplexed
  (``@serve.multiplexed``, model id = the variant key ``model|ch_mul|version``, an LRU of ``capacity``
  variants per replica; Ray routes requests for a variant to replicas that hold it), and calls are batched
  with ``@serve.batch`` (Ray splits batches by model id; this code groups a batch by psi and noise mode
  and runs one forward per group).  Replica settings: ``replicas`` (num_replicas), ``max_ongoing_requests``,
  ``replica_cpus`` (``ray_actor_options.num_cpus``).

Ray Serve counts ``max_batch`` in requests, not images.  The ingress's ``/metrics`` counts requests, errors
and latency; batch sizes and queueing happen in the family replicas (Ray's own metrics see those).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from zoo.serve.catalog import PINNED, Catalog
from zoo.serve.core import Job, Problem, check_job, encode, run_batch
from zoo.serve.engine import BatchInfo, error_id, load_variant
from zoo.errors import ZooError, require

log = logging.getLogger("serve")
DEFAULT_CAPACITY = 4


def _serve():
    require("ray", "ray", "zoo serve --ray")
    try:
        from ray import serve
    except ImportError as exc:
        raise ZooError(f"Ray Serve is not installed ({exc}): pip install 'dglgan-zoo[ray]'") from None
    return serve


def families(options: dict[str, Any]) -> list[str]:
    """The model families the catalogue holds (one deployment each)."""
    catalog = Catalog(options.get("checkpoints"), options.get("registry"))
    catalog.refresh()
    found = sorted({v.family for v in catalog.variants() if v.family})
    if not found:
        raise ZooError("nothing to serve: no registry entry and no --checkpoint")
    return found


def _family_class(serve):
    class FamilyGenerator:
        """One model family: variants multiplexed by id, requests batched with @serve.batch."""

        def __init__(self, family: str, checkpoints, registry, device: str, max_batch: int, max_wait_ms: float,
                     threads: int | None):
            if threads:
                import torch

                torch.set_num_threads(threads)
            self.family, self.device = family, device
            self.catalog = Catalog(checkpoints, registry)
            self.catalog.refresh()
            self.batched.set_max_batch_size(max_batch)
            self.batched.set_batch_wait_timeout_s(max_wait_ms / 1000)
            self.forwards = 0

        def _variant(self, model_id: str):
            model, ch, version = model_id.split("|")
            version = None if version == PINNED else version
            try:
                return self.catalog.find(model, ch, version)
            except Problem:
                self.catalog.refresh()
                return self.catalog.find(model, ch, version)

        @serve.multiplexed(max_num_models_per_replica=DEFAULT_CAPACITY)
        async def get_model(self, model_id: str):
            return await asyncio.to_thread(load_variant, self._variant(model_id), self.device)

        async def generate(self, job: dict) -> dict:
            try:
                loaded = await self.get_model(serve.get_multiplexed_model_id())
                job = check_job(Job(**job), loaded.facts)
                images, info = await self.batched((loaded, job, time.perf_counter()))
                variant = loaded.variant
                body, media = await asyncio.to_thread(encode, images, job, {"model": variant.model, "ch_mul":
                                                                            variant.ch_mul, "version": variant.version})
                return {"body": body, "media_type": media, "info": asdict(info)}
            except Problem as problem:
                return {"problem": [problem.status, problem.message, problem.error_id]}
            except Exception as exc:  # noqa: BLE001 - a fault in one request: a 500 with an id, keep serving
                eid = error_id()
                log.error("generate failed in %s [error id %s]", self.family, eid, exc_info=exc)
                return {"problem": [500, f"inference failed (error id {eid})", eid]}

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
        async def batched(self, items: list) -> list:
            groups: dict[tuple, list[int]] = {}
            for i, (loaded, job, _) in enumerate(items):
                groups.setdefault((loaded.variant.key, job.psi, job.noise_mode), []).append(i)
            out: list[Any] = [None] * len(items)
            for (_, psi, noise_mode), idx in groups.items():
                loaded, jobs = items[idx[0]][0], [items[i][1] for i in idx]
                start = time.perf_counter()
                images = await asyncio.to_thread(run_batch, loaded.G, jobs, psi, noise_mode, self.device)
                compute = (time.perf_counter() - start) * 1000
                self.forwards += 1
                n = sum(j.n for j in jobs)
                for i, image in zip(idx, images):
                    out[i] = (image, BatchInfo(n, len(idx), (start - items[i][2]) * 1000, compute))
            return out

        def stats(self) -> dict:
            return {"family": self.family, "forwards": self.forwards}

    return FamilyGenerator


class RayEngine:
    """The ingress's engine: forwards generate calls to the family deployments."""

    def __init__(self, handles: dict[str, Any]):
        self.handles = handles

    async def generate(self, variant, job: Job):
        handle = self.handles.get(variant.family) if variant.family else None
        if handle is None and len(self.handles) == 1:
            handle = next(iter(self.handles.values()))
        if handle is None:
            raise Problem(503, f"no deployment serves the {variant.family or 'unknown'} family of {variant.label}; "
                               "restart zoo serve --ray to deploy it")
        result = await handle.options(multiplexed_model_id=variant.key).generate.remote(asdict(job))
        if "problem" in result:
            raise Problem(*result["problem"])
        return result["body"], result["media_type"], BatchInfo(**result["info"])

    async def warm(self, variant) -> None:
        await self.generate(variant, Job(seeds=[0]))

    def status(self) -> dict[str, Any]:
        return {"engine": "ray", "families": sorted(self.handles), "loaded": [], "loading": []}


def build_app(options: dict[str, Any], replicas: int = 1, threads: int | None = None, replica_cpus: float = 1.0,
              max_ongoing_requests: int = 64):
    """The Ray Serve application (bind graph) for ``create_app`` keyword ``options``."""
    serve = _serve()
    options = dict(options)
    checkpoints, registry, device = options.get("checkpoints"), options.get("registry"), options.get("device", "cpu")
    family_cls = serve.deployment(_family_class(serve))
    handles = {}
    for family in families(options):
        handles[family] = family_cls.options(
            name=f"ganzoo-{family}", num_replicas=replicas, max_ongoing_requests=max_ongoing_requests,
            ray_actor_options={"num_cpus": replica_cpus},
        ).bind(family, checkpoints, registry, device, options.get("max_batch", 16), options.get("max_wait_ms", 5.0),
               threads)

    class Ingress:
        def __init__(self, app_options: dict[str, Any], family_handles: dict[str, Any]):
            self.app_options, self.family_handles = app_options, family_handles

        def __serve_build_asgi_app__(self):
            from zoo.serve.app import create_app

            return create_app(**self.app_options, engine=RayEngine(self.family_handles))

    ingress = serve.deployment(serve.ingress()(Ingress), name="ganzoo-ingress", ray_actor_options={"num_cpus": 0})
    return ingress.bind(options, handles)


def run_ray(options: dict[str, Any], host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
            address: str | None = None, threads: int | None = None, replica_cpus: float = 1.0) -> int:
    """Start (or join) Ray, deploy the app on Ray Serve at host:port, and block until interrupted."""
    serve = _serve()
    import ray

    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(options, replicas, threads, replica_cpus), name="ganzoo", route_prefix="/", blocking=True)
    return 0
