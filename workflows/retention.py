"""RetentionWorkflow (R17): what is past its retention is removed, kind after kind, run by
the `partners-retention` schedule every RETENTION_INTERVAL."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from activities.retention import RetentionActivities
    from partners.activity_io import PruneInput
    from partners.models import PruneKind, RetentionInput, RetentionResult
    from partners.settings import Settings

from workflows.activity_options import PRUNE_STEP, history_is_long

RETENTION_SCHEDULE_ID = "partners-retention"
# Kinds added after 1.0.0, each behind its workflow.patched id: a run that finished before
# it was added replays without it.
_ADDED_LATER = {PruneKind.SUPPRESSIONS: "prune-suppressions"}


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RetentionWorkflow:
    """Prunes every kind until none has rows past its retention. Its current details say
    where it is and what it removed; a long run continues as new, carrying its counts."""

    @workflow.run
    async def run(self, input: RetentionInput) -> RetentionResult:
        pruned = dict(input.pruned)
        finished = list(input.finished)
        for kind in PruneKind:
            if kind in finished or (kind in _ADDED_LATER and not workflow.patched(_ADDED_LATER[kind])):
                continue
            more = True
            while more:
                out = await workflow.execute_activity_method(
                    RetentionActivities.prune,
                    PruneInput(kind=kind, budget_seconds=input.budget_seconds),
                    summary=f"prune {kind}",
                    **PRUNE_STEP,
                )
                for k, rows in out.rows.items():
                    pruned[k] = pruned.get(k, 0) + rows
                more = out.more
                workflow.set_current_details(_details(pruned, kind if more else None))
                if more and self._history_long(input):
                    workflow.continue_as_new(input.model_copy(update={"pruned": pruned, "finished": finished}))
            finished.append(kind)
        workflow.set_current_details(_details(pruned, None))
        return RetentionResult(pruned=pruned)

    @staticmethod
    def _history_long(input: RetentionInput) -> bool:
        return history_is_long(input.history_limit)


def _details(pruned: dict[PruneKind, int], current: PruneKind | None) -> str:
    """What an operator reads in the UI: rows removed so far by kind, and the kind under way."""
    counts = ", ".join(f"{kind}: {pruned.get(kind, 0)}" for kind in PruneKind)
    return (f"pruning {current}; " if current else "done; ") + f"rows removed: {counts}"


def retention_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RetentionWorkflow.run,
            RetentionInput(),
            id=RETENTION_SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            static_summary="Removes records past their retention (R17)",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.retention_interval))]),
        # A run still going when the next is due: the next is skipped.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_retention_schedule(client: Client, settings: Settings) -> None:
    """`partners-retention`, created, or updated to the settings, at every worker start."""
    await ensure_schedule(client, RETENTION_SCHEDULE_ID, retention_schedule(settings))


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> None:
    """A schedule of the service, created, or updated to what the settings say now."""
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def updated(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(updated)
