"""`make bench`: the service against a floor of its own shape, processes as in production.

The API, the worker, the floor's worker, the SMTP catcher and this driver each run in a
process of their own (bench/local.py, bench/catcher.py, bench/floor.py) on one Temporal
dev server (its database file, WAL) and embedded PostgreSQL; CPU is sampled per process.
Phases alternate, floor then ours, after a warm-up; arrivals are open loop (Poisson at a
fixed rate), latencies are read at the driver:

- register -> 201 and register -> mail received; the floor's update-with-start answer;
- click -> partner active, warm (the workflow cached) and cold (the worker restarted, the
  history replays), beside the floor's `accept` update, warm and cold;
- Temporal Actions (the server's own `action` metric) per accepted onboarding, per
  accepted member invitation and per automatic reminder, and the floor's per run;
- capacity: the highest click rate whose p99 stays <= 300 ms, ours and the floor's;
- footprint: the worker's RSS per cached waiting invitation, and the API's p99 with
  them open.

Writes bench/results/<out>.json and <out>.png. Sizes: BENCH_ARGS="--n 100 --rate 4".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any

import httpx
import psutil
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.catcher import Catcher
from bench.floor import FLOOR_QUEUE, FloorWorkflow
from bench.local import RESULTS, TOKEN, LocalStack, local_stack, percentiles
from bench.plot import plot
from devstack.net import free_port
from partners.ids import onboarding_workflow_id
from partners.settings import Settings
from tests.helpers.stack import partner_body
from worker import connect_client

TTL = "86400"  # nobody's invitation expires during a run, but for the reminder phase


async def open_loop(rate: float, items: Sequence[Any], one: Callable[[Any], Coroutine[Any, Any, Any]]) -> list[Any]:
    """Each item at a Poisson arrival time at `rate` per second, whatever the others do."""
    rng, tasks, at = random.Random(15), [], time.perf_counter()
    for item in items:
        at += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        tasks.append(asyncio.create_task(one(item)))
    return await asyncio.gather(*tasks)


class Bench:
    def __init__(self, local: LocalStack, catcher: Catcher, http: httpx.AsyncClient, client: Client, metrics: int):
        self.local, self.catcher, self.http, self.client, self._metrics = local, catcher, http, client, metrics
        self.enterprise = f"bench-{uuid.uuid4().hex[:8]}"
        self.unavailable = 0  # registrations answered 503 (and retried)

    # --- what is counted ------------------------------------------------------------------

    async def actions(self) -> dict[str, float]:
        """The dev server's own count of billable Actions, by type."""
        text = (await self.http.get(f"http://127.0.0.1:{self._metrics}/metrics")).text
        counted: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("action{") and 'namespace="default"' in line:
                kind = line.split('action_type="', 1)[1].split('"', 1)[0] if "action_type" in line else "?"
                counted[kind] = counted.get(kind, 0.0) + float(line.rsplit(" ", 1)[1])
        return counted

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
            created = await self.http.post(
                f"/v1/enterprises/{self.enterprise}-{domain}/partners",  # one per enterprise: no quota
                json=partner_body(domain),
                headers={**self._holder(f"{self.enterprise}-{domain}"), "Idempotency-Key": key},
            )
            if created.status_code != 503:
                break
            self.unavailable += 1
        answered = time.time()
        assert created.status_code == 201, created.text
        link, arrived = await self.catcher.next_mail(f"ada@{domain}")
        return {"id": created.json()["id"], "link": link, "admin": f"ada@{domain}", "domain": domain,
                "register": answered - started, "mail": arrived - started}  # fmt: skip

    async def click(self, partner: dict[str, Any]) -> float:
        started = time.perf_counter()
        page = await self.http.post(f"{partner['link']}/accept")
        assert 'data-outcome="accepted"' in page.text, page.text[:300]
        return time.perf_counter() - started

    async def invite(self, partner: dict[str, Any]) -> dict[str, Any]:
        """The partner's Admin invites a member; the member's link once mailed."""
        member = f"mel-{uuid.uuid4().hex[:6]}@{partner['domain']}"
        invited = await self.http.post(
            f"/v1/partners/{partner['id']}/invitations",
            json={"first_name": "Mel", "last_name": "Member", "email": member},
            headers={"Authorization": f"Bearer {TOKEN}", "X-Actor-Email": partner["admin"],
                     "X-Actor-Role": "partner_user"},
        )  # fmt: skip
        assert invited.status_code == 201, invited.text
        link, _ = await self.catcher.next_mail(member)
        return {"link": link}

    async def invited_and_accepted(self, rate: float, partners: list[dict[str, Any]]) -> None:
        """Invitations in open loop, then their clicks, later (the timer started, as for
        a real invitee)."""
        await open_loop(rate, await open_loop(rate, partners, self.invite), self.click)

    def _holder(self, enterprise: str) -> dict[str, str]:
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


