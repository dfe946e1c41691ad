"""What the API's routes and the CLI use, built once per process: the one bootstrap of
the API, the local run (`make run`) and the tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.runtime import Runtime

from partners.errors import ErrorCode, Refused
from partners.settings import Settings
from partners.temporal_client import connect_client
from store.database import open_pool
from store.stores import Stores

T = TypeVar("T")
RETRY_AFTER_SECONDS = 5  # what a 503 tells the portal to wait before trying again


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    client: Client
    stores: Stores
    api_token: bytes  # empty (the CLI) matches no bearer token: see starter.auth

    @classmethod
    def build(cls, settings: Settings, client: Client, pool: asyncpg.Pool, **store_classes: Any) -> Wiring:
        token = settings.portal_api_token.get_secret_value().encode() if settings.portal_api_token else b""
        return cls(
            settings=settings, client=client, stores=Stores.build(pool, settings, **store_classes), api_token=token
        )

    async def temporal(self, call: Awaitable[T]) -> T:
        """A call to Temporal, bounded: with no worker on the task queue an update would
        wait for one indefinitely; the caller hears 503 and when to try again instead."""
        try:
            async with asyncio.timeout(self.settings.temporal_call_timeout):
                return await call
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
            # The SDK turns the cancellation of a waiting update into its own error.
            raise Refused(
                ErrorCode.UNAVAILABLE,
                "The workflow service did not answer in time; try again.",
                retry_after=RETRY_AFTER_SECONDS,
            ) from None


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, serving: bool = True, runtime: Runtime | None = None
) -> AsyncIterator[Wiring]:
    """The connections of a process, opened once and closed on the way out. `serving`: an
    API, which needs its token; the CLI does not serve."""
    if serving and settings.portal_api_token is None:
        raise SystemExit("PORTAL_API_TOKEN is required to serve the API.")
    async with open_pool(settings) as pool:
        yield Wiring.build(settings, await connect_client(settings, runtime), pool)
