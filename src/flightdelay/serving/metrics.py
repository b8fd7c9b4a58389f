"""Prometheus metrics of one app instance (own registry, so several apps can live in a process).

Process metrics (CPU, memory, open files, GC) come from prometheus_client's standard collectors
on the same registry. Per-request numbers (requests, latency, predictions) are plain counters that
the event loop, their only writer, bumps without locks; a collector turns them into Prometheus
families when /metrics is scraped. That keeps the bookkeeping of a request around 0.3
microseconds instead of the 1+ that locked `prometheus_client` children cost. Rare model events
use ordinary Counters.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from flightdelay.serving.workers import Snapshot, WorkerShare

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# the `le` labels, as prometheus_client writes them
_BOUNDS = [*(str(floatToGoString(b)) for b in LATENCY_BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]


class ServiceMetrics:
    """Requests and latency by route and status, predictions by model version, model events."""

    def __init__(self, instance: str = "") -> None:
        self.instance_header = (b"x-served-by", instance.encode())
        self.registry = CollectorRegistry()
        r = self.registry
        self.loads = Counter("model_loads", "Model load attempts", ["result"], registry=r)
        self.swaps = Counter(
            "model_swaps", "Model swaps after the first load", ["result"], registry=r
        )
        self.version = Gauge(
            "model_version", "Version of the model in memory (0 = none)", registry=r
        )
        self._requests: dict[tuple[str, str, int], int] = {}
        # per (method, route): one count per latency bucket, the +Inf count, then the sum
        self._latency: dict[tuple[str, str], list[float]] = {}
        self._predictions: dict[int, int] = {}
        self.share: WorkerShare | None = None  # the other workers' counters (API_WORKERS > 1)
        r.register(_RequestCollector(self))
        # the standard process_* (CPU, RSS, open fds), python_gc_* and python_info families:
        # read at scrape time, nothing on the request path
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        PlatformCollector(registry=r)

    def snapshot(self) -> Snapshot:
        """This worker's request counters, JSON-ready (for :mod:`.workers`)."""
        return {
            "requests": [[*k, n] for k, n in list(self._requests.items())],
            "latency": [[*k, list(h)] for k, h in list(self._latency.items())],
            "predictions": [[v, n] for v, n in list(self._predictions.items())],
        }

    def totals(self) -> tuple[dict[Any, int], dict[Any, list[float]], dict[int, int]]:
        """(requests, latency, predictions): this worker's counters plus the other workers'."""
        requests, latency = dict(self._requests), {k: list(h) for k, h in self._latency.items()}
        predictions = dict(self._predictions)
        for other in self.share.others() if self.share else ():
            for method, route, status, n in other.get("requests", ()):
                key = (method, route, int(status))
                requests[key] = requests.get(key, 0) + n
            for method, route, hist in other.get("latency", ()):
                mine = latency.get((method, route)) or [0.0] * len(hist)
                latency[(method, route)] = [a + b for a, b in zip(mine, hist, strict=True)]
            for version, n in other.get("predictions", ()):
                predictions[int(version)] = predictions.get(int(version), 0) + n
        return requests, latency, predictions

    def count_predictions(self, version: int, n: int) -> None:
        """Add `n` scored records for model `version`."""
        self._predictions[version] = self._predictions.get(version, 0) + n

    def on_model_event(self, event: str, ok: bool) -> None:
        """ModelHolder listener: count loads and swaps."""
        (self.loads if event == "load" else self.swaps).labels("ok" if ok else "failed").inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        hist = self._latency.get(key[:2])
        if hist is None:
            hist = self._latency[key[:2]] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        hist[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        hist[-1] += seconds


class _RequestCollector:
    """Exposes ServiceMetrics' plain counters as Prometheus families at scrape time."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counts, latencies, scored = self.metrics.totals()
        requests = CounterMetricFamily(
            "http_requests", "HTTP requests", labels=["method", "route", "status"]
        )
        for (method, route, status), n in counts.items():
            requests.add_metric([method, route, str(status)], float(n))
        yield requests
        latency = HistogramMetricFamily(
            "http_request_duration_seconds", "Request latency", labels=["method", "route"]
        )
        for (method, route), hist in latencies.items():
            cumulative, total = [], 0.0
            for bound, count in zip(_BOUNDS, hist[:-1], strict=True):
                total += count
                cumulative.append((bound, total))
            latency.add_metric([method, route], cumulative, sum_value=hist[-1])
        yield latency
        predictions = CounterMetricFamily("predictions", "Records scored", labels=["model_version"])
        for version, n in scored.items():
            predictions.add_metric([str(version)], float(n))
        yield predictions


class MetricsMiddleware:
    """A plain ASGI middleware (cheaper than BaseHTTPMiddleware): times every HTTP request into
    `metrics` by route and status, and names the instance that answered (`x-served-by`)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        served_by = self.metrics.instance_header

        def send_wrapper(message: Message) -> Awaitable[None]:
            # a plain function returning send's awaitable: no extra coroutine per message
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), served_by]
            return send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)
