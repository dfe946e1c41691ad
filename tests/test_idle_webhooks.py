"""An idle webhook endpoint costs nothing, and one enterprise's events wake no other's:
the endpoint's workflow sleeps on a day's timer, flagged in its row, and the worker's
LISTEN wakes only the sleeping endpoints of the enterprise that committed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.wakeups import SIGNAL_TIMEOUT
from devstack.binaries import temporal_cli
from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from partners import search
from partners.events import AuditAction
from partners.ids import webhook_workflow_id
from store.sql import audit
from tests.helpers.codec import converter_for_tests
from tests.helpers.receiver import receiving
from tests.helpers.stack import Stack, holder, new_enterprise, running_stack, unique_domain
from tests.helpers.waiting import eventually, now


async def _asleep(stack: Stack, enterprise: str, url: str) -> UUID:
    """An endpoint of the enterprise, once its workflow has found nothing and sleeps."""
    created = await stack.http.post(
        f"/v1/enterprises/{enterprise}/webhooks", json={"url": url}, headers=holder(enterprise)
    )
    assert created.status_code == 201, created.text
    endpoint = UUID(created.json()["id"])
    await eventually(lambda: stack.pool.fetchval("SELECT sleeping FROM webhook_endpoints WHERE id = $1", endpoint))
    # ...and the workflow task that starts its timer is recorded: its history at rest.
    await eventually(
        lambda: _events(stack.client, endpoint), lambda events: events[-1].HasField("timer_started_event_attributes")
    )
    return endpoint


async def _events(client: Client, endpoint: UUID) -> list[Any]:
    history = await client.get_workflow_handle(webhook_workflow_id(endpoint)).fetch_history()
    return list(history.events)


# The history events the server bills an Action for, as bench/idle.py counts them.
_BILLED = {
    "activity_task_scheduled_event_attributes",
    "timer_started_event_attributes",
    "workflow_execution_signaled_event_attributes",
    "marker_recorded_event_attributes",
    "upsert_workflow_search_attributes_event_attributes",
}


# The last event of a history that waits: a workflow task done, or the timer it started.
_AT_REST = {"workflow_task_completed_event_attributes", "timer_started_event_attributes"}


def _timers(events: list[Any]) -> list[int]:
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToSeconds()
        for e in events
        if e.HasField("timer_started_event_attributes")
    ]


async def test_an_idle_endpoint_sleeps_on_one_timer_and_asks_nothing_more(dev_stack: Stack) -> None:
    async with receiving() as receiver:
        endpoint = await _asleep(dev_stack, new_enterprise(), receiver.url)
        before = await _events(dev_stack.client, endpoint)
        assert _timers(before) == [24 * 3600], "asleep on the day's timer"
        await asyncio.sleep(3)  # before: an activity rescheduled every 5 min, heartbeating
        after = await _events(dev_stack.client, endpoint)
        assert len(after) == len(before), "an idle endpoint's history does not grow"


async def test_an_event_committed_alone_costs_its_wake_up_and_one_activity(dev_stack: Stack) -> None:
    """Billed history events (an Action each) of one event's delivery to a sleeping
    endpoint: the wake-up signal and one activity that finds, delivers and flags the
    endpoint asleep again; the day's timer goes on running, none is started anew."""
    enterprise = new_enterprise()
    async with receiving() as receiver:
        endpoint = await _asleep(dev_stack, enterprise, receiver.url)
        before = await _events(dev_stack.client, endpoint)
        for number in range(2):
            async with dev_stack.pool.acquire() as db, db.transaction():
                await db.execute("INSERT INTO enterprises (id) VALUES ($1) ON CONFLICT DO NOTHING", enterprise)
                await audit(db, enterprise, uuid.uuid4(), "test", AuditAction.LOGO_SET, size=number)
            await receiver.wait_for(number + 1, timeout=30)
            await eventually(  # asleep again, its workflow task done: the history at rest
                lambda: _events(dev_stack.client, endpoint),
                lambda events: events[-1].WhichOneof("attributes") in _AT_REST,
            )
            await eventually(
                lambda: dev_stack.pool.fetchval("SELECT sleeping FROM webhook_endpoints WHERE id = $1", endpoint)
            )
    added = (await _events(dev_stack.client, endpoint))[len(before) :]
    billed = [e.WhichOneof("attributes") for e in added if e.WhichOneof("attributes") in _BILLED]
    assert sorted(billed) == sorted(
        2 * ["activity_task_scheduled_event_attributes", "workflow_execution_signaled_event_attributes"]
    )