async def phases(bench: Bench, args: argparse.Namespace, smtp: dict[str, str]) -> dict[str, Any]:
    n, rate, out = args.n, args.rate, dict[str, Any]()
    floor_lat: dict[str, list[float]] = {"register": [], "click_warm": [], "click_cold": []}
    ours_lat: dict[str, list[float]] = {"register": [], "mail": [], "click_warm": [], "click_cold": []}
    floor_cost, ours_cost = [], []
    for rep in range(args.reps):
        # The floor: registrations in open loop, then the same runs' clicks in open loop
        # (warm), and others' after its worker restarted (cold).
        registered, cost = await bench.measured(n, partial(open_loop, rate, range(n), bench.floor_register))
        floor_lat["register"] += [r["register"] for r in registered]
        await bench.floor_sent(registered)
        warm, clicks = await bench.measured(n, partial(open_loop, rate, registered, bench.floor_click))
        floor_lat["click_warm"] += warm
        cold = await bench.floor_ready(n)
        await bench.restart("floor", "bench.floor")
        floor_lat["click_cold"] += await open_loop(rate, cold, bench.floor_click)
        floor_cost.append({"register": cost, "click": clicks})

        # Ours: the same arrivals through the API, the mails through SMTP.
        registered, cost = await bench.measured(n, partial(open_loop, rate, range(n), bench.register))
        ours_lat["register"] += [r["register"] for r in registered]
        ours_lat["mail"] += [r["mail"] for r in registered]
        warm, clicks = await bench.measured(n, partial(open_loop, rate, registered, bench.click))
        ours_lat["click_warm"] += warm
        _, members = await bench.measured(n, partial(bench.invited_and_accepted, rate, registered))
        cold = await open_loop(rate * 4, range(n), bench.register)
        await bench.restart("worker", "worker", **smtp)
        ours_lat["click_cold"] += await open_loop(rate, cold, bench.click)
        ours_cost.append({"register": cost, "click": clicks, "member_invitation": members})
        print(f"  rep {rep + 1}: ours click p99 {percentiles(warm)['p99_ms']} ms", flush=True)
    out["latency"] = {
        "floor": {k: percentiles(v) for k, v in floor_lat.items()},
        "ours": {k: percentiles(v) for k, v in ours_lat.items()},
    }
    out["cost_per_rep"] = {"floor": floor_cost, "ours": ours_cost}
    out["sample_partner"] = registered[0]["id"]
    return out


def per_unit(costs: list[dict[str, Any]], *parts: str) -> dict[str, Any]:
    """Median over repetitions of the sum of `parts`' Actions and Python CPU."""
    actions = [sum(c[p]["actions"] for p in parts) for c in costs]
    cpu: dict[str, float] = {}
    for name in costs[0][parts[0]]["cpu_ms"]:
        cpu[name] = float(statistics.median(sum(c[p]["cpu_ms"][name] for p in parts) for c in costs))
    return {"actions": statistics.median(actions), "cpu_ms": cpu}


async def reminders(bench: Bench, smtp: dict[str, str], count: int) -> dict[str, Any]:
    """What one automatic reminder costs: invitations left to expire after two sends,
    against the same after one (the rest of their lives is alike)."""
    costs = []
    for sends in ("1", "2"):
        await bench.local.stop("api")
        await bench.local.start_api(**{**smtp, "INVITATION_TTL": "2", "INVITATION_MAX_SENDS": sends})

        async def expired(_i: int, sends: str = sends) -> None:
            partner = await bench.register()
            for _ in range(int(sends) - 1):
                await bench.catcher.next_mail(partner["admin"], timeout=30)
            while (
                await bench.local.pool.fetchval(
                    "SELECT state FROM invitations WHERE partner_id = $1::uuid", partner["id"]
                )
                != "expired"
            ):
                await asyncio.sleep(0.2)

        _, cost = await bench.measured(count, partial(open_loop, 10, range(count), expired))
        costs.append(cost)
    return {
        "one_send": costs[0],
        "two_sends": costs[1],
        "per_reminder": round(costs[1]["actions"] - costs[0]["actions"], 2),
    }


