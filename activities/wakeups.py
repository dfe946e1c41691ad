"""WakeUps: the worker's one LISTEN on the events channel (R15).

An endpoint with nothing to deliver sleeps: its workflow waits on a timer of a day and
its row says `sleeping`. Each event's commit NOTIFYs its enterprise; this wakes, with
one signal each, only the sleeping endpoints of that enterprise and the portal-wide one.
An enterprise's burst costs the others nothing, and an idle endpoint costs no Action.
Several worker processes may listen: clearing the flag is one statement, so each sleep
is woken once. A signal that fails puts the flag back, and is retried until it lands.
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
from store.webhook_deliveries import WebhookDeliveries

log = logging.getLogger(__name__)
# Notifications arriving within this long are woken together: one statement for a burst.
_GATHER_SECONDS = 0.02
# One wake-up signal waits this long at most.
SIGNAL_TIMEOUT = 5.0
# A failed wake-up is tried again after this long, doubling up to RETRY_AT_MOST.
RETRY_FIRST = 1.0
RETRY_AT_MOST = 60.0
# Without any notification, the sleeping endpoints with events waiting are looked for this
# often: one indexed statement, no Action unless one is found.
RECHECK_SECONDS = 300.0


class WakeUps:
    def __init__(self, pool: asyncpg.Pool, store: WebhookDeliveries, client: Client) -> None:
        """`pool`: where the listening connection comes from; `store`: the flags."""
        self._pool, self._store, self._client = pool, store, client
        self._pending: set[str] = set()
        self._arrived = asyncio.Event()
        self._connection: asyncpg.pool.PoolConnectionProxy | None = None
        self._lost = asyncio.Event()
        self._retry_in = 0.0  # seconds until a failed wake-up is tried again; 0: none failed

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
                        done, _ = await asyncio.wait(
                            {arrived, lost},
                            timeout=self._retry_in or RECHECK_SECONDS,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        arrived.cancel()
                        lost.cancel()
                    if not done:  # a failed signal's retry is due, or the periodic look
                        await self._wake_behind()
                        continue
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
        await self._signal(await self._store.wake_sleepers_of(enterprises))

    async def _wake_behind(self) -> None:
        """Wakes every sleeping endpoint that has events waiting: at (re)connection, after
        a signal failed, and every RECHECK_SECONDS (a transaction of another enterprise
        that held the portal-wide endpoint back and then rolled back notifies no one)."""
        await self._signal(await self._store.wake_sleepers_behind())

    async def _signal(self, endpoints: list[UUID]) -> None:
        """One signal each. One that fails (Temporal unreachable for a moment) puts the
        endpoint's flag back, and is tried again in seconds, then less often, until it
        lands: an event waits minutes at most for a lost wake-up, never the day's timer."""
        failed = False
        for endpoint_id in endpoints:
            handle = self._client.get_workflow_handle(webhook_workflow_id(endpoint_id))
            try:
                # Bounded: the client retries an unreachable server on its own, and every
                # other enterprise's wake-ups wait behind this one meanwhile.
                async with asyncio.timeout(SIGNAL_TIMEOUT):
                    await handle.signal(WEBHOOK_WAKE_SIGNAL)
            except (RPCError, TimeoutError) as err:
                if isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND:
                    continue  # no delivery runs for it: nothing to wake
                log.warning("webhook endpoint %s not woken (%r); trying again shortly", endpoint_id, err)
                await self._store.flag_asleep(endpoint_id, True)
                failed = True
        # A failure backs off; a round that failed nothing (none left to wake) ends the retries.
        self._retry_in = (min(self._retry_in * 2, RETRY_AT_MOST) if self._retry_in else RETRY_FIRST) if failed else 0.0
