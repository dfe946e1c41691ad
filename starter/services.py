"""What the API's routes and the CLI use, built once per process: the one bootstrap of
the API, the local run (`make run`) and the tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.runtime import Runtime

from activities.database import open_pool
from activities.stores import Stores
from partners.settings import Settings
from worker import connect_client


@dataclass(frozen=True)
class Services:
    settings: Settings
    client: Client
    stores: Stores
    api_token: bytes  # empty (the CLI) matches no bearer token: see starter.auth

    @classmethod
    def build(cls, settings: Settings, client: Client, pool: asyncpg.Pool, **store_classes: Any) -> Services:
        token = settings.portal_api_token.get_secret_value().encode() if settings.portal_api_token else b""
        return cls(
            settings=settings, client=client, stores=Stores.build(pool, settings, **store_classes), api_token=token
        )


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, serving: bool = True, migrations: bool = True, runtime: Runtime | None = None
) -> AsyncIterator[Services]:
    """The connections of a process, opened once and closed on the way out. `serving`: an
    API, which needs its token; the CLI neither serves nor migrates."""
    if serving and settings.portal_api_token is None:
        raise SystemExit("PORTAL_API_TOKEN is required to serve the API.")
    async with open_pool(settings, migrations=migrations) as pool:
        yield Services.build(settings, await connect_client(settings, runtime), pool)
