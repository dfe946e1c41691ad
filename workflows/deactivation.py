"""PartnerDeactivationWorkflow: irreversible, and only once no API access remains (R10)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.partners import PartnerActivities
    from partners.activity_io import DeactivatePartnerInput
    from partners.errors import Refused
    from partners.models import DeactivationInput, DeactivationResult

from workflows.activity_options import database_step
from workflows.invitation import tell_closed


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class PartnerDeactivationWorkflow:
    """Started by the API with update-with-start; the `outcome` update answers the portal.

    The check of API grants and the deactivation are one transaction under the partner's
    row lock, the lock every grant takes too, so no grant slips in between. Then the
    cancelled invitations' workflows are told (their links already stopped)."""

    @workflow.init
    def __init__(self, input: DeactivationInput) -> None:
        self._input = input
        self._decided = False
        self._refusal: Refused | None = None

    @workflow.run
    async def run(self, input: DeactivationInput) -> DeactivationResult:
        try:
            done = await database_step(
                PartnerActivities.deactivate_partner,
                DeactivatePartnerInput(
                    partner_id=input.partner_id, enterprise_id=input.enterprise_id, actor=input.actor
                ),
                summary="deactivate: re-check API grants under lock, then deactivate",
            )
        except ApplicationError as err:
            self._refusal = Refused.found_in(err)
            if self._refusal is None:
                raise
            self._decided = True
            workflow.set_current_details(f"refused: {self._refusal.detail}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            return DeactivationResult(deactivated=False)
        self._decided = True
        workflow.set_current_details(f"deactivated; {len(done.cancelled)} invitation(s) cancelled")
        for invitation in done.cancelled:
            await tell_closed(invitation, "partner deactivated")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DeactivationResult(deactivated=True)

    @workflow.update
    async def outcome(self) -> DeactivationResult:
        await workflow.wait_condition(lambda: self._decided)
        if self._refusal is not None:
            raise self._refusal
        return DeactivationResult(deactivated=True)
