"""`make bench-access`: reads at scale. GET /v1/access and /v1/access/check with 20,000
partners and 100,000 memberships stored; a partner with 10,000 past invitations (its view
and the first page of its invitation list); the event feed's page with 1,000,000 events.

The portal asks on its request path, so the figure that matters is the API's latency as
the portal sees it: the API in its own process (`python -m starter.api`, as deployed),
this driver in another, embedded PostgreSQL with 10,000 partners (a tenth deactivated),
five members and eight grants each (one revoked), and the Temporal dev server the API
connects to at start-up (the access path never calls it). Sequential requests give the
latency; eight at once, the latency under load and the rate. Writes
bench/results/access.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from bench.local import RESULTS, TOKEN, local_stack, percentiles


async def seed(pool: asyncpg.Pool, partners: int) -> None:
    """Partner n of enterprise n/10: members u0 (Admin) to u4 at pn.example; products
    product-0..4 and apis api-0..2, api-2 revoked; every tenth partner deactivated."""
    await pool.execute(
        "INSERT INTO enterprises (id) SELECT 'bench-' || e FROM generate_series(0, ($1 - 1) / 10) e", partners
    )
    await pool.execute(
        "INSERT INTO partners (id, enterprise_id, name, status, created_by, activated_at, deactivated_at)"
        " SELECT md5('p' || n)::uuid, 'bench-' || (n / 10), 'Partner ' || n,"
        " CASE WHEN n % 10 = 9 THEN 'deactivated' ELSE 'active' END, 'bench', now(),"
        " CASE WHEN n % 10 = 9 THEN now() END FROM generate_series(0, $1 - 1) n",
        partners,
    )
    await pool.execute(
        "INSERT INTO members (partner_id, email, first_name, last_name, role, active, ended_at, end_reason)"
        " SELECT md5('p' || n)::uuid, 'u' || k || '@p' || n || '.example', 'U', 'K',"
        " CASE WHEN k = 0 THEN 'admin' ELSE 'member' END, n % 10 <> 9,"
        " CASE WHEN n % 10 = 9 THEN now() END, CASE WHEN n % 10 = 9 THEN 'partner_deactivated' END"
        " FROM generate_series(0, $1 - 1) n, generate_series(0, 4) k",
        partners,
    )
    await pool.execute(
        "INSERT INTO partner_grants (id, partner_id, kind, ref, name, granted_by, revoked_at, revoked_by)"
        " SELECT gen_random_uuid(), md5('p' || n)::uuid, g.kind, g.kind || '-' || g.j, 'Name ' || g.j, 'bench',"
        " CASE WHEN g.kind = 'api' AND g.j = 2 THEN now() END, CASE WHEN g.kind = 'api' AND g.j = 2 THEN 'bench' END"
        " FROM generate_series(0, $1 - 1) n,"
        " (SELECT 'product' AS kind, j FROM generate_series(0, 4) j UNION ALL"
        "  SELECT 'api', j FROM generate_series(0, 2) j) g",
        partners,
    )
    await pool.execute("ANALYZE")


BIG = "00000000-0000-0000-0000-00000000b16b"  # the partner with 10,000 past invitations
FEED_ENTERPRISE = "bench-feed"


async def seed_history(pool: asyncpg.Pool, invitations: int, events: int) -> None:
    """Partner 0 gets `invitations` closed invitations (a send and a token each) and 20
    pending ones; FEED_ENTERPRISE gets `events` events."""
    await pool.execute(
        "INSERT INTO invitations (id, partner_id, email, first_name, last_name, role, purpose, state, sends,"
        " max_sends, invited_by, workflow_id, created_at, closed_at)"
        " SELECT md5('i' || n)::uuid, md5('p0')::uuid, 'x' || n || '@p0.example', 'X', 'Y', 'member', 'member',"
        " CASE WHEN n < $1 THEN (ARRAY['accepted','expired','cancelled'])[1 + n % 3] ELSE 'pending' END,"
        " 1, 3, 'u0@p0.example', 'invitation-' || md5('i' || n)::uuid,"
        " now() - (n || ' minutes')::interval, CASE WHEN n < $1 THEN now() END"
        " FROM generate_series(0, $1 + 19) n",
        invitations,
    )
    await pool.execute(
        "INSERT INTO invitation_sends (invitation_id, send_number, status, sent_at)"
        " SELECT id, 1, 'sent', created_at FROM invitations WHERE partner_id = md5('p0')::uuid"
    )
    await pool.execute("INSERT INTO enterprises (id) VALUES ($1)", FEED_ENTERPRISE)
    await pool.execute(
        "INSERT INTO events (id, type, enterprise_id, data)"
        " SELECT 'evt_f' || n, 'partner.logo_updated', CASE WHEN n % 10 = 0 THEN $2 ELSE 'bench-' || (n % 997) END,"
        " '{\"size\": 1}' FROM generate_series(1, $1) n",
        events,
        FEED_ENTERPRISE,
    )
    await pool.execute("VACUUM ANALYZE")


async def measure(call: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> dict[str, Any]:
    samples: list[float] = []
    queue = iter(range(requests))

    async def lane() -> None:
        for _ in queue:
            start = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {"requests": requests, "concurrency": concurrency, "per_second": round(requests / elapsed, 1)} | (
        percentiles(samples)
    )


async def main(partners: int, requests: int, history_invitations: int, history_events: int) -> dict[str, Any]:
    async with local_stack() as local:
        pool = local.pool
        await seed(pool, partners)
        await seed_history(pool, history_invitations, history_events)
        base = await local.start_api()
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            rng = random.Random(7)

            def person() -> dict[str, str]:
                n, k = rng.randrange(partners), rng.randrange(5)
                return {
                    "Authorization": f"Bearer {TOKEN}",
                    "X-Actor-Email": f"u{k}@p{n}.example",
                    "X-Actor-Role": "partner_user",
                }

            async def access() -> None:
                response = await http.get("/v1/access", headers=person())
                assert response.status_code == 200, response.text

            async def check() -> None:
                ref, headers = f"api-{rng.randrange(3)}", person()
                # the catalog of the person's own enterprise: partner n is enterprise n/10's
                enterprise = f"bench-{int(headers['X-Actor-Email'].split('@p')[1].split('.')[0]) // 10}"
                response = await http.get(
                    f"/v1/access/check?enterprise_id={enterprise}&kind=api&ref={ref}", headers=headers
                )
                assert response.status_code == 200, response.text

            # Sanity: an active member sees one membership with 5 products and 2 APIs.
            sample = (await http.get("/v1/access", headers={**person(), "X-Actor-Email": "u1@p0.example"})).json()
            assert [(len(m["products"]), len(m["apis"])) for m in sample["memberships"]] == [(5, 2)], sample
            await measure(access, 200, 1)  # warm-up: connections, plans, caches
            results: dict[str, Any] = {"partners": partners}
            for name, call in (("access", access), ("access_check", check)):
                results[name] = {
                    "sequential": await measure(call, requests, 1),
                    "eight_at_once": await measure(call, requests, 8),
                }
            holder_p0 = {
                "Authorization": f"Bearer {TOKEN}",
                "X-Actor-Email": "holder@bench.example",
                "X-Actor-Role": "account_holder",
                "X-Actor-Enterprise": "bench-0",
            }
            partner0 = await pool.fetchval("SELECT md5('p0')::uuid")

            async def view() -> None:
                response = await http.get(f"/v1/partners/{partner0}", headers=holder_p0)
                assert response.status_code == 200 and len(response.json()["invitations"]) == 20, response.text

            async def invitations() -> None:
                response = await http.get(f"/v1/partners/{partner0}/invitations", headers=holder_p0)
                assert response.status_code == 200 and len(response.json()["invitations"]) == 50, response.text

            feed_holder = {**holder_p0, "X-Actor-Enterprise": FEED_ENTERPRISE}
            middle = await pool.fetchval(
                "SELECT seq FROM events WHERE enterprise_id = $1 ORDER BY seq OFFSET $2 LIMIT 1",
                FEED_ENTERPRISE,
                history_events // 20,
            )

            async def feed() -> None:
                response = await http.get(
                    f"/v1/enterprises/{FEED_ENTERPRISE}/events",
                    params={"after": rng.randrange(int(middle or 0) + 1), "limit": 100},
                    headers=feed_holder,
                )
                assert response.status_code == 200 and len(response.json()["events"]) == 100, response.text

            for name, call in (("partner_view_10000_invitations", view), ("invitation_list_first_page", invitations),
                               ("event_feed_page_1000000_events", feed)):  # fmt: skip
                await measure(call, 100, 1)
                results[name] = {"sequential": await measure(call, requests, 1)}
            results["memberships"] = await pool.fetchval("SELECT count(*) FROM members WHERE active")
            results["events"] = await pool.fetchval("SELECT count(*) FROM events")
            results["sql"] = await pool.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT m.partner_id FROM members m"
                " JOIN partners p ON p.id = m.partner_id AND p.status = 'active'"
                " WHERE m.email = 'u1@p4242.example' AND m.active"
            )
            return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partners", type=int, default=20_000, help="five members each: 100,000 memberships")
    parser.add_argument("--history-invitations", type=int, default=10_000)
    parser.add_argument("--history-events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    figures = asyncio.run(main(args.partners, args.requests, args.history_invitations, args.history_events))
    plan = figures.pop("sql")
    figures["sql_execution_ms"] = json.loads(plan)[0]["Execution Time"] if isinstance(plan, str) else plan
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "access.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