async def capacity(bench: Bench, rates: list[float], seconds: float) -> dict[str, Any]:
    """Click p99 at rising rates: the highest within 300 ms, ours and the floor's."""
    found: dict[str, Any] = {"floor": [], "ours": []}
    for rate in rates:
        count = max(20, int(rate * seconds))
        ready = await bench.floor_ready(count)
        floor = percentiles(await open_loop(rate, ready, bench.floor_click))
        mailed = await open_loop(min(rate, 8.0), range(count), bench.register)
        ours = percentiles(await open_loop(rate, mailed, bench.click))
        found["floor"].append({"rate": rate, **floor})
        found["ours"].append({"rate": rate, **ours})
        print(f"  capacity {rate}/s: floor p99 {floor['p99_ms']} ms, ours p99 {ours['p99_ms']} ms", flush=True)
    for who in ("floor", "ours"):
        within = [r["rate"] for r in found[who] if r["p99_ms"] <= 300]
        found[f"{who}_max_rate"] = max(within) if within else 0
    return found


async def footprint(bench: Bench, smtp: dict[str, str], pending: int) -> dict[str, Any]:
    """`pending` invitations waiting, every one cached: worker RSS per invitation, and the
    API's read p99 with them open against none."""
    reads = [p for p in await open_loop(20, range(50), bench.register)]

    async def read_p99() -> float:
        samples = []
        for partner in reads * 4:
            started = time.perf_counter()
            assert (await bench.http.get(f"/v1/partners/{partner['id']}", headers=bench._holder(
                f"{bench.enterprise}-{partner['domain']}"))).status_code == 200  # fmt: skip
            samples.append(time.perf_counter() - started)
        return percentiles(samples)["p99_ms"]

    before_read = await read_p99()
    await bench.local.stop("worker")
    await bench.local.start_worker(WORKER_MAX_CACHED_WORKFLOWS=str(pending + 1000), **smtp)
    await bench.register()  # it polls
    worker = psutil.Process(bench.local.processes["worker"].pid)
    rss_before = worker.memory_info().rss
    started = time.perf_counter()
    gate = asyncio.Semaphore(20)  # bounded: as a portal's registrations arrive, not a flood

    async def one(i: int) -> None:
        async with gate:
            await bench.register(i)

    await asyncio.gather(*(one(i) for i in range(pending)))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(3)
    rss_after = worker.memory_info().rss
    floor = await floor_footprint(bench, pending)
    return {"pending": pending, "started_per_s": round(pending / elapsed, 1), "floor": floor,
            "worker_rss_mib": [round(rss_before / 2**20), round(rss_after / 2**20)],
            "kb_per_cached_invitation": round((rss_after - rss_before) / pending / 1024, 1),
            "api_read_p99_ms": {"none_open": before_read, "with_them_open": await read_p99()}}  # fmt: skip


async def floor_footprint(bench: Bench, pending: int) -> dict[str, Any]:
    """The same for the floor's runs, waiting on their timer, every one cached."""
    await bench.local.stop("floor")
    await bench.local.start("floor", "bench.floor", WORKER_MAX_CACHED_WORKFLOWS=str(pending + 1000))
    await bench.floor_register()  # it polls
    process = psutil.Process(bench.local.processes["floor"].pid)
    before = process.memory_info().rss
    gate = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with gate:
            await bench.floor_register(i)

    await asyncio.gather(*(one(i) for i in range(pending)))
    await asyncio.sleep(3)
    after = process.memory_info().rss
    return {"worker_rss_mib": [round(before / 2**20), round(after / 2**20)],
            "kb_per_cached_run": round((after - before) / pending / 1024, 1)}  # fmt: skip


async def history_cost(bench: Bench, workflow_id: str) -> dict[str, int]:
    info = (await bench.client.get_workflow_handle(workflow_id).describe()).raw_description.workflow_execution_info
    return {"state_transitions": info.state_transition_count, "history_events": info.history_length}


