"""`make bench-retention`: pruning half of 1,000,000 events and 1,000,000 delivery attempts,
and what the portal's requests feel meanwhile (R17).

Embedded PostgreSQL with the access benchmark's partners (bench/access.py) and a million
events of 100 enterprises, each with one delivery attempt; half of them 40 days old, past
EVENTS_RETENTION (30 days). The API and the worker each in a process of their own, as
deployed. Measured in one run, so the machine's drift cancels out:

- idle: `/v1/access` and the event feed, four requests at once, for a while;
- pruning: the same requests while `RetentionWorkflow` (run as the schedule runs it, by
  the worker) removes the old half; its rows per second from start to completion.

Writes bench/results/retention.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.access import seed as seed_partners
from bench.local import RESULTS, TOKEN, local_stack, percentiles
from devstack.net import free_port
from partners.models import PruneKind, RetentionInput
from partners.settings import Settings
from partners.temporal_client import connect_client
from workflows.retention import RetentionWorkflow

ENTERPRISES = 100
ENDPOINT = uuid.UUID("00000000-0000-0000-0000-0000000000be")


async def seed_events(pool: asyncpg.Pool, events: int) -> None:
    """`events` events round-robin over the enterprises, the older half 40 days old, and one
    delivery attempt each to one endpoint."""
    await pool.execute(
        "INSERT INTO webhook_endpoints (id, enterprise_id, url, secret, delivered_through, created_by)"
        " VALUES ($1, NULL, 'https://portal.example/hook', 'sealed', 0, 'bench')",
        ENDPOINT,
    )
    step = 100_000
    for start in range(0, events, step):
        await pool.execute(
            "INSERT INTO events (id, type, enterprise_id, data, created_at)"
            " SELECT 'evt_' || md5(n::text), 'partner.activated', 'bench-' || (n % $3), '{\"n\": 1}',"
            " CASE WHEN n < $4 THEN now() - interval '40 days' + n * interval '1 ms' ELSE now() END"
            " FROM generate_series($1::bigint, $2::bigint) n",
            start,
            min(start + step, events) - 1,
            ENTERPRISES,
            events // 2,
        )
    await pool.execute(
        "INSERT INTO webhook_deliveries (endpoint_id, event_seq, attempt, status, http_status, duration_ms, at)"
        " SELECT $1, seq, 1, 'delivered', 204, 12, created_at FROM events",
        ENDPOINT,
    )
    await pool.execute("VACUUM ANALYZE")


async def requests_until(
    http: httpx.AsyncClient, done: asyncio.Event, *, partners: int, cursors: dict[str, int], lanes: int = 4
) -> dict[str, list[float]]:
    """Requests four at a time, alternating `/v1/access` and a page of the feed, until `done`."""
    rng = random.Random(11)
    samples: dict[str, list[float]] = {"access": [], "feed": []}

    async def lane() -> None:
        while not done.is_set():
            n, k = rng.randrange(partners), rng.randrange(5)
            member = {"Authorization": f"Bearer {TOKEN}", "X-Actor-Email": f"u{k}@p{n}.example"}
            started = time.perf_counter()
            answer = await http.get("/v1/access", headers={**member, "X-Actor-Role": "partner_user"})
            samples["access"].append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
            enterprise = f"bench-{rng.randrange(ENTERPRISES)}"
            holder = {
                "Authorization": f"Bearer {TOKEN}",
                "X-Actor-Email": "holder@bench.example",
                "X-Actor-Role": "account_holder",
                "X-Actor-Enterprise": enterprise,
            }
            started = time.perf_counter()
            page = await http.get(
                f"/v1/enterprises/{enterprise}/events", params={"after": cursors[enterprise]}, headers=holder
            )
            samples["feed"].append(time.perf_counter() - started)
            assert page.status_code == 200 and page.json()["events"], page.text

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return samples


async def main(events: int, partners: int, idle_seconds: float) -> dict[str, Any]:
    async with local_stack() as local:
        pool = local.pool
        began = time.perf_counter()
        await seed_partners(pool, partners)
        await seed_events(pool, events)
        seeded = time.perf_counter() - began
        # Each enterprise's feed is read from its first young event: pages the prune keeps.
        cursors = {
            r["enterprise_id"]: int(r["seq"]) - 1
            for r in await pool.fetch(
                "SELECT enterprise_id, min(seq) AS seq FROM events WHERE created_at > now() - interval '1 day'"
                " GROUP BY enterprise_id"
            )
        }
        base = await local.start_api()
        # No mail is sent here: an SMTP port nobody listens on.
        await local.start_worker(SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()))
        settings = Settings(temporal_address=local.temporal.address)
        client = await connect_client(settings)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            warm = asyncio.Event()
            asyncio.get_running_loop().call_later(3, warm.set)
            await requests_until(http, warm, partners=partners, cursors=cursors)

            idle_done = asyncio.Event()
            asyncio.get_running_loop().call_later(idle_seconds, idle_done.set)
            idle = await requests_until(http, idle_done, partners=partners, cursors=cursors)

            before = {
                "events": await pool.fetchval("SELECT count(*) FROM events"),
                "deliveries": await pool.fetchval("SELECT count(*) FROM webhook_deliveries"),
            }
            pruning_done = asyncio.Event()
            load = asyncio.create_task(requests_until(http, pruning_done, partners=partners, cursors=cursors))
            started = time.perf_counter()
            result = await client.execute_workflow(
                RetentionWorkflow.run,
                RetentionInput(),
                id=f"retention-bench-{uuid.uuid4()}",
                task_queue=settings.temporal_task_queue,
            )
            elapsed = time.perf_counter() - started
            pruning_done.set()
            during = await load
        after = {
            "events": await pool.fetchval("SELECT count(*) FROM events"),
            "deliveries": await pool.fetchval("SELECT count(*) FROM webhook_deliveries"),
        }
        rows = result.pruned.get(PruneKind.EVENTS, 0) + result.pruned.get(PruneKind.DELIVERIES, 0)
        assert after["events"] == before["events"] - result.pruned[PruneKind.EVENTS]
        assert result.pruned[PruneKind.EVENTS] == events // 2, result.pruned

        def ratio(name: str) -> float:
            return round(percentiles(during[name])["p99_ms"] / percentiles(idle[name])["p99_ms"], 2)

        return {
            "events": events,
            "deliveries": events,
            "partners": partners,
            "seed_seconds": round(seeded, 1),
            "pruned": {str(k): v for k, v in result.pruned.items() if v},
            "prune_seconds": round(elapsed, 2),
            "rows_per_second": round(rows / elapsed),
            "idle": {name: {"requests": len(s)} | percentiles(s) for name, s in idle.items()},
            "pruning": {name: {"requests": len(s)} | percentiles(s) for name, s in during.items()},
            "p99_during_over_idle": {name: ratio(name) for name in ("access", "feed")},
            "left": after,
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--partners", type=int, default=2_000)
    parser.add_argument("--idle-seconds", type=float, default=20)
    args = parser.parse_args()
    figures = asyncio.run(main(args.events, args.partners, args.idle_seconds))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retention.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
