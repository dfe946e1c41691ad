"""`make bench-scale`: the curve as the work grows. The system is filled with
`--sizes` waiting invitations (each a partner whose first admin has not clicked yet,
across 1,000 enterprises), and at each size:

- register → 201 p99 (open loop, `--rate` per second);
- click → active p99, warm (just registered, cached) and cold (after a worker restart,
  replayed from history);
- the worker's RSS (goal: bounded by WORKER_MAX_CACHED_WORKFLOWS, not by the count);
- PostgreSQL's size per waiting invitation;
- the time from a worker's start to its first accepted click with that many waiting.

Where a slow request's time went: each latency is also split by whether a full garbage
collection of the worker, the API or this driver overlapped it (the processes log each one
with its length, `partners/collector.py`, and their logs are read back here; the driver
times its own), and the Temporal server's and the worker's own latency histograms are
scraped around the registrations (the server's persistence and frontend, the SDK's
workflow task and local activity latencies).

The API, the worker and the SMTP catcher each in a process of their own, the Temporal dev
server on its database file, as `make bench`. Writes bench/results/scale.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench.catcher import Catcher
from bench.driver import Bench, api_session, open_loop
from bench.local import RESULTS, TOKEN, histogram_deltas, histograms, local_stack, percentiles
from devstack.net import free_port
from partners import collector
from partners.settings import Settings
from partners.temporal_client import connect_client
from tests.helpers.stack import partner_body

ENTERPRISES = 1_000
COLLECTED = re.compile(r"full collection held the loop (\d+) ms")
SERVER_HISTOGRAMS = ("service_latency", "persistence_latency")
WORKER_HISTOGRAMS = ("temporal_workflow_task", "temporal_local_activity", "temporal_activity")
# A request that arrives just after a collection still waits behind the workflow tasks
# queued during it: it met the collection too.
BACKLOG = 0.1
Sample = tuple[float, float]  # (started, in epoch seconds; took, in seconds)
Pause = tuple[float, float]  # a full collection: (started, ended) in epoch seconds


class Scale:
    def __init__(self, bench: Bench, metrics: dict[str, tuple[int, tuple[str, ...]]]) -> None:
        self.bench = bench
        self.metrics = metrics  # the latency histograms read around registrations: by process, port and names
        self.count = 0
        self.waiting: list[dict[str, Any]] = []  # registered, not clicked: oldest first
        self.driver_pauses: list[Pause] = []  # this process's own full collections

    def driver_paused(self, took: float, _freed: int) -> None:
        ended = time.time()
        self.driver_pauses.append((ended - took, ended))

    async def register(self, _: int = 0) -> dict[str, Any]:
        """A partner of one of 1,000 enterprises; its admin's link once mailed."""
        number, self.count = self.count, self.count + 1
        enterprise = f"scale-{number % ENTERPRISES}"
        domain = f"s{uuid.uuid4().hex[:10]}.example"
        at, started = time.time(), time.perf_counter()
        status, created = await self.bench.call(
            "POST",
            f"/v1/enterprises/{enterprise}/partners",
            json=partner_body(domain),
            headers={"Authorization": f"Bearer {TOKEN}", "X-Actor-Email": "holder@bench.example",
                     "X-Actor-Role": "account_holder", "X-Actor-Enterprise": enterprise},
        )  # fmt: skip
        answered = time.perf_counter() - started
        assert status == 201, created
        link, _mailed = await self.bench.catcher.next_mail(f"ada@{domain}")
        partner: dict[str, Any] = {"id": json.loads(created)["id"], "link": link, "register": (at, answered)}
        self.waiting.append(partner)
        return partner

    async def fill(self, size: int, concurrency: int = 16) -> float:
        """Registrations until `size` wait; how many per second went in."""
        gate, started, missing = asyncio.Semaphore(concurrency), time.perf_counter(), size - len(self.waiting)

        async def one(_: int) -> None:
            async with gate:
                await self.register()

        await asyncio.gather(*(one(i) for i in range(missing)))
        return round(missing / (time.perf_counter() - started), 1) if missing else 0.0

    async def clicks(self, partners: list[dict[str, Any]]) -> list[Sample]:
        latencies = [(time.time(), await self.bench.click(p)) for p in partners]
        for p in partners:
            self.waiting.remove(p)
        return latencies


def collections(log: Path) -> list[Pause]:
    """The full collections a process logged (its JSON log), as (start, end) in epoch
    seconds: a line is written as its collection ends."""
    pauses = []
    for line in log.read_text().splitlines():
        if (found := COLLECTED.search(line)) and line.startswith("{"):
            end = datetime.fromisoformat(json.loads(line)["time"]).timestamp()
            pauses.append((end - int(found[1]) / 1000, end))
    return pauses


