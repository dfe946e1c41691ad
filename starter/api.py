"""The HTTP API: the portal backend's /v1, the invitation pages, health and OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from partners import logs
from partners.settings import Settings
from starter import pages, portal, problems
from starter.limits import BadTokenLimiter
from starter.metrics import ApiMetrics
from starter.services import Services, open_services

log = logging.getLogger(__name__)


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    """With `services`, the caller owns the connections (tests, the local run); without,
    the app opens them from `settings` on start-up and closes them on shutdown."""
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = services.settings if services is not None else (settings or Settings())
        app.state.link_limiter = BadTokenLimiter(own.link_attempt_limit, own.link_attempt_window)
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
        version="1",
        description="Registers partner companies of an enterprise account and invites their people.",
        lifespan=lifespan,
    )
    metrics.install(app)
    problems.install(app)
    app.include_router(portal.router)
    app.include_router(pages.router)

    @app.get(
        "/healthz",
        tags=["operations"],
        responses={
            503: {"description": "The database or Temporal does not answer", "content": {"application/json": {}}}
        },
    )
    async def healthz() -> JSONResponse:
        state: Services = app.state.services
        checks = {}
        try:
            async with asyncio.timeout(2):
                await state.stores.reads.ping()
            checks["database"] = "ok"
        except Exception as err:  # any failure is "not healthy", the reason is the answer
            checks["database"] = f"failing: {type(err).__name__}"
        try:
            async with asyncio.timeout(2):
                await state.client.service_client.check_health()
            checks["temporal"] = "ok"
        except Exception as err:
            checks["temporal"] = f"failing: {type(err).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "failing", **checks}, 200 if healthy else 503)

    return app


def run() -> None:
    """`partners-api`: the API alone, as in production (see docker-compose.yml).

    uvicorn drains the requests under way on SIGTERM before it stops."""
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    # log_config=None: uvicorn's loggers, its access log included, go through our handler,
    # which redacts invitation tokens from request paths.
    uvicorn.run(
        create_app(settings=settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
