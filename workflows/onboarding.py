"""PartnerOnboardingWorkflow: registers a partner and runs its first admin's invitation."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from activities.store import PartnerStore
    from partners import search
    from partners.errors import ErrorCode
    from partners.ids import invitation_workflow_id
    from partners.models import (
        InvitationInput,
        InvitationPurpose,
        InvitationResult,
        InvitationState,
        OnboardingInput,
        OnboardingPhase,
        OnboardingResult,
        OnboardingState,
        Refusal,
        RegisterPartnerInput,
        Registration,
    )
    from workflows.invitation import Invitation, InvitationHandlers, InvitationWorkflow
    from workflows.refusals import STEP_FAILURES, refusal_of, refused
    from workflows.steps import database_step

# The refusals of registration the portal hears about; anything else is retried.
REGISTRATION_REFUSALS = frozenset({ErrorCode.PARTNER_LIMIT_REACHED.value, ErrorCode.DOMAIN_TAKEN.value})


# Since 2026-11-24 the first admin's invitation runs inside the onboarding instead of in
# a child `invitation-{id}` workflow: one workflow per partner, not two (BENCHMARKS.md).
# Onboardings started before keep their child; they end within one invitation lifetime
# (TTL x sends), after which this patch can be deprecated.
FIRST_ADMIN_INVITATION_HERE = "first-admin-invitation-in-onboarding"


@workflow.defn
class PartnerOnboardingWorkflow(InvitationHandlers):
    """Started by the API with update-with-start: the `registration` update answers the
    portal once the partner is in the database (or refused), and the workflow goes on to
    run the first admin's invitation, whose acceptance activates the partner (R4). The
    invitation's updates (`accept`, `resend`, `cancel`), `withdraw` signal and `status`
    query are answered here, as by an `InvitationWorkflow`."""

    @workflow.init
    def __init__(self, input: OnboardingInput) -> None:
        self._input = input
        self._phase = OnboardingPhase.REGISTERING
        self._invitation_id = workflow.uuid4()
        self._invitation = Invitation(self._invitation_input())
        self._invitation_state: InvitationState | None = None
        self._refusal: Refusal | None = None

    @workflow.run
    async def run(self, input: OnboardingInput) -> OnboardingResult:
        here = workflow.patched(FIRST_ADMIN_INVITATION_HERE)
        try:
            await database_step(
                PartnerStore.register_partner,
                RegisterPartnerInput(
                    partner_id=input.partner_id,
                    invitation_id=self._invitation_id,
                    enterprise_id=input.enterprise_id,
                    actor=input.actor,
                    partner=input.partner,
                    invitation_max_sends=input.invitation_max_sends,
                    invitation_workflow_id=workflow.info().workflow_id if here else None,
                ),
                summary="register: check quota and domains, store partner and invitation",
            )
        except STEP_FAILURES as err:
            self._refusal = refusal_of(err, REGISTRATION_REFUSALS)
            if self._refusal is None:
                raise
            self._invitation.opened_elsewhere(self._refusal)
            self._set_phase(OnboardingPhase.REFUSED)
            await workflow.wait_condition(workflow.all_handlers_finished)
            return OnboardingResult(phase=self._phase, refusal=self._refusal)

        self._invitation_state = InvitationState.PENDING
        if here:
            self._invitation.opened_elsewhere()  # its row was stored with the partner
            self._set_phase(
                OnboardingPhase.AWAITING_ADMIN,
                search.INVITATION_STATE.value_set(InvitationState.PENDING.value),
                search.INVITEE_DOMAIN.value_set(input.partner.admin.domain),
            )
            result = await self._invitation.run()
        else:
            self._invitation.opened_elsewhere(
                Refusal(code=ErrorCode.NOT_FOUND.value, detail="This invitation runs in its own workflow.")
            )
            self._set_phase(OnboardingPhase.AWAITING_ADMIN)
            result = await self._child_invitation()
        self._invitation_state = result.state
        phase = {
            InvitationState.ACCEPTED: OnboardingPhase.ACTIVE,
            InvitationState.SUPERSEDED: OnboardingPhase.RETARGETED,
        }.get(result.state or InvitationState.EXPIRED, OnboardingPhase.ADMIN_NOT_ACCEPTED)
        self._set_phase(phase)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return OnboardingResult(phase=self._phase, invitation_state=result.state)

    def _invitation_input(self) -> InvitationInput:
        input = self._input
        return InvitationInput(
            invitation_id=self._invitation_id,
            partner_id=input.partner_id,
            enterprise_id=input.enterprise_id,
            purpose=InvitationPurpose.FIRST_ADMIN,
            invitee_domain=input.partner.admin.domain,
            ttl_seconds=input.invitation_ttl_seconds,
            max_sends=input.invitation_max_sends,
        )

    async def _child_invitation(self) -> InvitationResult:
        """How onboardings started before 2026-11-24 run the invitation."""
        input = self._input
        return await workflow.execute_child_workflow(
            InvitationWorkflow.run,
            self._invitation_input(),
            id=invitation_workflow_id(self._invitation_id),
            # The invitation is a promise to a person: it outlives an operator's
            # termination of this workflow.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.ENTERPRISE_ID, input.enterprise_id),
                    SearchAttributePair(search.PARTNER_ID, str(input.partner_id)),
                    SearchAttributePair(search.INVITEE_DOMAIN, input.partner.admin.domain),
                    SearchAttributePair(search.INVITATION_STATE, InvitationState.PENDING.value),
                ]
            ),
            static_summary=f"Admin invitation of partner {input.partner.name}",
        )

    @workflow.update
    async def registration(self) -> Registration:
        await workflow.wait_condition(lambda: self._phase is not OnboardingPhase.REGISTERING)
        if self._refusal is not None:
            raise refused(self._refusal)
        return Registration(partner_id=self._input.partner_id, invitation_id=self._invitation_id)

    @workflow.query
    def state(self) -> OnboardingState:
        return OnboardingState(
            phase=self._phase,
            partner_id=self._input.partner_id,
            invitation_id=None if self._phase is OnboardingPhase.REFUSED else self._invitation_id,
            invitation_state=self._invitation_state,
            refusal=self._refusal,
        )

    def _set_phase(self, phase: OnboardingPhase, *also: SearchAttributeUpdate[Any]) -> None:
        self._phase = phase
        workflow.upsert_search_attributes([search.ONBOARDING_PHASE.value_set(phase.value), *also])
        refusal = self._refusal.code if self._refusal else ""
        invitation = self._invitation_state.value if self._invitation_state else ""
        details = {
            OnboardingPhase.REFUSED: f"registration refused: {refusal}",
            OnboardingPhase.AWAITING_ADMIN: "registered; waiting for the first admin to accept",
            OnboardingPhase.ACTIVE: "partner active: the first admin accepted",
            OnboardingPhase.ADMIN_NOT_ACCEPTED: f"admin invitation {invitation}; partner stays pending",
            OnboardingPhase.RETARGETED: "first admin replaced before accepting: see partner-admin-replacement-*",
        }
        workflow.set_current_details(details.get(phase, phase.value))
