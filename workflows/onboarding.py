"""PartnerOnboardingWorkflow: registers a partner and runs its first admin's invitation."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate, VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.partners import PartnerActivities
    from partners import search
    from partners.activity_io import RegisterPartnerInput
    from partners.errors import Refused
    from partners.models import (
        InvitationPurpose,
        InvitationState,
        OnboardingInput,
        OnboardingPhase,
        OnboardingResult,
        OnboardingState,
        Registration,
        invitation_input,
    )

from workflows.activity_options import database_step
from workflows.invitation import InvitationHandlers
from workflows.invitation_loop import Invitation

# The phase an onboarding ends in, by its first admin's invitation's state.
_PHASE_AFTER = {
    InvitationState.PENDING: OnboardingPhase.AWAITING_ADMIN,
    InvitationState.ACCEPTED: OnboardingPhase.ACTIVE,
    InvitationState.SUPERSEDED: OnboardingPhase.RETARGETED,
}

_DETAILS = {
    OnboardingPhase.AWAITING_ADMIN: "registered; waiting for the first admin to accept",
    OnboardingPhase.ACTIVE: "partner active: the first admin accepted",
    OnboardingPhase.RETARGETED: "first admin replaced before accepting: see partner-admin-replacement-*",
}


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class PartnerOnboardingWorkflow(InvitationHandlers):
    """Started by the API with update-with-start: the `registration` update answers the
    portal once the partner is in the database (or refused), and the workflow goes on to
    run the first admin's invitation, whose acceptance activates the partner (R4). The
    invitation's updates (`accept`, `resend`, `cancel`), `closed_elsewhere` signal and
    `status` query are answered here, as by an `InvitationWorkflow`."""

    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        self._input = input
        self._phase = OnboardingPhase.REGISTERING
        # What the start indexed (search.onboarding_attributes: the phase a registration
        # reaches unless refused; a continued run keeps its predecessor's). A phase is
        # upserted only when it differs: each upsert is a billed Action.
        indexed = workflow.info().typed_search_attributes.get(search.ONBOARDING_PHASE)
        self._indexed_phase = OnboardingPhase(indexed) if indexed else None
        self._invitation_id = input.carried.invitation_id if input.carried else workflow.uuid4()
        self._invitation = Invitation(
            invitation_input(
                self._invitation_id,
                partner_id=input.partner_id,
                enterprise_id=input.enterprise_id,
                purpose=InvitationPurpose.FIRST_ADMIN,
                invitee_email=input.partner.admin.email,
                timing=input.timing,
                carried=input.carried,
            ),
            indexed_with=self._phase_beside,
        )
        self._invitation_state: InvitationState | None = None
        self._refusal: Refused | None = None

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingResult:
        if input.carried is None:
            refused = await self._register(input)
            if refused is not None:
                return refused
        else:
            self._invitation_state = InvitationState.PENDING
            self._set_phase(OnboardingPhase.AWAITING_ADMIN)
        result = await self._invitation.run()
        if result is None:  # a long history: the invitation goes on in a new run
            workflow.continue_as_new(input.model_copy(update={"carried": self._invitation.carry()}))
        self._invitation_state = result.state
        self._set_phase(_phase_after(result.state))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return OnboardingResult(phase=self._phase, invitation_state=result.state)

    async def _register(self, input: OnboardingInput) -> OnboardingResult | None:
        """Stores the partner and its first admin's invitation; the result of a refusal."""
        try:
            await database_step(
                PartnerActivities.register_partner,
                RegisterPartnerInput(
                    partner_id=input.partner_id,
                    invitation_id=self._invitation_id,
                    enterprise_id=input.enterprise_id,
                    actor=input.actor,
                    partner=input.partner,
                    max_sends=input.timing.max_sends,
                    workflow_id=workflow.info().workflow_id,
                ),
            )
        except ApplicationError as err:
            self._refusal = Refused.found_in(err)
            if self._refusal is None:
                raise
            self._invitation.refuse(self._refusal)
            self._set_phase(OnboardingPhase.REFUSED, search.INVITATION_STATE.value_unset())
            await workflow.wait_condition(workflow.all_handlers_finished)
            return OnboardingResult(phase=self._phase, refused=self._refusal.code)
        self._invitation_state = InvitationState.PENDING
        self._invitation.stored_by_registration()
        # The API's start indexed all of this already; any other start, nothing.
        unindexed = self._indexed_phase is not OnboardingPhase.AWAITING_ADMIN
        also = [
            search.INVITATION_STATE.value_set(InvitationState.PENDING.value),
            search.INVITEE_DOMAIN.value_set(input.partner.admin.domain),
        ]
        self._set_phase(OnboardingPhase.AWAITING_ADMIN, *(also if unindexed else []))
        return None

    @workflow.update
    async def registration(self) -> Registration:
        await workflow.wait_condition(lambda: self._phase is not OnboardingPhase.REGISTERING)
        if self._refusal is not None:
            raise self._refusal
        return Registration(partner_id=self._input.partner_id, invitation_id=self._invitation_id)

    @workflow.query
    def state(self) -> OnboardingState:
        return OnboardingState(
            phase=self._phase,
            partner_id=self._input.partner_id,
            invitation_id=None if self._phase is OnboardingPhase.REFUSED else self._invitation_id,
            invitation_state=self._invitation_state,
            refused=self._refusal.code if self._refusal else None,
        )

    def _phase_beside(self, state: InvitationState) -> list[SearchAttributeUpdate[Any]]:
        """The phase the invitation's new state brings, indexed in its upsert."""
        phase = _phase_after(state)
        if phase is self._indexed_phase:
            return []
        self._indexed_phase = phase
        return [search.ONBOARDING_PHASE.value_set(phase.value)]

    def _set_phase(self, phase: OnboardingPhase, *also: SearchAttributeUpdate[Any]) -> None:
        self._phase = phase
        if phase is not self._indexed_phase or also:
            self._indexed_phase = phase
            workflow.upsert_search_attributes([search.ONBOARDING_PHASE.value_set(phase.value), *also])
        if phase is OnboardingPhase.REFUSED:
            details = f"registration refused: {self._refusal.code.value if self._refusal else ''}"
        elif phase is OnboardingPhase.ADMIN_NOT_ACCEPTED:
            state = self._invitation_state.value if self._invitation_state else ""
            details = f"admin invitation {state}; partner stays pending"
        else:
            details = _DETAILS.get(phase, phase.value)
        workflow.set_current_details(details)


def _phase_after(state: InvitationState | None) -> OnboardingPhase:
    return _PHASE_AFTER.get(state or InvitationState.EXPIRED, OnboardingPhase.ADMIN_NOT_ACCEPTED)
