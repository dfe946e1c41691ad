"""The local stack a benchmark measures, with processes as in production: embedded
PostgreSQL, the Temporal dev server, and the API and the worker each in a process of its
own (`python -m starter.api`, `python -m worker`), so the driver never shares their core."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from devstack.deployment import make_current
from devstack.net import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import TemporalDevServer
from partners import search
from partners.codec import new_key_entry
from partners.settings import Settings
from partners.temporal_client import connect_client
from store.database import create_pool, migrate

TOKEN = "bench-token"  # noqa: S105 (a throwaway API token of this run)
# A throwaway payload key of this run, for the driver's clients and the processes alike.
os.environ.setdefault("PAYLOAD_KEYS", new_key_entry("bench"))
RESULTS = Path(__file__).parent / "results"
# BENCH_PROFILE=<name>: py-spy samples the API and the worker processes for the whole run,
# attached by pid (its own CPU is not theirs), into bench/results/profiles/<name>-<process>-<pid>.txt
# (collapsed stacks; `python -m bench.profile` ranks them).
PROFILE = os.environ.get("BENCH_PROFILE", "")


async def profile(pid: int, name: str) -> None:
    """py-spy on `pid` until it exits, without pausing it (--nonblocking)."""
    out = RESULTS / "profiles" / f"{PROFILE}-{name}-{pid}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    await asyncio.create_subprocess_exec(
        str(spy), "record", "--pid", str(pid), "--nonblocking", "--rate", "100",
        "--format", "raw", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class LocalStack:
    dsn: str
    temporal: TemporalDevServer
    pool: asyncpg.Pool
    work: Path
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)  # a process's standard error, by name

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "TEMPORAL_ADDRESS": self.temporal.address,
            "PORTAL_API_TOKEN": TOKEN,
            "API_METRICS_PORT": "0",
            "WORKER_METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
            **extra,
        }

    async def start_api(self, **extra: str) -> str:
        """The API on a free port; answers its base URL once /healthz answers."""
        port = int(extra.pop("API_PORT", 0)) or free_port()
        base = f"http://127.0.0.1:{port}"
        listeners = {"API_PORT": str(port), "OPERATOR_PORT": str(free_port())}
        await self.start("api", "starter.api", **{"PUBLIC_BASE_URL": base, **extra, **listeners})
        async with httpx.AsyncClient(base_url=base, timeout=2) as http, asyncio.timeout(60):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        return base
                await asyncio.sleep(0.2)

    async def start_worker(self, **extra: str) -> asyncio.subprocess.Process:
        """The worker, its build made current (a fresh dev server has none: Worker Versioning)."""
        process = await self.start("worker", "worker", **extra)
        settings = Settings(temporal_address=self.temporal.address)
        await make_current(await connect_client(settings), settings)
        return process

    async def start(self, name: str, module: str, *args: str, **extra: str) -> asyncio.subprocess.Process:
        """`python -m module args` with the stack's environment, known by `name`; its
        standard error appended to `logs[name]` if set (the driver's own otherwise)."""
        log = self.logs.get(name)
        with open(log or os.devnull, "ab") as appended:  # noqa: ASYNC230 (once per process started)
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, *args, env=self.env(**extra), stderr=appended if log else None
            )
        if PROFILE and name in ("api", "worker"):
            await profile(self.processes[name].pid, name)
        return self.processes[name]

    async def stop(self, name: str) -> None:
        """SIGTERM, as an orchestrator stops a process (a worker drains its activities)."""
        process = self.processes.pop(name)
        process.terminate()
        await _ended(process, within=40)

    def check(self) -> None:
        """Raises if a process of the stack has died (a benchmark must not wait on it)."""
        for name, process in self.processes.items():
            if process.returncode is not None:
                raise RuntimeError(f"the {name} process exited with {process.returncode}")

    def cpu_seconds(self) -> dict[str, float]:
        """User and system CPU of each process of the stack so far."""
        parts: dict[str, list[psutil.Process]] = {
            name: [psutil.Process(p.pid)] for name, p in self.processes.items() if p.returncode is None
        }
        parts["driver"] = [psutil.Process()]
        me = psutil.Process()
        parts["temporal_server"] = [p for p in me.children(recursive=True) if "temporal" in p.name()]
        # By the data directory: the Temporal server's command line names the work
        # directory too (its database file), and must not count as PostgreSQL.
        data_dir = str(self.work / "postgres")
        postmaster = [p for p in psutil.process_iter(["cmdline"]) if data_dir in " ".join(p.info["cmdline"] or [])]
        parts["postgres"] = postmaster + [c for p in postmaster for c in p.children(recursive=True)]
        seconds = {}
        for name, processes in parts.items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            seconds[name] = round(total, 3)
        return seconds

    async def stop_processes(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            await _ended(process, within=30)


async def _ended(process: asyncio.subprocess.Process, *, within: float) -> None:
    """Waits for a process told to stop; kills it if it has not within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def local_stack(*, temporal_db: bool = False, **temporal: Any) -> AsyncIterator[LocalStack]:
    with tempfile.TemporaryDirectory(prefix="partners-bench-") as tmp:
        work = Path(tmp)
        postgres = EmbeddedPostgres(work / "postgres", delete_on_stop=True)
        dsn = await postgres.start()
        server = TemporalDevServer(
            db_file=work / "temporal.db" if temporal_db else None,
            search_attributes=search.ALL,
            port=free_port(),
            ui_port=None,
            **temporal,
        )
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(postgres.stop)
            await server.start()
            stack.push_async_callback(server.stop)
            pool = await create_pool(dsn, size=8)
            stack.push_async_callback(pool.close)
            await migrate(pool)
            local = LocalStack(dsn, server, pool, work)
            stack.push_async_callback(local.stop_processes)
            yield local


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in ms of samples in seconds."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 2)}


async def scraped(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


async def actions_by_type(metrics_port: int) -> dict[str, float]:
    """The dev server's own count of billable Actions in the default namespace, by type
    (its `action` metric, `--metrics-port`)."""
    counted: dict[str, float] = {}
    for line in (await scraped(metrics_port)).splitlines():
        if line.startswith("action{") and 'namespace="default"' in line:
            kind = line.split('action_type="', 1)[1].split('"', 1)[0] if "action_type" in line else "?"
            counted[kind] = counted.get(kind, 0.0) + float(line.rsplit(" ", 1)[1])
    return counted


Histograms = dict[str, dict[float, float]]  # series (name and labels but `le`) → cumulative count by bound


async def histograms(port: int, names: tuple[str, ...]) -> Histograms:
    """The Prometheus histograms whose names begin with one of `names` that a process
    exports on `port`, their bounds in seconds (the SDK's are in milliseconds)."""
    found: Histograms = {}
    for line in (await scraped(port)).splitlines():
        name, _, rest = line.partition("_bucket{")
        if not rest or not name.startswith(names):
            continue
        labels, _, count = rest.rpartition("} ")
        series, _, bound = labels.rpartition('le="')
        seconds = float(bound.rstrip('"')) / (1000 if name.endswith("_milliseconds") else 1)
        found.setdefault(f"{name}{{{series.rstrip(',')}}}", {})[seconds] = float(count)
    return found


def histogram_deltas(before: Histograms, after: Histograms) -> dict[str, dict[str, float]]:
    """What each series counted between two scrapes: how many, the bounds its p50 and p99
    fell under (seconds), and how many took over 100 ms."""
    deltas = {}
    for series, buckets in after.items():
        counts = {bound: count - before.get(series, {}).get(bound, 0.0) for bound, count in sorted(buckets.items())}
        total = counts.get(float("inf"), 0.0)
        if not total:
            continue

        def under(q: float, counts: dict[float, float] = counts, total: float = total) -> float:
            return next(bound for bound, count in counts.items() if count >= q * total)

        faster = max((count for bound, count in counts.items() if bound <= 0.1), default=0.0)
        deltas[series] = {"count": total, "p50_under_s": under(0.5), "p99_under_s": under(0.99),
                          "over_100ms": total - faster}  # fmt: skip
    return deltas
