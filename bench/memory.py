"""`make bench-memory`: where a cached waiting onboarding's memory goes, by Python's own count.

The worker runs in this process (as in the tests: real dev server, PostgreSQL, SMTP
catcher, no sandbox, as production), `--n` partners are registered and left waiting
with their workflows cached, and tracemalloc compares what Python holds before and after,
per workflow: by file, and by the innermost frame of ours on each allocation's stack.
RSS per cached invitation (`make bench`, the footprint) counts more than this: the SDK
core's state for each cached run lives outside Python's allocator.

Writes bench/results/<out>.json."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from bench.local import RESULTS
from devstack.binaries import temporal_cli
from devstack.mailcatcher import MailCatcher
from devstack.postgres import EmbeddedPostgres
from partners import search
from store.database import create_pool, migrate
from tests.helpers.codec import TEST_PAYLOAD_KEYS, converter_for_tests
from tests.helpers.stack import new_enterprise, running_stack, unique_domain

ROOT = str(Path(__file__).parent.parent) + "/"
# The service's own code; the harness (this file, the tests' stack, the SMTP catcher that
# keeps every mail in this process) is not.
SERVICE = tuple(ROOT + p for p in ("partners/", "store/", "starter/", "activities/", "workflows/", "worker.py"))


def _ours(trace: tracemalloc.Traceback) -> str:
    for frame in trace:
        if frame.filename.startswith(SERVICE):
            return f"{frame.filename.removeprefix(ROOT)}:{frame.lineno}"
    return "(no frame of the service: the SDK, pydantic, the loop, the harness)"


async def measure(n: int, top: int) -> dict[str, Any]:
    os.environ["PAYLOAD_KEYS"] = TEST_PAYLOAD_KEYS
    with tempfile.TemporaryDirectory(prefix="partners-memory-") as work:
        postgres = EmbeddedPostgres(Path(work) / "postgres", delete_on_stop=True)
        pool = await create_pool(await postgres.start(), size=10)
        await migrate(pool)
        env = await WorkflowEnvironment.start_local(
            data_converter=converter_for_tests(), dev_server_existing_path=temporal_cli(), search_attributes=search.ALL
        )
        mail = MailCatcher()
        mail.start()
        try:
            cache = n + 100
            async with running_stack(
                env, pool, mail, workflow_sandbox=False, worker_max_cached_workflows=cache
            ) as stack:
                limit = asyncio.Semaphore(10)

                async def register() -> None:
                    async with limit:
                        created = await stack.register(new_enterprise(), unique_domain())
                        assert created.status_code == 201, created.text

                await asyncio.gather(*(register() for _ in range(20)))  # warm: imports, pools, adapters
                await asyncio.sleep(2)
                gc.collect()
                tracemalloc.start(30)
                before = tracemalloc.take_snapshot()
                await asyncio.gather(*(register() for _ in range(n)))
                await asyncio.sleep(3)  # the last mails sent, the workflows waiting on their timers
                gc.collect()
                after = tracemalloc.take_snapshot()
                tracemalloc.stop()
        finally:
            mail.stop()
            await env.shutdown()
            await pool.close()
            await postgres.stop()
    by_file = after.compare_to(before, "filename")
    by_ours: dict[str, int] = {}
    for stat in after.compare_to(before, "traceback"):
        by_ours[_ours(stat.traceback)] = by_ours.get(_ours(stat.traceback), 0) + stat.size_diff
    return {
        "n": n,
        "python_bytes_per_workflow": round(sum(s.size_diff for s in by_file) / n),
        "by_file": {s.traceback[0].filename.split("site-packages/")[-1]: round(s.size_diff / n) for s in by_file[:top]},
        "by_our_frame": {k: round(v / n) for k, v in sorted(by_ours.items(), key=lambda kv: -kv[1])[:top]},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="onboardings left waiting, cached")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--out", default="memory")
    args = parser.parse_args()
    results = asyncio.run(measure(args.n, args.top))
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