def attributed(samples: list[Sample], pauses: dict[str, list[Pause]]) -> dict[str, Any]:
    """Percentiles of all the samples and of those no process's collection met; the
    slowest five, each with the collections it met (ms, by process)."""

    def met(sample: Sample) -> dict[str, int]:
        at, took = sample
        return {
            process: round(max(end - start for start, end in overlapping) * 1000)
            for process, found in pauses.items()
            if (overlapping := [(start, end) for start, end in found if start < at + took and at < end + BACKLOG])
        }

    clear = [took for at, took in samples if not met((at, took))]
    return {
        "all": percentiles([took for _, took in samples]),
        "outside_collections": percentiles(clear) if clear else None,
        "met_a_collection": len(samples) - len(clear),
        "slowest": [
            {"ms": round(s[1] * 1000, 1), "collections_ms": met(s)} for s in sorted(samples, key=lambda s: -s[1])[:5]
        ],
    }


async def at_size(scale: Scale, size: int, args: argparse.Namespace, smtp: dict[str, str]) -> dict[str, Any]:
    bench, local = scale.bench, scale.bench.local
    filled_per_s = await scale.fill(size)
    measured_from = time.time()
    ports = scale.metrics
    before = {name: await histograms(port, names) for name, (port, names) in ports.items()}
    partners = await open_loop(args.rate, range(args.samples), scale.register)
    after = {name: await histograms(port, names) for name, (port, names) in ports.items()}
    registered = [p["register"] for p in partners]
    warm = await scale.clicks(partners)
    await scale.fill(size)  # back to the size after the clicks
    worker = psutil.Process(local.processes["worker"].pid)
    rss = worker.memory_info().rss
    invitations = await local.pool.fetchval("SELECT count(*) FROM invitations WHERE state = 'pending'")
    database = await local.pool.fetchval("SELECT pg_database_size(current_database())")
    # A worker started with this many waiting: its first accepted click, then cold clicks
    # of the oldest invitations (none of them in its cache).
    await local.stop("worker")
    started = time.perf_counter()
    await local.start("worker", "worker", **smtp)
    first = scale.waiting[0]
    await bench.click(first)
    scale.waiting.remove(first)
    first_click = time.perf_counter() - started
    cold = await scale.clicks(scale.waiting[: args.samples])
    pauses = {name: [p for p in collections(log) if p[1] >= measured_from] for name, log in local.logs.items()}
    pauses["driver"] = [p for p in scale.driver_pauses if p[1] >= measured_from]
    await scale.fill(size)
    return {
        "waiting": size,
        "filled_per_s": filled_per_s,
        "register_ms": percentiles([took for _, took in registered]),
        "click_warm_ms": percentiles([took for _, took in warm]),
        "click_cold_ms": percentiles([took for _, took in cold]),
        "worker_rss_mib": round(rss / 2**20, 1),
        "postgres_bytes_per_waiting_invitation": round(database / max(invitations, 1)),
        "worker_start_to_first_click_s": round(first_click, 2),
        "collections_ms": {
            name: [round((end - start) * 1000) for start, end in found] for name, found in pauses.items()
        },
        "during_registrations": {name: histogram_deltas(before[name], after[name]) for name in ports},
        "by_collection": {
            "register": attributed(registered, pauses),
            "click_warm": attributed(warm, pauses),
            "click_cold": attributed(cold, pauses),
        },
    }


async def caches_at_size(
    scale: Scale, size: int, args: argparse.Namespace, smtp: dict[str, str]
) -> list[dict[str, Any]]:
    """With `size` waiting, the worker restarted with each of `--caches` cached workflows
    (WORKER_MAX_CACHED_WORKFLOWS) and its full collection every `--gc-interval` seconds:
    its cache filled first (`cache` registrations more, their garbage collected), then
    registrations at `--rate` (each a workflow cached, evicting the least recent), warm
    clicks of them, cold clicks of the oldest; the worker's full collections meanwhile,
    longest first, and the clicks' p99 against the cache."""
    bench, local = scale.bench, scale.bench.local
    curve = []
    for cache in args.caches:
        await scale.fill(size)
        await local.stop("worker")
        extra = {
            "WORKER_MAX_CACHED_WORKFLOWS": str(cache),
            "WORKER_GC_INTERVAL": str(args.gc_interval),
            "LOG_LEVEL": "INFO",  # every full collection logged, the short ones too
        }
        await local.start("worker", "worker", **smtp, **extra)
        first = scale.waiting[0]
        await bench.click(first)  # the worker is up and polling
        scale.waiting.remove(first)
        # Its cache full, as after hours of running (each registration's workflow stays
        # cached, waiting), and the garbage of filling it collected.
        await scale.fill(len(scale.waiting) + cache)
        await asyncio.sleep(args.gc_interval)
        measured_from = time.time()
        partners = await open_loop(args.rate, range(args.samples), scale.register)
        warm = await scale.clicks(partners)
        cold = await scale.clicks(scale.waiting[: args.samples])
        await asyncio.sleep(args.gc_interval)  # the last window's collection
        logged = collections(local.logs["worker"])
        worker = [round((end - start) * 1000) for start, end in logged if end >= measured_from]
        curve.append(
            {
                "cache": cache,
                "waiting": len(scale.waiting),
                "worker_collections_ms": sorted(worker, reverse=True),
                "longest_pause_ms": max(worker, default=0),
                "register_ms": percentiles([took for _, took in (p["register"] for p in partners)]),
                "click_warm_ms": percentiles([took for _, took in warm]),
                "click_cold_ms": percentiles([took for _, took in cold]),
                "worker_rss_mib": round(psutil.Process(local.processes["worker"].pid).memory_info().rss / 2**20, 1),
            }
        )
        print(json.dumps(curve[-1]), flush=True)
    return curve


