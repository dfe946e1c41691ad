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
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import psutil
import uvloop

from bench.catcher import Catcher
from bench.driver import TTL, Bench, api_session, open_loop
from bench.local import RESULTS, local_stack, percentiles
from bench.plot import plot
from devstack.net import free_port
from partners.ids import onboarding_workflow_id
from partners.settings import Settings
from partners.temporal_client import connect_client


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


async def capacity(
    bench: Bench, rates: list[float], seconds: float, reps: int = 1, registrations_per_s: float = 8.0
) -> dict[str, Any]:
    """Click p99 at rising rates: the highest within 300 ms with every click answered,
    ours and the floor's. A click refused under overload (a 503, an update timing out)
    is counted, not fatal: past its capacity a service does that. With `reps` > 1 each
    rate is stepped that many times (floor, ours, floor, ...) and its p99 is the median
    of the steps': one step's p99 is decided by a handful of clicks. A side that failed
    two rates in a row is not stepped higher: the other goes on to find its own limit."""
    found: dict[str, Any] = {"floor": [], "ours": []}
    click_of = {"floor": bench.floor_click, "ours": bench.click}

    async def ready(who: str, rate: float, count: int) -> list[Any]:
        """Runs waiting for a click: the floor's started and "mailed", ours registered
        through the API (at `registrations_per_s` at most) and their mails received."""
        if who == "floor":
            return await bench.floor_ready(count)
        return await open_loop(min(rate, registrations_per_s), range(count), bench.register)

    for rate in rates:
        count = max(20, int(rate * seconds))
        stepped = [who for who in ("floor", "ours") if not _failed_twice(found[who])]
        steps: dict[str, list[dict[str, Any]]] = {who: [] for who in stepped}
        for _ in range(reps):
            for who in stepped:
                waiting = await ready(who, rate, count)
                steps[who].append(answered(await open_loop(rate, waiting, partial(unanswered_as_none, click_of[who]))))
            print(f"  capacity {rate}/s: " + ", ".join(f"{who} p99 {steps[who][-1]['p99_ms']} ms" for who in stepped),
                  flush=True)  # fmt: skip
        for who, taken in steps.items():
            found[who].append({"rate": rate, **_median_step(taken)})
    for who in ("floor", "ours"):
        within = [r["rate"] for r in found[who] if _held(r)]
        found[f"{who}_max_rate"] = max(within) if within else 0
        # Held at every rate tried: the capacity is at least that, not that.
        found[f"{who}_limit_reached"] = len(within) < len(found[who])
    return found


def _held(step: dict[str, Any]) -> bool:
    return not step["unanswered"] and step["p99_ms"] is not None and step["p99_ms"] <= 300


def _failed_twice(steps: list[dict[str, Any]]) -> bool:
    return len(steps) >= 2 and not _held(steps[-1]) and not _held(steps[-2])


def _median_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One rate's steps as one: each figure's median, the unanswered clicks summed, and
    every step's p99 beside them."""
    if len(steps) == 1:
        return steps[0]
    figures = {}
    for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        values = [s[k] for s in steps if s[k] is not None]
        figures[k] = statistics.median(values) if values else None
    return {**figures, "unanswered": sum(s["unanswered"] for s in steps), "p99_each": [s["p99_ms"] for s in steps]}


async def unanswered_as_none(click: Callable[[Any], Awaitable[float]], item: Any) -> float | None:
    try:
        return await click(item)
    except Exception:  # any failure is an unanswered click, counted
        return None


def answered(latencies: list[float | None]) -> dict[str, Any]:
    times = [t for t in latencies if t is not None]
    found = percentiles(times) if times else dict.fromkeys(("p50_ms", "p95_ms", "p99_ms", "max_ms"))
    return {**found, "unanswered": len(latencies) - len(times)}


