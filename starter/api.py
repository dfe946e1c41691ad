"""The HTTP API: the portal backend's /v1, the invitation pages, health and OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from activities.database import create_pool, migrate
from activities.store import PartnerStore
from partners.settings import Settings
from starter import pages, portal, problems
from starter.services import Services
from worker import connect_client

log = logging.getLogger(__name__)


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    """With `services`, the caller owns the connections (tests, the local run); without,
    the app opens them from `settings` on start-up and closes them on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        own = settings or Settings()
        if own.database_url is None or own.portal_api_token is None:
            raise SystemExit("DATABASE_URL and PORTAL_API_TOKEN are required to run the API alone.")
        pool = await create_pool(own.database_url.get_secret_value(), size=own.database_pool_size)
        try:
            await migrate(pool)
            app.state.services = Services(
                settings=own,
                client=await connect_client(own),
                store=PartnerStore.from_settings(pool, own),
                api_token=own.portal_api_token.get_secret_value().encode(),
            )
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Partner onboarding",
        version="1",
        description="Registers partner companies of an enterprise account and invites their people.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(portal.router)
    app.include_router(pages.router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        state: Services = app.state.services
        checks = {}
        try:
            async with asyncio.timeout(2):
                await state.store.ping()
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
    """`partners-api`: the API alone, as in production (see docker-compose.yml)."""
    settings = Settings()
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app(settings=settings), host=settings.api_host, port=settings.api_port)
