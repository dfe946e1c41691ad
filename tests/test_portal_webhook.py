"""R22: the portal-wide endpoint (PORTAL_WEBHOOK_URL) receives every event of every
enterprise exactly once, whatever order concurrent transactions commit in.

`seq` is commit order within one enterprise only: a transaction of enterprise A may
number its event before B's and commit after it. Each test runs on a database of its
own, since the portal-wide endpoint reads every enterprise's events."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.events import AuditAction
from partners.ids import webhook_workflow_id
from store.database import create_pool, migrate
from store.events import PORTAL_ENDPOINT_ID, new_secret
from store.sql import audit
from tests.helpers.receiver import Receiver, receiving
from tests.helpers.stack import Stack, fresh_database, holder, new_enterprise, running_stack, unique_domain


@contextlib.asynccontextmanager
async def portal_stack(
    dev_env: WorkflowEnvironment, postgres_dsn: str, mail: MailCatcher
) -> AsyncIterator[tuple[Stack, Receiver]]:
    """A stack on a database of its own whose settings name a portal-wide endpoint."""
    secret = new_secret()
    handle = dev_env.client.get_workflow_handle(webhook_workflow_id(PORTAL_ENDPOINT_ID))

    async def end_portal_delivery() -> None:
        # One workflow id on the suite's dev server: a run left by another stack would
        # be found (and never polled) instead of a new one.
        with contextlib.suppress(RPCError):
            await handle.terminate("the test's portal-wide endpoint is done")

    await end_portal_delivery()
    pool = await create_pool(await fresh_database(postgres_dsn, "portal"), size=30)
    try:
        await migrate(pool)
        async with (
            receiving(secrets=[secret]) as receiver,
            running_stack(dev_env, pool, mail, portal_webhook_url=receiver.url, portal_webhook_secret=secret) as stack,
        ):
            try:
                yield stack, receiver
            finally:
                await end_portal_delivery()
    finally:
        await pool.close()


async def _wakes(stack: Stack) -> int:
    handle = stack.client.get_workflow_handle(webhook_workflow_id(PORTAL_ENDPOINT_ID))
    found = 0
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            found += event.workflow_execution_signaled_event_attributes.signal_name == "wake"
    return found


async def _looked_again_since(stack: Stack, wakes: int, timeout: float = 20) -> None:
    """Until the portal-wide endpoint was woken after `wakes` and is asleep again: it has
    read the events committed meanwhile, and delivered what it reads as due."""
    handle = stack.client.get_workflow_handle(webhook_workflow_id(PORTAL_ENDPOINT_ID))
    async with asyncio.timeout(timeout):
        while True:
            described = await handle.describe()
            assert described.status is WorkflowExecutionStatus.RUNNING
            asleep = await stack.pool.fetchval(
                "SELECT sleeping FROM webhook_endpoints WHERE id = $1", PORTAL_ENDPOINT_ID
            )
            if asleep and not described.raw_description.pending_activities and await _wakes(stack) > wakes:
                return
            await asyncio.sleep(0.1)


async def _every_event(pool: asyncpg.Pool, enterprises: list[str]) -> Counter[str]:
    rows = await pool.fetch("SELECT id FROM events WHERE enterprise_id = ANY($1::text[])", enterprises)
    return Counter(r["id"] for r in rows)


async def _received_exactly(receiver: Receiver, expected: Counter[str], timeout: float = 20) -> None:
    """The receiver got every expected event once, verified, and nothing else; waits for
    the last ones (bounded), then checks nothing more comes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while set(r.id for r in receiver.delivered()) < set(expected) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    got = Counter(r.id for r in receiver.delivered())
    missing, twice = sorted(set(expected) - set(got)), [i for i, n in got.items() if n > 1]
    assert got == expected, f"{len(missing)} of {len(expected)} events missing, {len(twice)} received twice"
    assert all(r.verified_by for r in receiver.delivered())


async def test_an_event_numbered_first_and_committed_last_still_reaches_the_portal(
    dev_env: WorkflowEnvironment, postgres_dsn: str, mail: MailCatcher
) -> None:
    async with portal_stack(dev_env, postgres_dsn, mail) as (stack, receiver):
        first, second = new_enterprise(), new_enterprise()
        async with stack.pool.acquire() as held:
            transaction = held.transaction()
            await transaction.start()
            try:
                # Enterprise A's change is numbered and its transaction stays open...
                await audit(
                    held, first, None, "holder@a.example", AuditAction.REVOKE, grant_id="g1", kind="api", ref="x"
                )
                numbered = await held.fetchval("SELECT max(seq) FROM events WHERE enterprise_id = $1", first)
                # ...while B's commits, numbered after it, and the endpoint wakes and reads.
                wakes = await _wakes(stack)
                domain = unique_domain()
                assert (await stack.register(second, domain)).status_code == 201
                later = await stack.pool.fetchval("SELECT min(seq) FROM events WHERE enterprise_id = $1", second)
                assert later > numbered
                await _looked_again_since(stack, wakes)
            finally:
                await transaction.commit()
        # B's onboarding goes on committing (the mail's `invitation.sent`): counted once it is sent.
        await stack.delivered(f"ada@{domain}")
        await _received_exactly(receiver, await _every_event(stack.pool, [first, second]))
        # Each enterprise's events in its own commit order.
        order = [(r.event["enterprise_id"], r.id) for r in receiver.delivered()]
        for enterprise in (first, second):
            feed = await stack.pool.fetch("SELECT id FROM events WHERE enterprise_id = $1 ORDER BY seq", enterprise)
            assert [i for e, i in order if e == enterprise] == [r["id"] for r in feed]


async def test_twenty_four_enterprises_writing_at_once_reach_the_portal_each_event_once(
    dev_env: WorkflowEnvironment, postgres_dsn: str, mail: MailCatcher
) -> None:
    """120 changes of 24 enterprises in parallel, each transaction held open a random
    moment after its event is numbered: commits land in another order than seq."""
    async with portal_stack(dev_env, postgres_dsn, mail) as (stack, receiver):
        enterprises = [new_enterprise() for _ in range(24)]
        rng = random.Random(22)

        async def change(enterprise: str, n: int) -> None:
            async with stack.pool.acquire() as db, db.transaction():
                await audit(
                    db,
                    enterprise,
                    None,
                    "holder@x.example",
                    AuditAction.GRANT,
                    grant_id=f"g{n}",
                    kind="api",
                    ref=f"r{n}",
                )
                await asyncio.sleep(rng.uniform(0, 0.05))

        await asyncio.gather(*(change(e, n) for n in range(5) for e in enterprises))
        expected = await _every_event(stack.pool, enterprises)
        assert len(expected) == 120
        await _received_exactly(receiver, expected)
        # Every enterprise's own feed holds the same events the portal received.
        for enterprise in enterprises:
            page = await stack.http.get(
                f"/v1/enterprises/{enterprise}/events", headers=holder(enterprise), params={"limit": 100}
            )
            assert {e["id"] for e in page.json()["events"]} == {
                r.id for r in receiver.delivered() if r.event["enterprise_id"] == enterprise
            }
