"""PartnerDeactivationWorkflow: irreversible, and only once no API access remains (R10)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.store import PartnerStore
    from partners.errors import ErrorCode
    from partners.models import (
        DeactivatePartnerInput,
        DeactivationInput,
        DeactivationResult,
        InvitationState,
        Refusal,
    )
    from workflows.invitation import withdraw
    from workflows.refusals import STEP_FAILURES, refusal_of, refused
    from workflows.steps import database_step

DEACTIVATION_REFUSALS = frozenset({ErrorCode.API_ACCESS_GRANTED.value, ErrorCode.NOT_FOUND.value})


@workflow.defn
class PartnerDeactivationWorkflow:
    """Started by the API with update-with-start; the `outcome` update answers the portal.

    The check of API grants and the deactivation are one transaction under the partner's
    row lock, the lock every grant takes too, so no grant slips in between. Then the
    cancelled invitations' workflows are stopped (their links already are)."""

    @workflow.init
    def __init__(self, input: DeactivationInput) -> None:
        self._input = input
        self._decided = False
        self._refusal: Refusal | None = None

    @workflow.run
    async def run(self, input: DeactivationInput) -> DeactivationResult:
        try:
            done = await database_step(
                PartnerStore.deactivate_partner,
                DeactivatePartnerInput(partner_id=input.partner_id, actor=input.actor),
                summary="deactivate: re-check API grants under lock, then deactivate",
            )
        except STEP_FAILURES as err:
            self._refusal = refusal_of(err, DEACTIVATION_REFUSALS)
            if self._refusal is None:
                raise
            self._decided = True
            workflow.set_current_details(f"refused: {self._refusal.detail}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            return DeactivationResult(deactivated=False, refusal=self._refusal)
        self._decided = True
        workflow.set_current_details(f"deactivated; {len(done.cancelled_invitations)} invitation(s) cancelled")
        for invitation_id in done.cancelled_invitations:
            await withdraw(
                invitation_id, done.workflow_ids.get(invitation_id), InvitationState.CANCELLED, "partner deactivated"
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DeactivationResult(deactivated=True)

    @workflow.update
    async def outcome(self) -> DeactivationResult:
        await workflow.wait_condition(lambda: self._decided)
        if self._refusal is not None:
            raise refused(self._refusal)
        return DeactivationResult(deactivated=True)
