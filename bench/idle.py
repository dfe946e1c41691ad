"""`make bench-idle`: what waiting costs in Temporal Actions, counted by the
dev server's own `action` metric (`--metrics-port`), by type.

1. Idle webhook endpoints: `--endpoints` endpoints of as many enterprises, asleep, for
   `--idle-seconds`: Actions per endpoint per hour (goal: at most 1).
2. One enterprise's burst: `--burst` events committed for one enterprise; the Actions it
   costs, and how many of the other enterprises' endpoints it woke (goal: none).
   Then `--one-at-a-time` events of that enterprise, each committed once the endpoint
   sleeps again: Actions per delivered event (goal: at most 3), by type.
3. A waiting invitation: the Actions of the committed `invitation-expired` history (a
   member invitation nobody accepts: every reminder, then expiry), per day of its life
   and per reminder, read from its events the way the server bills them.

The API and the worker each in a process of their own, as deployed. Writes
bench/results/idle.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from temporalio.client import Client

from bench.local import RESULTS, TOKEN, LocalStack, actions_by_type, local_stack
from bench.webhooks import Receiver
from devstack.net import free_port
from partners.events import AuditAction
from partners.ids import webhook_workflow_id
from partners.settings import Settings
from partners.temporal_client import connect_client
from store.sql import audit

# The released history of an invitation that expired unanswered (frozen with 1.0.0).
HISTORY = Path(__file__).parent.parent / "tests" / "histories" / "1.0.0" / "invitation-expired.json"
# The history events the server bills an Action for (Temporal's pricing: a workflow start,
# each activity scheduled or local activity run, each timer, signal, update and upsert).
BILLED = {
    "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED": "start",
    "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED": "activity",
    "EVENT_TYPE_TIMER_STARTED": "timer",
    "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED": "signal",
    "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED": "update",
    "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "upsert",
    "EVENT_TYPE_MARKER_RECORDED": "local activity",
    "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED": "child",
    "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW": "continue-as-new",
}


def holder(enterprise: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {TOKEN}",
        "X-Actor-Email": "holder@bench.example",
        "X-Actor-Role": "account_holder",
        "X-Actor-Enterprise": enterprise,
    }


async def total(port: int) -> float:
    return sum((await actions_by_type(port)).values())


async def asleep(local: LocalStack) -> int:
    """Endpoints asleep; before endpoints slept on a timer (they waited in an activity):
    there, every endpoint counts as settled, so the same benchmark measures the old code."""
    try:
        return int(await local.pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE sleeping") or 0)
    except asyncpg.UndefinedColumnError:
        return int(await local.pool.fetchval("SELECT count(*) FROM webhook_endpoints") or 0)


async def history_lengths(client: Client, local: LocalStack, enterprises: list[str]) -> dict[UUID, int]:
    ids = await local.pool.fetch("SELECT id FROM webhook_endpoints WHERE enterprise_id = ANY($1)", enterprises)
    lengths = {}
    for row in ids:
        history = await client.get_workflow_handle(webhook_workflow_id(row["id"])).fetch_history()
        lengths[row["id"]] = len(history.events)
    return lengths


async def idle_endpoints(
    local: LocalStack, http: httpx.AsyncClient, client: Client, port: int, args: argparse.Namespace
) -> dict[str, Any]:
    receiver = Receiver()
    await receiver.start()
    enterprises = [f"bench-idle-{n}" for n in range(args.endpoints)]
    for enterprise in enterprises:
        created = await http.post(
            f"/v1/enterprises/{enterprise}/webhooks",
            json={"url": f"http://127.0.0.1:{receiver.port}/hooks"},
            headers=holder(enterprise),
        )
        assert created.status_code == 201, created.text
    async with asyncio.timeout(60):
        while await asleep(local) < args.endpoints:
            await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # the last ones' workflow tasks complete
    before = await total(port)
    await asyncio.sleep(args.idle_seconds)
    idle = await total(port) - before
    per_hour = idle / args.endpoints / (args.idle_seconds / 3600)

    # One enterprise's burst: the others stay asleep, their histories untouched.
    busy = enterprises[0]
    await local.pool.execute("INSERT INTO enterprises (id) VALUES ($1) ON CONFLICT DO NOTHING", busy)
    partner = uuid4()
    others = await history_lengths(client, local, enterprises[1:])
    before = await total(port)
    for number in range(args.burst):
        async with local.pool.acquire() as db, db.transaction():
            await audit(db, busy, partner, "bench", AuditAction.LOGO_SET, content_type="image/png", size=number)
    await receiver.wait_for(local, range(args.burst), timeout=60)
    async with asyncio.timeout(30):
        while await asleep(local) < args.endpoints:
            await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    burst = await total(port) - before
    one_at_a_time = await alone(local, receiver, busy, partner, port, args.one_at_a_time, first=args.burst)
    await receiver.stop()
    return {
        "endpoints": args.endpoints,
        "idle_seconds": args.idle_seconds,
        "idle_actions": idle,
        "actions_per_endpoint_hour": round(per_hour, 3),
        "burst_events": args.burst,
        "burst_actions": burst,
        "one_at_a_time": one_at_a_time,
        # The other enterprises' endpoints whose workflow did anything meanwhile.
        "other_endpoints_woken": sum(
            1
            for endpoint, n in (await history_lengths(client, local, enterprises[1:])).items()
            if n != others[endpoint]
        ),
    }


async def alone(
    local: LocalStack, receiver: Receiver, enterprise: str, partner: UUID, port: int, events: int, *, first: int
) -> dict[str, Any]:
    """`events` events of one enterprise, each committed alone: once the one before was
    received and the endpoint sleeps again, its workflow task done. The Actions they cost
    in all, by type, and per event."""
    before = await actions_by_type(port)
    for number in range(first, first + events):
        async with local.pool.acquire() as db, db.transaction():
            await audit(db, enterprise, partner, "bench", AuditAction.LOGO_SET, content_type="image/png", size=number)
        await receiver.wait_for(local, range(number, number + 1), timeout=30)
        async with asyncio.timeout(30):
            while not await local.pool.fetchval(
                "SELECT sleeping FROM webhook_endpoints WHERE enterprise_id = $1", enterprise
            ):
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # its last workflow task completes
    after = await actions_by_type(port)
    by_type = {kind: after[kind] - before.get(kind, 0.0) for kind in after if after[kind] != before.get(kind, 0.0)}
    return {
        "events": events,
        "actions": sum(by_type.values()),
        "actions_per_event": round(sum(by_type.values()) / events, 2),
        "by_type": by_type,
    }


def invitation_actions() -> dict[str, Any]:
    """Billed events of a member invitation nobody accepts, from start to expiry."""
    recorded = json.loads(HISTORY.read_text())
    events = recorded["history"]["events"]
    kinds: dict[str, int] = {}
    for event in events:
        kind = BILLED.get(event["eventType"])
        if kind:
            kinds[kind] = kinds.get(kind, 0) + 1
    times = [event["eventTime"] for event in events]

    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    days = (parse(times[-1]) - parse(times[0])).total_seconds() / 86400
    sends = kinds.get("activity", 0)
    billed = sum(kinds.values())
    return {
        "history": str(HISTORY.relative_to(HISTORY.parents[3])),
        "life_days": round(days, 2),
        "actions": billed,
        "by_kind": kinds,
        "actions_per_day": round(billed / days, 2) if days else None,
        "mail_sends": sends,
        "timers": kinds.get("timer", 0),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    async with local_stack(metrics_port=port) as local:
        allow = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}
        base = await local.start_api(**allow)
        await local.start_worker(**allow, SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()))
        client = await connect_client(Settings(temporal_address=local.temporal.address))
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            webhooks = await idle_endpoints(local, http, client, port, args)
    return {"webhooks": webhooks, "waiting_invitation": invitation_actions()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=300.0)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--one-at-a-time", type=int, default=20)
    figures = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "idle.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
