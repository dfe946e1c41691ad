"""The baseline: a naive workflow shaped like an onboarding, doing nothing real.

Two no-op activities (registration, e-mail), a wait for a signal (the click), one more
no-op activity (the acceptance), as in shared/PERFORMANCE.md.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def noop() -> None:
    return None


@workflow.defn
class SkeletonWorkflow:
    def __init__(self) -> None:
        self._clicked = False
        self._sent = False

    @workflow.run
    async def run(self) -> None:
        for _ in range(2):
            await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=10))
        self._sent = True
        await workflow.wait_condition(lambda: self._clicked)
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=10))

    @workflow.signal
    def click(self) -> None:
        self._clicked = True

    @workflow.query
    def sent(self) -> bool:
        return self._sent

    @workflow.update
    def ping(self) -> bool:
        """For the bare round trip: an update that answers at once."""
        return True
