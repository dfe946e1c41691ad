"""AdminReplacementWorkflow: one partner's admin replacements, the newest one winning."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from activities.store import PartnerStore
    from partners import search
    from partners.ids import invitation_workflow_id
    from partners.models import (
        CreateInvitationInput,
        InvitationInput,
        InvitationPurpose,
        InvitationResult,
        InvitationState,
        NewInvitation,
        ReplaceAdminRequest,
        ReplacementInput,
        ReplacementResult,
        ReplacementStarted,
        Role,
    )
    from workflows.invitation import OPENING_REFUSALS, InvitationWorkflow, withdraw
    from workflows.refusals import STEP_FAILURES, refusal_of, refused
    from workflows.steps import database_step

REPLACEMENT_REFUSALS = OPENING_REFUSALS | {"already_admin"}


@dataclass
class _Invitation:
    id: UUID
    handle: workflow.ChildWorkflowHandle[InvitationWorkflow, InvitationResult]


@workflow.defn
class AdminReplacementWorkflow:
    """`partner-admin-replacement-{partner_id}`: each `replace` update invites a new admin
    (R8). The old Admin stays Admin until the new one accepts; the acceptance swaps them in
    one transaction. A newer request supersedes a pending one. The run ends with the last
    invitation's outcome; a later replacement starts a new run."""

    @workflow.init
    def __init__(self, input: ReplacementInput) -> None:
        self._input = input
        self._current: _Invitation | None = None
        self._requests = 0
        self._busy = False
        self._outcome: InvitationState | None = None

    @workflow.run
    async def run(self, input: ReplacementInput) -> ReplacementResult:
        while True:
            await workflow.wait_condition(lambda: self._requests > 0 and not self._busy)
            current = self._current
            if current is None:  # every request so far was refused
                break
            workflow.set_current_details(f"waiting for the new admin to accept invitation {current.id}")
            result = await current.handle
            await workflow.wait_condition(lambda: not self._busy)
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._current is current:  # no newer request came meanwhile
                self._outcome = result.state
                break
        state = self._outcome.value if self._outcome else "refused"
        workflow.set_current_details(f"replacement {state}")
        return ReplacementResult(invitation_id=self._current.id if self._current else None, state=self._outcome)

    @workflow.update
    async def replace(self, request: ReplaceAdminRequest) -> ReplacementStarted:
        await workflow.wait_condition(lambda: not self._busy)
        self._busy = True
        try:
            return await self._replace(request)
        finally:
            self._busy = False
            self._requests += 1

    async def _replace(self, request: ReplaceAdminRequest) -> ReplacementStarted:
        invitation_id = workflow.uuid4()
        try:
            created = await database_step(
                PartnerStore.create_invitation,
                CreateInvitationInput(
                    invitation_id=invitation_id,
                    invitation=NewInvitation(
                        partner_id=self._input.partner_id,
                        person=request.person,
                        role=Role.ADMIN,
                        purpose=InvitationPurpose.ADMIN_REPLACEMENT,
                        invited_by=request.actor,
                    ),
                    max_sends=self._input.max_sends,
                ),
                summary="create the new admin's invitation, superseding a pending one",
            )
        except STEP_FAILURES as err:
            refusal = refusal_of(err, REPLACEMENT_REFUSALS)
            if refusal is None:
                raise
            raise refused(refusal) from None
        # The superseding transaction already stopped their links; stop their workflows.
        for old in created.superseded:
            await withdraw(
                old, created.workflow_ids.get(old), InvitationState.SUPERSEDED, f"superseded by {invitation_id}"
            )
        purpose = created.purpose or InvitationPurpose.ADMIN_REPLACEMENT
        handle = await workflow.start_child_workflow(
            InvitationWorkflow.run,
            InvitationInput(
                invitation_id=invitation_id,
                partner_id=self._input.partner_id,
                enterprise_id=self._input.enterprise_id,
                purpose=purpose,
                invitee_domain=request.person.domain,
                ttl_seconds=self._input.ttl_seconds,
                max_sends=self._input.max_sends,
            ),
            id=invitation_workflow_id(invitation_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.ENTERPRISE_ID, self._input.enterprise_id),
                    SearchAttributePair(search.PARTNER_ID, str(self._input.partner_id)),
                    SearchAttributePair(search.INVITEE_DOMAIN, request.person.domain),
                    SearchAttributePair(search.INVITATION_STATE, InvitationState.PENDING.value),
                ]
            ),
            static_summary="Admin replacement invitation",
        )
        self._current = _Invitation(invitation_id, handle)
        return ReplacementStarted(invitation_id=invitation_id, purpose=purpose)