async def main(args: argparse.Namespace) -> None:
    metrics = free_port()
    async with local_stack(temporal_db=True, metrics_port=metrics) as local:
        catcher = await Catcher.start(local)
        smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(catcher.port), "INVITATION_TTL": TTL}
        base = await local.start_api(**smtp)
        smtp.update(PUBLIC_BASE_URL=base, API_PORT=base.rsplit(":", 1)[1])  # the worker writes the links
        await local.start_worker(**smtp)
        await local.start("floor", "bench.floor")
        client = await connect_client(Settings(temporal_address=local.temporal.address))
        limits = httpx.Limits(keepalive_expiry=2.0)  # idle connections expire before uvicorn closes them
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            bench = Bench(local, catcher, http, client, metrics)
            print("warm-up", flush=True)
            for partner in await open_loop(args.rate, range(20), bench.register):
                await bench.click(partner)
            await open_loop(args.rate, await bench.floor_ready(20), bench.floor_click)
            results: dict[str, Any] = {"args": vars(args), "cpus": psutil.cpu_count()}
            results.update(await phases(bench, args, smtp))
            results["per_onboarding"] = per_unit(results["cost_per_rep"]["ours"], "register", "click")
            results["per_member_invitation"] = per_unit(results["cost_per_rep"]["ours"], "member_invitation")
            results["per_floor_run"] = per_unit(results["cost_per_rep"]["floor"], "register", "click")
            sample = onboarding_workflow_id(results.pop("sample_partner"))
            results["history"] = {"onboarding": await history_cost(bench, sample)}
            save(results, args.out)
            print("capacity", flush=True)
            results["capacity"] = await capacity(bench, args.capacity_rates, args.capacity_seconds)
            save(results, args.out)
            print("footprint", flush=True)
            results["footprint"] = await footprint(bench, smtp, args.pending)
            save(results, args.out)
            print("reminders", flush=True)
            results["reminders"] = await reminders(bench, smtp, args.reminders)
            results["registrations_answered_503"] = bench.unavailable
            # The send ledger counts attempts: a mail sent twice needs a retried attempt first.
            results["mail_attempts_retried"] = await local.pool.fetchval(
                "SELECT coalesce(sum(attempts - 1), 0) FROM invitation_sends"
            )
        results["summary"] = summary(results)
    save(results, args.out)
    plot(results, RESULTS / f"{args.out}.png")
    print(json.dumps(results["summary"], indent=2))


def save(results: dict[str, Any], out: str) -> None:
    """After each part: a run cut short keeps what it measured."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{out}.json").write_text(json.dumps(results, indent=2))


def summary(r: dict[str, Any]) -> dict[str, Any]:
    lat, ours, floor = r["latency"], r["per_onboarding"], r["per_floor_run"]
    python = ours["cpu_ms"]["api"] + ours["cpu_ms"]["worker"]
    floor_python = floor["cpu_ms"]["floor"] + floor["cpu_ms"]["driver"]
    return {
        "actions_per_onboarding": ours["actions"],
        "actions_per_member_invitation": r["per_member_invitation"]["actions"],
        "actions_per_reminder": r["reminders"]["per_reminder"],
        "actions_per_floor_run": floor["actions"],
        "python_cpu_ms_per_onboarding": round(python, 1),
        "floor_python_cpu_ms": round(floor_python, 1),
        "python_cpu_ratio": round(python / floor_python, 2),
        "click_p99_warm_ratio": round(lat["ours"]["click_warm"]["p99_ms"] / lat["floor"]["click_warm"]["p99_ms"], 2),
        "click_p99_cold_ratio": round(lat["ours"]["click_cold"]["p99_ms"] / lat["floor"]["click_cold"]["p99_ms"], 2),
        "capacity_clicks_per_s": {"ours": r["capacity"]["ours_max_rate"], "floor": r["capacity"]["floor_max_rate"]},
        "kb_per_cached_invitation": r["footprint"]["kb_per_cached_invitation"],
        "floor_kb_per_cached_run": r["footprint"]["floor"]["kb_per_cached_run"],
    }


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="arrivals per phase")
    parser.add_argument("--rate", type=float, default=4.0, help="arrivals per second (Poisson)")
    parser.add_argument("--reps", type=int, default=2, help="alternating floor/ours repetitions")
    parser.add_argument("--capacity-rates", type=lambda s: [float(x) for x in s.split(",")], default=[8, 16, 32, 48])
    parser.add_argument("--capacity-seconds", type=float, default=8.0)
    parser.add_argument("--pending", type=int, default=2000, help="waiting invitations for the footprint")
    parser.add_argument("--reminders", type=int, default=20)
    parser.add_argument("--out", default="results")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
