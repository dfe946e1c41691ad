"""`make bench-webhooks`: webhook deliveries (R15), commit to receipt, as the portal sees them.

The API and the worker run in processes of their own (bench/local.py); this driver
commits events as every change does (`audit()` in a transaction: the outbox row and its
NOTIFY) and holds the receiver, a bare HTTP server on loopback that verifies every
signature with `standardwebhooks` and answers 204 at once. Both ends read one clock.

- **latency**: events committed at random (Poisson) arrivals at a fixed rate; commit to
  receipt p50/p99.
- **drain**: 10,000 events committed as fast as the database takes them; the rate at
  which one endpoint receives them, the worker's CPU and Temporal Actions per event.
- **outage**: the receiver is down while events keep coming, then back: how long the
  backlog takes to arrive after it is back, and that it arrives whole and in order.

Writes bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import uvicorn
from standardwebhooks import Webhook

from bench.local import RESULTS, TOKEN, LocalStack, actions_by_type, local_stack, percentiles
from devstack.net import free_port
from partners.events import AuditAction
from store.sql import audit

ENTERPRISE = "bench-webhooks"
PARTNER = UUID("6f0c6c2e-3d7e-4d55-9a35-3b1f1f7e0b01")


@dataclass
class Receiver:
    """Records when each event arrived (by its number, carried as the logo's `size`)."""

    secret: str = ""
    port: int = field(default_factory=free_port)
    arrived: dict[int, float] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    unverified: int = 0
    _server: uvicorn.Server | None = None
    _serving: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        now = time.perf_counter()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            Webhook(self.secret).verify(body, {k.decode(): v.decode() for k, v in scope["headers"]})
        except Exception:
            self.unverified += 1
        number = json.loads(body)["data"]["size"]
        self.arrived.setdefault(number, now)
        self.order.append(number)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        self._server = _QuietServer(config)
        self._serving = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving

    async def wait_for(self, local: LocalStack, numbers: range, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not all(n in self.arrived for n in numbers):
                local.check()
                await asyncio.sleep(0.01)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the driver's signals stay the driver's
        yield


async def commit(local: LocalStack, number: int) -> float:
    """One change's event, committed as `audit()` commits it; when the commit returned."""
    async with local.pool.acquire() as db, db.transaction():
        await audit(db, ENTERPRISE, PARTNER, "bench", AuditAction.LOGO_SET, content_type="image/png", size=number)
    return time.perf_counter()


async def actions(port: int) -> float:
    return sum((await actions_by_type(port)).values())


async def latency(local: LocalStack, receiver: Receiver, first: int, events: int, rate: float) -> dict[str, Any]:
    rng = random.Random(15)
    committed: dict[int, float] = {}

    async def one(number: int) -> None:
        committed[number] = await commit(local, number)

    tasks = []
    for number in range(first, first + events):
        tasks.append(asyncio.create_task(one(number)))
        await asyncio.sleep(rng.expovariate(rate))
    await asyncio.gather(*tasks)
    await receiver.wait_for(local, range(first, first + events), timeout=120)
    samples = [receiver.arrived[n] - committed[n] for n in committed]
    return {"events": events, "rate_per_second": rate} | percentiles(samples)


async def drain(local: LocalStack, receiver: Receiver, first: int, events: int, metrics_port: int) -> dict[str, Any]:
    numbers = range(first, first + events)
    cpu, acted = local.cpu_seconds(), await actions(metrics_port)
    began = time.perf_counter()
    for batch in range(first, first + events, 100):
        async with local.pool.acquire() as db, db.transaction():
            for number in range(batch, min(batch + 100, first + events)):
                await audit(
                    db, ENTERPRISE, PARTNER, "bench", AuditAction.LOGO_SET, content_type="image/png", size=number
                )
    committed = time.perf_counter() - began
    await receiver.wait_for(local, numbers, timeout=3600)
    took = max(receiver.arrived[n] for n in numbers) - began
    await asyncio.sleep(5)  # the server's metrics catch up
    spent = {k: round((v - cpu.get(k, 0.0)) * 1000 / events, 2) for k, v in local.cpu_seconds().items()}
    return {
        "events": events,
        "committed_in_s": round(committed, 2),
        "received_all_in_s": round(took, 2),
        "per_second": round(events / took, 1),
        "cpu_ms_per_event": spent,
        "temporal_actions_per_event": round((await actions(metrics_port) - acted) / events, 2),
    }


async def outage(local: LocalStack, receiver: Receiver, first: int, events: int, down: float) -> dict[str, Any]:
    numbers = range(first, first + events)
    await receiver.stop()
    went_down = time.perf_counter()
    for number in numbers:  # events keep coming while it is down
        await commit(local, number)
        await asyncio.sleep(down / 2 / events)
    await asyncio.sleep(max(0.0, down - (time.perf_counter() - went_down)))
    before = len(receiver.order)
    await receiver.start()
    back = time.perf_counter()
    await receiver.wait_for(local, numbers, timeout=900)
    arrived = receiver.order[before:]
    return {
        "events": events,
        "down_s": down,
        "first_after_back_s": round(min(receiver.arrived[n] for n in numbers) - back, 2),
        "all_after_back_s": round(max(receiver.arrived[n] for n in numbers) - back, 2),
        "in_order": arrived == sorted(arrived),
        "received_twice": len(arrived) - len(set(arrived)),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    metrics_port = free_port()
    async with local_stack(temporal_db=True, metrics_port=metrics_port) as local:
        await local.pool.execute("INSERT INTO enterprises (id) VALUES ($1)", ENTERPRISE)
        await local.pool.execute(
            "INSERT INTO partners (id, enterprise_id, name, status, created_by)"
            " VALUES ($1, $2, 'Bench', 'active', 'b')",
            PARTNER,
            ENTERPRISE,
        )
        allow = {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}
        base = await local.start_api(**allow)
        # The worker sends no mail here; it is told where one would go.
        await local.start_worker(**allow, SMTP_HOST="127.0.0.1", SMTP_PORT=str(free_port()))
        receiver = Receiver()
        await receiver.start()
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            created = await http.post(
                f"/v1/enterprises/{ENTERPRISE}/webhooks",
                json={"url": f"http://127.0.0.1:{receiver.port}/hooks"},
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "X-Actor-Email": "holder@bench.example",
                    "X-Actor-Role": "account_holder",
                    "X-Actor-Enterprise": ENTERPRISE,
                },
            )
            assert created.status_code == 201, created.text
        receiver.secret = created.json()["secret"]
        try:
            print("warm-up", flush=True)
            await latency(local, receiver, 0, 50, args.rate)
            results: dict[str, Any] = {"cores": os.cpu_count()}
            print("latency", flush=True)
            results["latency"] = await latency(local, receiver, 1_000, args.events, args.rate)
            print("drain", flush=True)
            results["drain"] = await drain(local, receiver, 100_000, args.drain, metrics_port)
            print("outage", flush=True)
            results["outage"] = await outage(local, receiver, 1_000_000, args.outage_events, args.down)
            results["unverified"] = receiver.unverified
            return results
        finally:
            with contextlib.suppress(Exception):
                await receiver.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second in the latency phase")
    parser.add_argument("--events", type=int, default=1_000, help="events in the latency phase")
    parser.add_argument("--drain", type=int, default=10_000, help="events committed at once")
    parser.add_argument("--outage-events", type=int, default=500)
    parser.add_argument("--down", type=float, default=60.0, help="seconds the receiver is down")
    figures = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhooks.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
