"""R2 and R3 under concurrency: PostgreSQL decides, one registration at a time per enterprise."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.helpers.stack import Stack, new_enterprise, unique_domain


async def test_fifty_concurrent_registrations_at_nine_partners_end_with_ten(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    for _ in range(9):
        assert (await dev_stack.register(enterprise, unique_domain())).status_code == 201

    async with asyncio.timeout(120):
        responses = await asyncio.gather(*(dev_stack.register(enterprise, unique_domain()) for _ in range(50)))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 49}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"partner_limit_reached"}
    assert (
        await dev_stack.pool.fetchval(
            "SELECT count(*) FROM partners WHERE enterprise_id = $1 AND status <> 'deactivated'", enterprise
        )
        == 10
    )
    listed = await dev_stack.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE enterprise_id = $1 AND action = 'partner_registered'",
        enterprise,
    )
    assert listed == 10


async def test_concurrent_registrations_of_one_domain_keep_one(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()

    async with asyncio.timeout(60):
        responses = await asyncio.gather(
            *(dev_stack.register(enterprise, domain, name=f"Claimant {i}") for i in range(10))
        )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 9}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"domain_taken"}
    assert (
        await dev_stack.pool.fetchval(
            "SELECT count(*) FROM partner_domains WHERE enterprise_id = $1 AND domain = $2",
            enterprise,
            domain,
        )
        == 1
    )
