"""The retention activity (R17): one kind pruned, a batch at a time, for a bounded while."""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from partners.activity_io import PruneInput, PruneOutput
from partners.metrics import count, gauge
from partners.models import PruneKind
from store.retention import Retention


class RetentionActivities:
    def __init__(self, retention: Retention) -> None:
        self._retention = retention

    @activity.defn
    async def prune(self, input: PruneInput) -> PruneOutput:
        """Batches of one kind until one is not full or the budget is spent, each followed
        by a pause as long as it took. Heartbeats between batches (the SDK sends at most
        one per 80% of the heartbeat timeout), so a worker that dies mid-run is noticed,
        and a cancelled run stops after its batch."""
        totals: dict[PruneKind, int] = {}
        deadline = time.monotonic() + input.budget_seconds
        while True:
            began = time.monotonic()
            done = await self._retention.prune_batch(input.kind)
            for kind, rows in done.rows.items():
                totals[kind] = totals.get(kind, 0) + rows
                if rows:
                    count("partners_retention_pruned_rows", "Rows removed past their retention.", rows, kind=kind)
            activity.heartbeat(totals)
            if not done.full or time.monotonic() >= deadline:
                # When pruning last ran (alert PartnersRetentionNotRun reads it).
                gauge("partners_retention_last_run_timestamp_seconds", "When a pruning step last ran.", time.time())
                return PruneOutput(rows=totals, more=done.full)
            # As long again as the batch took, idle: the database's requests come first
            # (half the rate, and requests' p99 well within twice idle's:
            # bench/HISTORY.md#retention-pruning-while-the-portal-reads-2026-12-06).
            await asyncio.sleep(time.monotonic() - began)