async def test_one_enterprises_burst_wakes_its_endpoint_and_no_other(dev_stack: Stack) -> None:
    async with receiving() as busy_receiver, receiving() as quiet_receiver:
        busy, quiet = new_enterprise(), new_enterprise()
        busy_endpoint = await _asleep(dev_stack, busy, busy_receiver.url)
        quiet_endpoint = await _asleep(dev_stack, quiet, quiet_receiver.url)
        quiet_before = await _events(dev_stack.client, quiet_endpoint)
        for _ in range(3):
            assert (await dev_stack.register(busy, unique_domain())).status_code == 201
        await busy_receiver.wait_for(6, timeout=30)  # registered and invitation.sent, three times
        await eventually(  # asleep again once delivered
            lambda: dev_stack.pool.fetchval("SELECT sleeping FROM webhook_endpoints WHERE id = $1", busy_endpoint)
        )
        assert await _events(dev_stack.client, quiet_endpoint) == quiet_before, "the other enterprise's slept on"
        assert quiet_receiver.receipts == []
        assert await dev_stack.pool.fetchval("SELECT sleeping FROM webhook_endpoints WHERE id = $1", quiet_endpoint)


async def test_events_committed_while_no_worker_listened_are_delivered_when_one_starts(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    queue = f"test-{uuid.uuid4()}"
    enterprise = new_enterprise()
    async with receiving() as receiver:
        async with running_stack(dev_env, pool, mail, temporal_task_queue=queue) as stack:
            await _asleep(stack, enterprise, receiver.url)
        # No worker listens: an event committed now wakes no one (as during a deployment).
        async with pool.acquire() as db, db.transaction():
            await db.execute("INSERT INTO enterprises (id) VALUES ($1) ON CONFLICT DO NOTHING", enterprise)
            grant = {"grant_id": str(uuid.uuid4()), "kind": "api", "ref": "orders"}
            await audit(db, enterprise, uuid.uuid4(), "test", AuditAction.GRANT, **grant)
        async with running_stack(dev_env, pool, mail, temporal_task_queue=queue):
            received = await receiver.wait_for(1, timeout=30)
        assert [r.event["type"] for r in received] == ["grant.created"]


async def test_a_wake_up_lost_while_temporal_is_down_is_retried_until_it_lands(
    pool: asyncpg.Pool, mail: MailCatcher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Temporal stopped across a commit: the signal that would wake the sleeping endpoint
    fails; it is tried again until the server is back, and the event is delivered then,
    not at the endpoint's day-long timer or the next commit."""
    port, db_file = free_port(), str(tmp_path / "temporal.db")

    async def start_server() -> WorkflowEnvironment:
        return await WorkflowEnvironment.start_local(
            data_converter=converter_for_tests(),
            dev_server_existing_path=temporal_cli(),
            search_attributes=search.ALL,
            port=port,
            dev_server_extra_args=["--db-filename", db_file],
        )

    first = await start_server()
    second: WorkflowEnvironment | None = None
    enterprise = new_enterprise()
    try:
        async with running_stack(first, pool, mail) as stack, receiving() as receiver:
            hooks = f"/v1/enterprises/{enterprise}/webhooks"
            hook = (await stack.http.post(hooks, json={"url": receiver.url}, headers=holder(enterprise))).json()
            asleep = "SELECT sleeping FROM webhook_endpoints WHERE id = $1::uuid"
            await eventually(lambda: pool.fetchval(asleep, hook["id"]), interval=0.1)
            await first.shutdown()
            async with pool.acquire() as db, db.transaction():
                await audit(
                    db, enterprise, None, "holder@x.example", AuditAction.GRANT, grant_id="g", kind="api", ref="r"
                )
            # Down past the wake-up's bound (SIGNAL_TIMEOUT): the wake-up fails, and says so.
            await eventually(now(lambda: "not woken" in caplog.text), timeout=SIGNAL_TIMEOUT + 20)
            assert receiver.delivered() == []
            second = await start_server()
            delivered = await receiver.wait_for(1, timeout=90)
            assert [r.event["type"] for r in delivered] == ["grant.created"]
    finally:
        if second is not None:
            await second.shutdown()
