"""ReconcileWorkflow (R25): one run of the reconciler, daily on the `partners-reconcile`
schedule and on demand (`partners reconcile`, which waits for its result)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import RetryPolicy, VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import Reconciler
    from partners.models import ReconcileInput, ReconcileResult
    from partners.settings import Settings

from workflows.retention import ensure_schedule

RECONCILE_SCHEDULE_ID = "partners-reconcile"


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class ReconcileWorkflow:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileResult:
        result = await workflow.execute_activity_method(
            Reconciler.reconcile,
            input,
            summary="compare PostgreSQL with Temporal" + (" (dry run)" if input.dry_run else ", and repair"),
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        workflow.set_current_details(
            f"{'would repair' if input.dry_run else 'repaired'} {len(result.repairs)}: "
            + ", ".join(sorted({r.kind for r in result.repairs}))
        )
        return result


def reconcile_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run,
            ReconcileInput(),
            id=RECONCILE_SCHEDULE_ID,
            task_queue=settings.temporal_task_queue,
            static_summary="Brings Temporal back in line with PostgreSQL (R25)",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """`partners-reconcile`, created, or updated to the settings, at every worker start."""
    await ensure_schedule(client, RECONCILE_SCHEDULE_ID, reconcile_schedule(settings))
