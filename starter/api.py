"""The HTTP API: the portal backend's /v1, the invitation pages, health and OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from partners import logs
from partners.settings import Settings
from starter import codec_api, events_api, pages, portal, problems
from starter.bodies import BoundedBodies
from starter.bounds import BoundedRequests
from starter.metrics import ApiMetrics
from starter.services import Services, open_services

log = logging.getLogger(__name__)


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
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
        version="1",
        description="Registers partner companies of an enterprise account and invites their people.",
        lifespan=lifespan,
        # Operation ids are the route functions' names: what a generated client calls them.
        generate_unique_id_function=lambda route: route.name,
    )
    metrics.install(app)
    problems.install(app)
    app.add_middleware(BoundedBodies)
    # The client's address from X-Forwarded-For only when the peer is a trusted proxy
    # (FORWARDED_ALLOW_IPS); uvicorn's own handling is off (proxy_headers=False).
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=configured.forwarded_allow_ips)
    app.add_middleware(codec_api.CodecCors, origins=configured.codec_origins)
    # Last added, so first to run: a request too long is answered before anything else.
    app.add_middleware(BoundedRequests)
    app.include_router(portal.router)
    app.include_router(events_api.router)
    app.include_router(pages.router)
    app.include_router(codec_api.router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """Liveness: the process answers. Whether it can serve is /readyz."""
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={
            503: {
                "description": "PostgreSQL, Temporal or every worker is missing",
                "content": {"application/json": {}},
            }
        },
    )
    async def readyz() -> JSONResponse:
        """Readiness: PostgreSQL and Temporal answer, and at least one worker polls the
        task queue (without one, every registration would wait and answer 503)."""
        services: Services = app.state.services
        checks = {
            "database": await _check(services.stores.reads.ping()),
            "temporal": await _check(services.client.service_client.check_health()),
            "workers": await _check(_has_poller(services)),
        }
        ready = all(v == "ok" for v in checks.values())
        # The relay refusing us does not make this process unready (it serves
        # everything else); it is said here for whoever watches readiness.
        fault = await services.stores.reads.mail_fault() if checks["database"] == "ok" else None
        mail = "ok" if fault is None else f"degraded: the SMTP relay refuses us: {fault}"
        return JSONResponse({"status": "ok" if ready else "failing", **checks, "mail": mail}, 200 if ready else 503)

    return app


async def _check(call: Awaitable[Any]) -> str:
    try:
        async with asyncio.timeout(2):
            await call
        return "ok"
    except Exception as err:  # any failure is "not ready"; the reason is the answer
        return f"failing: {type(err).__name__}: {err}"[:200]


async def _has_poller(services: Services) -> None:
    described = await services.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=services.client.namespace,
            task_queue=TaskQueue(name=services.settings.temporal_task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    if not described.pollers:
        raise LookupError(f"no worker polls the task queue {services.settings.temporal_task_queue}")


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
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )
    logs.exit_after_clean_shutdown()


if __name__ == "__main__":
    run()