async def footprint(bench: Bench, smtp: dict[str, str], pending: int) -> dict[str, Any]:
    """`pending` invitations waiting, every one cached: worker RSS per invitation beside
    the floor's per run, and the API's read p99 with them open against none."""
    reads = await open_loop(20, range(50), bench.register)

    async def read_p99() -> float:
        samples = []
        for partner in reads * 4:
            started = time.perf_counter()
            status, _ = await bench.call("GET", f"/v1/partners/{partner['id']}", headers=bench.holder(
                f"{bench.enterprise}-{partner['domain']}"))  # fmt: skip
            assert status == 200
            samples.append(time.perf_counter() - started)
        return percentiles(samples)["p99_ms"]

    before_read = await read_p99()
    ours = await cached(bench, "worker", "worker", bench.register, pending, **smtp)
    floor = await cached(bench, "floor", "bench.floor", bench.floor_register, pending)
    return {"pending": pending, "started_per_s": ours["started_per_s"], "floor": floor,
            "worker_rss_mib": ours["worker_rss_mib"], "kb_per_cached_invitation": ours["kb_per_cached_run"],
            "api_read_p99_ms": {"none_open": before_read, "with_them_open": await read_p99()}}  # fmt: skip


async def cached(
    bench: Bench, name: str, module: str, start_one: Callable[[int], Awaitable[Any]], pending: int, **extra: str
) -> dict[str, Any]:
    """`pending` runs started and left waiting, every one cached by a fresh worker process
    `name`: how fast they started, and its RSS before and after."""
    await bench.local.stop(name)
    await bench.local.start(name, module, WORKER_MAX_CACHED_WORKFLOWS=str(pending + 1000), **extra)
    await start_one(0)  # it polls
    process = psutil.Process(bench.local.processes[name].pid)
    before, started = process.memory_info().rss, time.perf_counter()
    gate = asyncio.Semaphore(20)  # bounded: as a portal's registrations arrive, not a flood

    async def one(i: int) -> None:
        async with gate:
            await start_one(i)

    await asyncio.gather(*(one(i) for i in range(pending)))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(3)
    after = process.memory_info().rss
    return {"started_per_s": round(pending / elapsed, 1),
            "worker_rss_mib": [round(before / 2**20), round(after / 2**20)],
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
        async with api_session(base) as http:
            bench = Bench(local, catcher, http, client, metrics)
            print("warm-up", flush=True)
            for partner in await open_loop(args.rate, range(20), bench.register):
                await bench.click(partner)
            await open_loop(args.rate, await bench.floor_ready(20), bench.floor_click)
            results: dict[str, Any] = {"args": vars(args), "cpus": psutil.cpu_count()}
            if args.capacity_only:
                results["capacity"] = await capacity(
                    bench, args.capacity_rates, args.capacity_seconds, args.capacity_reps
                )
                save(results, args.out)
                return
            results.update(await phases(bench, args, smtp))
            results["per_onboarding"] = per_unit(results["cost_per_rep"]["ours"], "register", "click")
            results["per_member_invitation"] = per_unit(results["cost_per_rep"]["ours"], "member_invitation")
            results["per_floor_run"] = per_unit(results["cost_per_rep"]["floor"], "register", "click")
            sample = onboarding_workflow_id(results.pop("sample_partner"))
            results["history"] = {"onboarding": await history_cost(bench, sample)}
            save(results, args.out)
            if args.phases_only:
                return
            print("capacity", flush=True)
            results["capacity"] = await capacity(bench, args.capacity_rates, args.capacity_seconds, args.capacity_reps)
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
        "capacity_clicks_per_s": {
            who: r["capacity"][f"{who}_max_rate"] if r["capacity"][f"{who}_limit_reached"] else "not reached"
            for who in ("ours", "floor")
        },
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
    parser.add_argument("--capacity-reps", type=int, default=1, help="steps per rate; the median p99 counts")
    parser.add_argument("--pending", type=int, default=2000, help="waiting invitations for the footprint")
    parser.add_argument("--reminders", type=int, default=20)
    parser.add_argument("--out", default="results")
    parser.add_argument(
        "--phases-only", action="store_true", help="stop after the alternating phases (CPU, Actions, latency)"
    )
    parser.add_argument("--capacity-only", action="store_true", help="after the warm-up, only the capacity steps")
    return parser.parse_args()


if __name__ == "__main__":
    # uvloop, as our API (uvicorn's) and both workers: the driver is the floor's starter.
    uvloop.run(main(_args()))
