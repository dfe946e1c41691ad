"""The API's Prometheus metrics: requests by route and status, and their latency."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from partners import collector


class ApiMetrics:
    """One registry per app, served on its own port (API_METRICS_PORT), not on the public one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "partners_api_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "partners_api_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.long_pauses = Counter(
            "partners_gc_long_pauses",
            "Full garbage collections that held the loop over 100 ms.",
            registry=self.registry,
        )
        self.pauses = Histogram(
            "partners_gc_pause_milliseconds",
            "Full garbage collections, by how long they held the event loop.",
            buckets=collector.PAUSE_BUCKETS_MS,
            registry=self.registry,
        )
        self._server: object | None = None
        self._stop_recording: Callable[[], None] = _nothing

    def install(self, app: FastAPI) -> None:
        app.add_middleware(_Measured, metrics=self)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 (scraped from other hosts)
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        # The process's full collections, for as long as these metrics are served.
        self._stop_recording = collector.record_pauses(self.pauses.observe, self.long_pauses.inc)

    def close(self) -> None:
        self._stop_recording()
        self._stop_recording = _nothing
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            self._server = None


def _nothing() -> None:
    pass


class _Measured:
    """Pure ASGI: it reads the status as it passes, where FastAPI's `@app.middleware`
    runs each request in a task of its own and streams the body through a queue."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            # The route's template, never the path: paths carry invitation tokens.
            route = getattr(scope.get("route"), "path", "unmatched")
            self._metrics.requests.labels(scope["method"], route, str(status)).inc()
            self._metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
