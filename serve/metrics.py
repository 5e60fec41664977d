"""``GET /metrics``: Prometheus text format through prometheus_client (the ``serve`` extra).

Each app has its own CollectorRegistry (two apps in one process do not share counters).  Labels are
bounded: ``variant`` is a catalogue key ("model|ch_mul|version") or "none" for requests refused before a
variant was known, never a client-supplied string.  Without prometheus_client every method is a no-op
and ``/metrics`` answers 501 with the install hint.
"""
from __future__ import annotations

import os
from typing import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def resident_bytes() -> float:
    """This process's resident set size (Linux /proc/self/statm; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return float(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        import resource

        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


class Metrics:
    def __init__(self):
        try:
            import prometheus_client as pc
        except ImportError:
            self.enabled = False
            return
        self.enabled = True
        self._pc = pc
        self.registry = r = pc.CollectorRegistry()
        self.requests = pc.Counter("ganzoo_requests", "Generate requests answered, by variant and HTTP status",
                                   ["variant", "status"], registry=r)
        self.errors = pc.Counter("ganzoo_errors", "Generate requests answered with an error (4xx/5xx)",
                                 ["variant", "status"], registry=r)
        self.latency = pc.Histogram("ganzoo_request_seconds", "Generate request time in the server (queue + "
                                    "compute + encode)", ["variant"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue = pc.Histogram("ganzoo_queue_seconds", "Time a request waited for its batch to start",
                                  ["variant"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute = pc.Histogram("ganzoo_compute_seconds", "Time of one batched forward", ["variant"],
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.batch = pc.Histogram("ganzoo_batch_images", "Images per forward (dynamic batching)", ["variant"],
                                  buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = pc.Histogram("ganzoo_batch_requests", "Requests per forward", ["variant"],
                                           buckets=BATCH_BUCKETS, registry=r)
        self.forwards = pc.Counter("ganzoo_forwards", "Batched forwards run", ["variant"], registry=r)
        self.loads = pc.Counter("ganzoo_loads", "Variant loads, by outcome", ["variant", "outcome"], registry=r)
        self.queue_depth = pc.Gauge("ganzoo_queue_depth", "Images waiting for a batch", registry=r)
        self.loaded = pc.Gauge("ganzoo_loaded_variants", "Variants loaded in memory", registry=r)
        self.loaded_bytes = pc.Gauge("ganzoo_loaded_model_bytes", "Parameter and buffer bytes of the loaded "
                                     "variants (what the LRU budget counts)", registry=r)
        self.rss = pc.Gauge("ganzoo_resident_memory_bytes", "Resident memory of the server process", registry=r)
        self.rss.set_function(resident_bytes)

    def bind(self, queue_depth: Callable[[], float], loaded: Callable[[], float],
             loaded_bytes: Callable[[], float]) -> None:
        if self.enabled:
            self.queue_depth.set_function(queue_depth)
            self.loaded.set_function(loaded)
            self.loaded_bytes.set_function(loaded_bytes)

    def request(self, variant: str, status: int, seconds: float | None = None) -> None:
        if not self.enabled:
            return
        self.requests.labels(variant, str(status)).inc()
        if status >= 400:
            self.errors.labels(variant, str(status)).inc()
        if seconds is not None:
            self.latency.labels(variant).observe(seconds)

    def forward(self, variant: str, images: int, requests: int, compute_s: float, queue_s: list[float]) -> None:
        if not self.enabled:
            return
        self.forwards.labels(variant).inc()
        self.batch.labels(variant).observe(images)
        self.batch_requests.labels(variant).observe(requests)
        self.compute.labels(variant).observe(compute_s)
        for q in queue_s:
            self.queue.labels(variant).observe(q)

    def load(self, variant: str, outcome: str) -> None:
        if self.enabled:
            self.loads.labels(variant, outcome).inc()

    def render(self) -> tuple[bytes, str]:
        return self._pc.generate_latest(self.registry), self._pc.CONTENT_TYPE_LATEST
