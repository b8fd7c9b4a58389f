"""Prometheus metrics of one app instance (own registry, so several apps can live in a process)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServiceMetrics:
    """Requests and latency by route and status, predictions by model version, model events."""

    def __init__(self, instance: str = "") -> None:
        self.instance_header = (b"x-served-by", instance.encode())
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency",
            ["method", "route"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.predictions = Counter("predictions", "Records scored", ["model_version"], registry=r)
        self.loads = Counter("model_loads", "Model load attempts", ["result"], registry=r)
        self.swaps = Counter(
            "model_swaps", "Model swaps after the first load", ["result"], registry=r
        )
        self.version = Gauge(
            "model_version", "Version of the model in memory (0 = none)", registry=r
        )
        self._pred_children: dict[int, Any] = {}
        self._req_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def count_predictions(self, version: int, n: int) -> None:
        """Add `n` scored records for model `version` (label children cached)."""
        child = self._pred_children.get(version)
        if child is None:
            child = self._pred_children[version] = self.predictions.labels(str(version))
        child.inc(n)

    def on_model_event(self, event: str, ok: bool) -> None:
        """ModelHolder listener: count loads and swaps."""
        (self.loads if event == "load" else self.swaps).labels("ok" if ok else "failed").inc()

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """A plain ASGI middleware (cheaper than BaseHTTPMiddleware) timing every request."""

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", []), self.instance_header]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                key = (scope.get("method", "GET"), path, status)
                children = self._req_children.get(key)
                if children is None:  # labels() costs microseconds: resolve each child once
                    children = self._req_children[key] = (
                        self.requests.labels(key[0], path, str(status)),
                        self.latency.labels(key[0], path),
                    )
                children[0].inc()
                children[1].observe(time.perf_counter() - start)

        return wrapped
