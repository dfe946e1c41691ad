"""The benchmark's driver: arrivals in open loop, and what one onboarding, one member
invitation or one floor run is from the outside (HTTP and SMTP for ours, the Temporal
client for the floor), with the Actions and CPU a phase of them cost."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import aiohttp
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.catcher import Catcher
from bench.floor import FLOOR_QUEUE, FloorWorkflow
from bench.local import TOKEN, LocalStack, actions_by_type
from tests.helpers.stack import partner_body

TTL = "86400"  # nobody's invitation expires during a run, but for the reminder phase


async def open_loop(rate: float, items: Sequence[Any], one: Callable[[Any], Coroutine[Any, Any, Any]]) -> list[Any]:
    """Each item at a Poisson arrival time at `rate` per second, whatever the others do."""
    rng, tasks, at = random.Random(15), [], time.perf_counter()
    for item in items:
        at += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        tasks.append(asyncio.create_task(one(item)))
    return await asyncio.gather(*tasks)


def api_session(base: str) -> aiohttp.ClientSession:
    """The driver's HTTP client. aiohttp, not httpx: the driver shares the machine's two
    cores with what it measures, and httpx spent about 5 ms of CPU per request there (the
    floor's driver, on the Temporal client, about 2). Idle connections expire before
    uvicorn closes them (5 s)."""
    return aiohttp.ClientSession(
        base_url=base,
        connector=aiohttp.TCPConnector(keepalive_timeout=2.0),
        timeout=aiohttp.ClientTimeout(total=60),
    )


class Bench:
    def __init__(self, local: LocalStack, catcher: Catcher, http: aiohttp.ClientSession, client: Client, metrics: int):
        self.local, self.catcher, self.http, self.client, self._metrics = local, catcher, http, client, metrics
        self.enterprise = f"bench-{uuid.uuid4().hex[:8]}"
        self.unavailable = 0  # registrations answered 503 (and retried)

    # --- what is counted ------------------------------------------------------------------

    async def actions(self) -> dict[str, float]:
        return await actions_by_type(self._metrics)

    async def measured(self, units: int, phase: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, Any]]:
        """Runs a phase; its result, and its Actions and CPU per unit of work."""
        await asyncio.sleep(1.5)  # the previous phase's last workflow tasks are not this one's
        acted, cpu = await self.actions(), self.local.cpu_seconds()
        result = await phase()
        await asyncio.sleep(1.5)  # the last workflow tasks complete after the last answer
        after, cpu_after = await self.actions(), self.local.cpu_seconds()
        by_type = {k: round((after[k] - acted.get(k, 0.0)) / units, 2) for k in after if after[k] != acted.get(k)}
        cost = {
            "actions": round(sum(by_type.values()), 2),
            "actions_by_type": by_type,
            "cpu_ms": {k: round((cpu_after[k] - cpu.get(k, 0.0)) * 1000 / units, 1) for k in cpu_after},
        }
        return result, cost

    # --- ours -----------------------------------------------------------------------------

    async def register(self, _: int = 0) -> dict[str, Any]:
        domain, key = f"p{uuid.uuid4().hex[:10]}.example", str(uuid.uuid4())
        started = time.time()
        for _ in range(5):  # a 503 is retried with the same Idempotency-Key, as the portal must
            status, created = await self.call(
                "POST",
                f"/v1/enterprises/{self.enterprise}-{domain}/partners",  # one per enterprise: no quota
                json=partner_body(domain),
                headers={**self.holder(f"{self.enterprise}-{domain}"), "Idempotency-Key": key},
            )
            if status != 503:
                break
            self.unavailable += 1
        answered = time.time()
        assert status == 201, created
        link, arrived = await self.catcher.next_mail(f"ada@{domain}")
        return {"id": json.loads(created)["id"], "link": link, "admin": f"ada@{domain}", "domain": domain,
                "register": answered - started, "mail": arrived - started}  # fmt: skip

    async def click(self, partner: dict[str, Any]) -> float:
        started = time.perf_counter()
        _, page = await self.call("POST", f"{partner['link']}/accept")
        assert 'data-outcome="accepted"' in page, page[:300]
        return time.perf_counter() - started

    async def invite(self, partner: dict[str, Any]) -> dict[str, Any]:
        """The partner's Admin invites a member; the member's link once mailed."""
        member = f"mel-{uuid.uuid4().hex[:6]}@{partner['domain']}"
        status, invited = await self.call(
            "POST",
            f"/v1/partners/{partner['id']}/invitations",
            json={"first_name": "Mel", "last_name": "Member", "email": member},
            headers={"Authorization": f"Bearer {TOKEN}", "X-Actor-Email": partner["admin"],
                     "X-Actor-Role": "partner_user"},
        )  # fmt: skip
        assert status == 201, invited
        link, _ = await self.catcher.next_mail(member)
        return {"link": link}

    async def invited_and_accepted(self, rate: float, partners: list[dict[str, Any]]) -> None:
        """Invitations in open loop, then their clicks, later (the timer started, as for
        a real invitee)."""
        await open_loop(rate, await open_loop(rate, partners, self.invite), self.click)

    async def call(self, method: str, url: str, **kwargs: Any) -> tuple[int, str]:
        """A request to the API: its status and body."""
        async with self.http.request(method, url, **kwargs) as response:
            return response.status, await response.text()

    def holder(self, enterprise: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}", "X-Actor-Email": "holder@enterprise.example",
                "X-Actor-Role": "account_holder", "X-Actor-Enterprise": enterprise}  # fmt: skip

    # --- the floor ------------------------------------------------------------------------

    async def floor_register(self, _: int = 0) -> dict[str, Any]:
        workflow_id, started = f"floor-{uuid.uuid4()}", time.time()
        await self.client.execute_update_with_start_workflow(
            FloorWorkflow.registration,
            start_workflow_operation=WithStartWorkflowOperation(
                FloorWorkflow.run, float(TTL), id=workflow_id, task_queue=FLOOR_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            ),
        )  # fmt: skip
        return {"id": workflow_id, "register": time.time() - started}

    async def floor_click(self, registered: dict[str, Any]) -> float:
        started = time.perf_counter()
        await self.client.get_workflow_handle(registered["id"]).execute_update(FloorWorkflow.accept)
        return time.perf_counter() - started

    async def floor_sent(self, registered: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Once every run's activity (its "mail") is done, as a clicked invitation's is.
        Read from the history, not by a query: the server bills queries."""
        for run in registered:
            handle = self.client.get_workflow_handle(run["id"])
            while not [e async for e in handle.fetch_history_events() if e.HasField("timer_started_event_attributes")]:
                await asyncio.sleep(0.05)
        return registered

    async def floor_ready(self, count: int) -> list[dict[str, Any]]:
        """Runs registered and "mailed", ready for a click (outside any measured phase)."""
        return await self.floor_sent(await open_loop(20, range(count), self.floor_register))

    async def restart(self, name: str, module: str, **extra: str) -> None:
        """A worker stopped and started again: its cache is empty, the next click replays."""
        await self.local.stop(name)
        await self.local.start(name, module, **extra)
        await (self.register() if name == "worker" else self.floor_register())  # it polls again
