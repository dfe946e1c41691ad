"""WakeUps: the worker's one LISTEN on the events channel (R15, issue 29).

An endpoint with nothing to deliver sleeps: its workflow waits on a timer of a day and
its row says `sleeping`. Each event's commit NOTIFYs its enterprise; this wakes, with
one signal each, only the sleeping endpoints of that enterprise and the portal-wide one.
An enterprise's burst costs the others nothing, and an idle endpoint costs no Action.
Several worker processes may listen: clearing the flag is one statement, so each sleep
is woken once. A signal that fails puts the flag back, for the next commit to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from partners.ids import WEBHOOK_WAKE_SIGNAL, webhook_workflow_id

log = logging.getLogger(__name__)
# Notifications arriving within this long are woken together: one statement for a burst.
_GATHER_SECONDS = 0.02


class WakeUps:
    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self._pool, self._client = pool, client
        self._pending: set[str] = set()
        self._arrived = asyncio.Event()
        self._connection: asyncpg.pool.PoolConnectionProxy | None = None
        self._lost = asyncio.Event()

    async def run(self) -> None:
        """Listens until cancelled, reconnecting when the connection is lost; at each
        (re)connection, wakes the sleeping endpoints that have events waiting (committed
        while no one listened)."""
        while True:
            try:
                await self._listen()
                await self._wake_behind()
                while not self._lost.is_set():
                    arrived = asyncio.ensure_future(self._arrived.wait())
                    lost = asyncio.ensure_future(self._lost.wait())
                    try:
                        await asyncio.wait({arrived, lost}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        arrived.cancel()
                        lost.cancel()
                    await asyncio.sleep(_GATHER_SECONDS)
                    self._arrived.clear()
                    enterprises, self._pending = self._pending, set()
                    if enterprises:
                        await self._wake_enterprises(enterprises)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
                log.warning("webhook wake-ups: %s; listening again in 1 s", err)
                await asyncio.sleep(1)
            finally:
                await self._release()

    async def _listen(self) -> None:
        self._lost.clear()
        connection = await self._pool.acquire()
        await connection.add_listener("events", self._notified)
        connection.add_termination_listener(lambda *_: self._lost.set())
        self._connection = connection

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                if not connection.is_closed():
                    await connection.remove_listener("events", self._notified)
                await self._pool.release(connection)

    def _notified(
        self,
        _connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        enterprise_id: object,
    ) -> None:
        self._pending.add(str(enterprise_id))
        self._arrived.set()

    async def _wake_enterprises(self, enterprises: set[str]) -> None:
        rows = await self._pool.fetch(
            "UPDATE webhook_endpoints SET sleeping = false"
            " WHERE sleeping AND status = 'enabled' AND (enterprise_id = ANY($1::text[]) OR enterprise_id IS NULL)"
            " RETURNING id",
            sorted(enterprises),
        )
        await self._signal([r["id"] for r in rows])

    async def _wake_behind(self) -> None:
        rows = await self._pool.fetch(
            "UPDATE webhook_endpoints w SET sleeping = false WHERE sleeping AND status = 'enabled'"
            " AND EXISTS (SELECT 1 FROM events e WHERE e.seq > w.delivered_through"
            " AND (w.enterprise_id IS NULL OR e.enterprise_id = w.enterprise_id)) RETURNING id"
        )
        await self._signal([r["id"] for r in rows])

    async def _signal(self, endpoints: list[UUID]) -> None:
        for endpoint_id in endpoints:
            handle = self._client.get_workflow_handle(webhook_workflow_id(endpoint_id))
            try:
                await handle.signal(WEBHOOK_WAKE_SIGNAL)
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:
                    continue  # no delivery runs for it: nothing to wake
                log.warning("webhook endpoint %s not woken (%s); the next commit tries again", endpoint_id, err)
                await self._pool.execute("UPDATE webhook_endpoints SET sleeping = true WHERE id = $1", endpoint_id)
