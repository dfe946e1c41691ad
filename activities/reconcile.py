"""Reconciler (R25): brings Temporal back in line with PostgreSQL, which holds the truth,
after a restore of either (`partners reconcile`, and the daily `partners-reconcile`).

- A pending invitation whose workflow is not running gets one again: a new run of
  `invitation-{id}` takes it over and goes on with the row's schedule (its links keep
  working; no mail is sent twice for a send, the ledger keys each by its number).
- An enabled webhook endpoint without its delivery workflow gets one.
- A running invitation or onboarding workflow whose invitation is closed is told so
  (`closed_elsewhere`: it reads the stored state and ends); one whose row is missing is
  terminated, saying why. Workflows started in the last `settle_seconds` (10 minutes)
  are left alone: their rows may not be committed yet.
- The schedules exist (`partners-retention`, `partners-reconcile`).

With `dry_run`, each repair is listed and nothing changes. Each repair is audited as the
actor and counted (`partners_reconcile_repairs_total{repair}`). Safe to run at any time,
twice in a row, and while traffic flows: every repair is checked against the live state
first, and starting a run that exists joins it."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from partners import search
from partners.ids import invitation_workflow_id, webhook_workflow_id
from partners.metrics import count
from partners.models import (
    ClosedElsewhere,
    InvitationPurpose,
    InvitationTiming,
    ReconcileInput,
    ReconcileResult,
    Repair,
    TakeOver,
    invitation_input,
)
from partners.settings import Settings
from store.reconcile import ReconcileReads

log = logging.getLogger(__name__)
_INVITATION = re.compile(r"^invitation-([0-9a-f-]{36})$")
_ONBOARDING = re.compile(r"^partner-onboarding-([0-9a-f-]{36})$")


class Reconciler:
    def __init__(self, reads: ReconcileReads, client: Client, settings: Settings, timing: InvitationTiming) -> None:
        self._reads, self._client, self._settings, self._timing = reads, client, settings, timing
        self._enterprise_of: dict[str, str] = {}

    @activity.defn
    async def reconcile(self, input: ReconcileInput) -> ReconcileResult:
        running = await self._running()
        repairs = [
            *await self._invitations(input, running),
            *await self._endpoints(input, running),
            *await self._strays(input, running),
            *await self._schedules(input),
        ]
        for repair in repairs:
            if not input.dry_run:
                count("partners_reconcile_repairs", "Repairs of partners reconcile (R25), by kind.", repair=repair.kind)
        return ReconcileResult(dry_run=input.dry_run, repairs=repairs)

    async def _running(self) -> dict[str, datetime]:
        """Every running workflow of ours, with when it started (the visibility store)."""
        found: dict[str, datetime] = {}
        async for execution in self._client.list_workflows('ExecutionStatus="Running"'):
            found[execution.id] = execution.start_time
            self._enterprise_of[execution.id] = execution.typed_search_attributes.get(search.ENTERPRISE_ID) or "*"
        return found

    async def _alive(self, workflow_id: str) -> bool:
        """The live answer for one workflow (visibility may lag a moment behind)."""
        try:
            described = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return described.status is WorkflowExecutionStatus.RUNNING

    async def _invitations(self, input: ReconcileInput, running: dict[str, datetime]) -> list[Repair]:
        repairs: list[Repair] = []
        for row in await self._reads.pending_invitations(input.enterprise_id):
            if row["workflow_id"] in running or await self._alive(row["workflow_id"]):
                continue
            repair = Repair(kind="invitation_taken_over", id=str(row["id"]), detail=f"{row['workflow_id']} not running")
            repairs.append(repair)
            if input.dry_run:
                continue
            await self._client.start_workflow(
                "InvitationWorkflow",
                invitation_input(
                    row["id"],
                    partner_id=row["partner_id"],
                    enterprise_id=row["enterprise_id"],
                    purpose=InvitationPurpose(row["purpose"]),
                    invitee_email=row["email"],
                    timing=self._timing,
                    take_over=TakeOver(actor=input.actor, revive=False, continue_schedule=True),
                ),
                id=invitation_workflow_id(row["id"]),
                task_queue=self._settings.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=search.attributes(
                    row["enterprise_id"], row["partner_id"], invitee_domain=row["email"].rpartition("@")[2]
                ),
                static_summary="Invitation taken over by partners reconcile",
            )
            await self._reads.audit_repair(
                row["enterprise_id"], row["partner_id"], input.actor, repair.kind, invitation_id=repair.id
            )
        return repairs

    async def _endpoints(self, input: ReconcileInput, running: dict[str, datetime]) -> list[Repair]:
        from workflows.webhooks import start_delivery  # the one way an endpoint's workflow starts

        repairs: list[Repair] = []
        for row in await self._reads.enabled_endpoints(input.enterprise_id):
            workflow_id = webhook_workflow_id(row["id"])
            if workflow_id in running or await self._alive(workflow_id):
                continue
            repair = Repair(kind="webhook_started", id=str(row["id"]), detail=f"{workflow_id} not running")
            repairs.append(repair)
            if not input.dry_run:
                await start_delivery(self._client, self._settings, row["id"], row["enterprise_id"])
                await self._reads.audit_repair(row["enterprise_id"] or "*", None, input.actor, repair.kind,
                                               endpoint_id=repair.id)  # fmt: skip
        return repairs

    async def _schedules(self, input: ReconcileInput) -> list[Repair]:
        """The service's schedules (a restored or new namespace has none)."""
        from workflows.reconcile import RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule
        from workflows.retention import RETENTION_SCHEDULE_ID, ensure_retention_schedule

        repairs: list[Repair] = []
        for schedule_id, ensure in (
            (RETENTION_SCHEDULE_ID, ensure_retention_schedule),
            (RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule),
        ):
            try:
                await self._client.get_schedule_handle(schedule_id).describe()
                continue
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise
            repairs.append(Repair(kind="schedule_created", id=schedule_id, detail="missing"))
            if not input.dry_run:
                await ensure(self._client, self._settings)
                await self._reads.audit_repair("*", None, input.actor, "schedule_created", schedule_id=schedule_id)
        return repairs

    async def _strays(self, input: ReconcileInput, running: dict[str, datetime]) -> list[Repair]:
        """Running invitation and onboarding workflows whose row is closed or missing."""
        settled = datetime.now(UTC) - timedelta(seconds=input.settle_seconds)
        if input.enterprise_id is not None:
            running = {w: at for w, at in running.items() if self._enterprise_of.get(w) == input.enterprise_id}
        invitations = {UUID(m[1]): wid for wid in running if (m := _INVITATION.match(wid)) and running[wid] < settled}
        onboardings = {UUID(m[1]): wid for wid in running if (m := _ONBOARDING.match(wid)) and running[wid] < settled}
        states = await self._reads.invitation_states(list(invitations))
        partners = await self._reads.partners_found(list(onboardings))
        repairs: list[Repair] = []
        for invitation_id, workflow_id in invitations.items():
            state = states.get(invitation_id)
            if state is not None and (state[0] == "pending" or state[1] != workflow_id):
                continue  # running as it should, or a run the row no longer names: its own business
            kind = "workflow_told_closed" if state is not None else "workflow_terminated"
            repairs.append(Repair(kind=kind, id=workflow_id, detail=f"invitation {state[0] if state else 'missing'}"))
        for partner_id, workflow_id in onboardings.items():
            if partner_id not in partners:
                repairs.append(Repair(kind="workflow_terminated", id=workflow_id, detail="partner missing"))
        if not input.dry_run:
            for repair in repairs:
                handle = self._client.get_workflow_handle(repair.id)
                if repair.kind == "workflow_told_closed":
                    await handle.signal("closed_elsewhere", ClosedElsewhere(reason="partners reconcile"))
                else:
                    await handle.terminate(f"partners reconcile: its row is missing ({repair.detail})")
                enterprise = self._enterprise_of.get(repair.id, "*")
                await self._reads.audit_repair(enterprise, None, input.actor, repair.kind, workflow_id=repair.id)
                log.info("reconcile: %s %s", repair.kind, repair.id)
        return repairs
