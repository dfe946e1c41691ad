"""The HTTP API: the portal backend's /v1, the invitation pages, health and OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn
import uvloop
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from partners import collector, logs, tracing
from partners.settings import Settings
from partners.version import package_version
from starter import codec_api, console, docs, events_api, pages, portal, problems
from starter.bounces import BounceListener
from starter.metrics import ApiMetrics
from starter.problems import problem_responses
from starter.readiness import PublicReadiness, readiness
from starter.request_limits import BoundedBodies, BoundedRequests, KnownHosts
from starter.wiring import Wiring, open_services

log = logging.getLogger(__name__)


_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI).parameters
    else {}
)


def create_app(services: Wiring | None = None, settings: Settings | None = None) -> FastAPI:
    """With `services`, the caller owns the connections (tests, the local run); without,
    the app opens them from `settings` on start-up and closes them on shutdown."""
    metrics = ApiMetrics()
    configured = services.settings if services is not None else (settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = configured
        if own.api_metrics_port:
            metrics.serve(own.api_metrics_port)
        try:
            if services is not None:
                app.state.services = services
                yield
            else:
                async with open_services(own) as app.state.services:
                    yield
        finally:
            metrics.close()

    app = FastAPI(
        title="Partner onboarding",
        version=package_version(),
        description="Registers partner companies of an enterprise account and invites their people.",
        # Where clients and tools send requests: the public address, never a request's Host.
        servers=[{"url": configured.link_base, "description": "this deployment (PUBLIC_BASE_URL)"}],
        # No licence is granted: the service is the company's own (a choice for its owners).
        license_info={"name": "Proprietary: no licence granted"},
        lifespan=lifespan,
        # FastAPI's own telemetry records a request's path and exceptions' messages, which
        # may hold a token or an address: ours (partners/tracing.py) records neither.
        **_NO_NATIVE_TELEMETRY,
        docs_url=None,  # served by starter/docs.py, from our origin
        redoc_url=None,
        # Operation ids are the route functions' names: what a generated client calls them.
        generate_unique_id_function=lambda route: route.name,
    )
    metrics.install(app)
    app.state.metrics = metrics
    problems.install(app, pages={"/console": console.session.problem_page})
    console.session.install(app)
    app.add_middleware(BoundedBodies)
    # The client's address from X-Forwarded-For only when the peer is a trusted proxy
    # (FORWARDED_ALLOW_IPS); uvicorn's own handling is off (proxy_headers=False).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=configured.forwarded_allow_ips)
    if tracing.active():  # each request a server span, its path never recorded (partners/tracing.py)
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        app.add_middleware(
            OpenTelemetryMiddleware,
            server_request_hook=tracing.scrub,
            default_span_details=tracing.span_details,
            exclude_spans=["receive", "send"],
        )
    # Last added, so first to run: a request too long is answered before anything else.
    app.add_middleware(BoundedRequests)
    app.include_router(portal.router)
    app.include_router(events_api.router)
    app.include_router(pages.router)
    app.include_router(console.router)
    docs.install(app)

    # Any route may answer 414 or 431 (starter/request_limits.py) and 405 to another method.
    bounded = problem_responses(405, 414, 431)

    @app.get("/healthz", tags=["operations"], responses=bounded)
    async def healthz() -> JSONResponse:
        """Liveness: the process answers. Whether it can serve is /readyz."""
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={**bounded, 503: {"description": "Not ready", "content": {"application/json": {}}}},
    )
    async def readyz() -> JSONResponse:
        """Readiness: ready or not, for the load balancer. Which part fails, and why, is
        told on the operators' listener only (OPERATOR_PORT): internal error texts and
        the mail relay's replies are no business of the public."""
        if not hasattr(app.state, "public_readiness"):
            app.state.public_readiness = PublicReadiness(app.state.services)
        ready = await app.state.public_readiness.ready()
        return JSONResponse({"status": "ok" if ready else "failing"}, 200 if ready else 503)

    return app


def create_operator_app(services: Wiring) -> FastAPI:
    """The operators' listener (OPERATOR_HOST:OPERATOR_PORT, loopback by default): the
    codec endpoint the Temporal UI and CLI decode payloads through, and readiness in
    detail. With CODEC_AUTH_TOKEN set (required beyond loopback), every call bears it."""
    settings = services.settings
    app = FastAPI(
        title="Partner onboarding: operators",
        version=package_version(),
        dependencies=[Depends(codec_api.operator_token)],
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.services = services
    problems.install(app)
    app.add_middleware(BoundedBodies)
    app.add_middleware(codec_api.CodecCors, origins=settings.codec_origins)
    app.add_middleware(KnownHosts, hosts=settings.operator_hosts)
    app.add_middleware(BoundedRequests)
    app.include_router(codec_api.router)

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "PostgreSQL, Temporal or every worker is missing"}},
    )
    async def readyz() -> JSONResponse:
        """Readiness in detail: PostgreSQL and Temporal answer, and at least one worker
        polls the task queue (without one, every registration would wait and answer
        503); `mail` says `degraded` while the SMTP relay refuses us with a 5xx not about
        a recipient (this process still serves everything else)."""
        ready, checks = await readiness(services)
        return JSONResponse({"status": "ok" if ready else "failing", **checks}, 200 if ready else 503)

    return app


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process stops its servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def servers(services: Wiring, **config: Any) -> list[QuietServer]:
    """The public listener and the operators', over one set of connections. log_config
    None: uvicorn's loggers, its access log included, go through our redacting handler."""
    settings = services.settings
    return [
        QuietServer(uvicorn.Config(app, host=host, port=port, log_config=None, proxy_headers=False, **config))
        for app, host, port in (
            (create_app(services), settings.api_host, settings.api_port),
            (create_operator_app(services), settings.operator_host, settings.operator_port),
        )
    ]


async def serve(settings: Settings) -> None:
    """Both listeners until SIGTERM or SIGINT; uvicorn drains the requests under way."""
    tracing.configure("partners-api")
    async with open_services(settings) as services:
        running = servers(services, timeout_graceful_shutdown=30)
        app = running[0].config.app
        assert isinstance(app, FastAPI)

        def stop() -> None:
            for server in running:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        async with bounce_listener(services, running):
            tasks = [asyncio.create_task(server.serve()) for server in running]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            stop()  # one stopped (a signal, or its port was taken): both stop
            await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def bounce_listener(services: Wiring, running: list[QuietServer]) -> AsyncIterator[BounceListener | None]:
    """The bounce listener (R24) where BOUNCE_SMTP_PORT asks for it, counted on the API's
    metrics (the public app's registry)."""
    if services.settings.bounce_smtp_port is None:
        yield None
        return
    app = running[0].config.app
    assert isinstance(app, FastAPI)
    listener = BounceListener(services, registry=app.state.metrics.registry)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


def run() -> None:
    """`partners-api`: the API alone, as in production (see docker-compose.yml)."""
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    # uvloop, as uvicorn.run chose it for us before the API served two listeners of its own
    # (a profile found it missing: bench/HISTORY.md#notes-of-2026-12-07-the-seventh-and-eighth-rounds).
    with collector.timed():  # each full collection logged with how long it held the loop
        uvloop.run(serve(settings))
    logs.exit_after_clean_shutdown()


if __name__ == "__main__":
    run()
