"""The floor: a no-op workflow of exactly an onboarding's shape, on the same server with
the same worker settings and data converter (encryption included).

update-with-start (`registration`, answered after a local activity), an activity (the
mail), a timer (the invitation's time-to-live), an update (`accept`, answered after a
local activity). What it costs is what Temporal costs for our shape; what ours costs
above it is ours. `python -m bench.floor` runs its worker, a process of its own as ours is.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

FLOOR_QUEUE = "bench-floor"
_STEP = timedelta(seconds=10)


@activity.defn
async def floor_step() -> None:
    return None


@workflow.defn
class FloorWorkflow:
    @workflow.init
    def __init__(self, ttl_seconds: float) -> None:
        self._registered = False
        self._sent = False
        self._accepted = False

    @workflow.run
    async def run(self, ttl_seconds: float) -> bool:
        await workflow.execute_local_activity(floor_step, start_to_close_timeout=_STEP)
        self._registered = True
        await workflow.execute_activity(floor_step, start_to_close_timeout=_STEP)
        self._sent = True
        try:
            await workflow.wait_condition(lambda: self._accepted, timeout=timedelta(seconds=ttl_seconds))
        except TimeoutError:
            return False
        await workflow.wait_condition(workflow.all_handlers_finished)
        return True

    @workflow.update
    async def registration(self) -> bool:
        await workflow.wait_condition(lambda: self._registered)
        return True

    @workflow.update
    async def accept(self) -> bool:
        await workflow.wait_condition(lambda: self._sent)
        await workflow.execute_local_activity(floor_step, start_to_close_timeout=_STEP)
        self._accepted = True
        return True

    @workflow.query
    def sent(self) -> bool:
        return self._sent


async def _main() -> None:
    from partners.settings import Settings
    from partners.temporal_client import connect_client
    from worker import worker_tuning

    settings = Settings()
    client = await connect_client(settings)
    worker = Worker(
        client,
        task_queue=FLOOR_QUEUE,
        workflows=[FloorWorkflow],
        activities=[floor_step],
        **worker_tuning(settings),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    from partners.logs import exit_after_clean_shutdown
    from worker import run_process

    run_process(_main())  # as our worker's process runs
    exit_after_clean_shutdown()