def plot(results: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["sizes"]
    sizes = [r["waiting"] for r in rows]

    def latency(name: str) -> dict[str, list[float]]:
        lines = {q: [r[f"{name}_ms"][f"{q}_ms"] for r in rows] for q in ("p50", "p99")}
        if all("by_collection" in r for r in rows):  # runs before 2026-12-07 did not place them
            clear = [r["by_collection"][name]["outside_collections"] for r in rows]
            lines["p99, no collection met"] = [c["p99_ms"] if c else float("nan") for c in clear]
        return lines

    figures: dict[str, dict[str, list[float]]] = {
        "register (ms)": latency("register"),
        "click warm (ms)": latency("click_warm"),
        "click cold (ms)": latency("click_cold"),
        "worker RSS (MiB)": {"": [r["worker_rss_mib"] for r in rows]},
        "PostgreSQL bytes per waiting invitation": {"": [r["postgres_bytes_per_waiting_invitation"] for r in rows]},
        "worker start → first click (s)": {"": [r["worker_start_to_first_click_s"] for r in rows]},
    }
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (name, lines) in zip(axes.flat, figures.items(), strict=True):
        for label, values in lines.items():
            ax.plot(sizes, values, marker="o", label=label or None, linestyle="--" if "no collection" in label else "-")
        ax.set_xscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("waiting invitations")
        ax.set_ylim(bottom=0)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    metrics = free_port()
    async with local_stack(temporal_db=True, metrics_port=metrics) as local:
        catcher = await Catcher.start(local)
        # A partner limit, and registrations a day, that 1,000 enterprises' share of the
        # largest size fits in.
        smtp = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(catcher.port),
            "PARTNER_LIMIT": "100000",
            "ENTERPRISE_DAILY_REGISTRATION_LIMIT": "100000",
            "LOG_FORMAT": "json",
        }
        local.logs.update(api=local.work / "api.log", worker=local.work / "worker.log")
        base = await local.start_api(**smtp)
        smtp.update(PUBLIC_BASE_URL=base, API_PORT=base.rsplit(":", 1)[1], WORKER_METRICS_PORT=str(free_port()))
        await local.start_worker(**smtp)
        client = await connect_client(Settings(temporal_address=local.temporal.address))
        async with api_session(base) as http:
            histograms_of = {
                "temporal_server": (metrics, SERVER_HISTOGRAMS),
                "worker": (int(smtp["WORKER_METRICS_PORT"]), WORKER_HISTOGRAMS),
            }
            scale = Scale(Bench(local, catcher, http, client, metrics), histograms_of)
            await scale.clicks([await scale.register() for _ in range(10)])  # warm-up
            results: dict[str, Any] = {"args": vars(args), "enterprises": ENTERPRISES, "sizes": []}
            with collector.timed(scale.driver_paused):
                for size in args.sizes:
                    print(f"size {size}", flush=True)
                    if args.caches:  # the curve against the cache instead
                        results.setdefault("caches", []).extend(await caches_at_size(scale, size, args, smtp))
                    else:
                        results["sizes"].append(await at_size(scale, size, args, smtp))
                    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
            if args.caches:
                return results
    first, last = results["sizes"][0], results["sizes"][-1]
    results["largest_over_smallest"] = {
        name: round(last[name]["p99_ms"] / first[name]["p99_ms"], 2)
        for name in ("register_ms", "click_warm_ms", "click_cold_ms")
    }
    results["largest_over_smallest_outside_collections"] = {
        name: round(last["by_collection"][name]["outside_collections"]["p99_ms"]
                    / first["by_collection"][name]["outside_collections"]["p99_ms"], 2)
        for name in ("register", "click_warm", "click_cold")
    }  # fmt: skip
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--samples", type=int, default=100, help="registrations and clicks measured per size")
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--out", default="scale", help="bench/results/<out>.json and .png")
    parser.add_argument(
        "--caches", type=int, nargs="*", default=[], help="instead: the pause and click curve against the cache size"
    )
    parser.add_argument("--gc-interval", type=float, default=60.0, help="with --caches: WORKER_GC_INTERVAL")
    figures = asyncio.run(main(parser.parse_args()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{figures['args']['out']}.json").write_text(json.dumps(figures, indent=2) + "\n")
    if not figures["args"]["caches"]:
        plot(figures, str(RESULTS / f"{figures['args']['out']}.png"))
    print(json.dumps(figures, indent=2))
