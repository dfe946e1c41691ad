"""AdminReplacementWorkflow: one partner's admin replacements, the newest one winning."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.invitations import InvitationStore
    from partners import search
    from partners.errors import Refused
    from partners.ids import invitation_workflow_id
    from partners.models import (
        InvitationPurpose,
        InvitationResult,
        InvitationState,
        NewInvitation,
        ReplaceAdminRequest,
        ReplacementInput,
        ReplacementResult,
        ReplacementStarted,
        Role,
        invitation_input,
    )
    from partners.rules import is_actor
    from partners.steps import CreateInvitationInput

from workflows.invitation import InvitationWorkflow, tell_closed
from workflows.steps import database_step


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
        self._lock = asyncio.Lock()  # one request at a time
        self._outcome: InvitationState | None = None

    @workflow.run
    async def run(self, input: ReplacementInput) -> ReplacementResult:
        while True:
            await workflow.wait_condition(lambda: self._requests > 0 and not self._lock.locked())
            current = self._current
            if current is None:  # every request so far was refused
                break
            workflow.set_current_details(f"waiting for the new admin to accept invitation {current.id}")
            result = await current.handle
            await workflow.wait_condition(lambda: not self._lock.locked())
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._current is current:  # no newer request came meanwhile
                self._outcome = result.state
                break
        state = self._outcome.value if self._outcome else "refused"
        workflow.set_current_details(f"replacement {state}")
        return ReplacementResult(invitation_id=self._current.id if self._current else None, state=self._outcome)

    @workflow.update
    async def replace(self, request: ReplaceAdminRequest) -> ReplacementStarted:
        async with self._lock:
            try:
                return await self._replace(request)
            finally:
                self._requests += 1

    @replace.validator
    def _validate_replace(self, request: ReplaceAdminRequest) -> None:
        """Temporal is no back door: only what the API would have sent is taken."""
        invitee = request.invitee
        if not (invitee.first_name.strip() and invitee.last_name.strip()):
            raise ValueError("the new admin needs a first and a last name")
        local, _, domain = invitee.email.partition("@")
        if not (local and "." in domain) or invitee.email != invitee.email.strip().lower():
            raise ValueError("email must be a normalised e-mail address")
        if not is_actor(request.actor):
            raise ValueError("actor must name who asks (an e-mail address or operator:<name>)")

    async def _replace(self, request: ReplaceAdminRequest) -> ReplacementStarted:
        input, invitation_id = self._input, workflow.uuid4()
        try:
            created = await database_step(
                InvitationStore.create_invitation,
                CreateInvitationInput(
                    invitation_id=invitation_id,
                    enterprise_id=input.enterprise_id,
                    invitation=NewInvitation(
                        partner_id=input.partner_id,
                        invitee=request.invitee,
                        role=Role.ADMIN,
                        purpose=InvitationPurpose.ADMIN_REPLACEMENT,
                        invited_by=request.actor,
                    ),
                    max_sends=input.timing.max_sends,
                ),
                summary="create the new admin's invitation, superseding a pending one",
            )
        except ApplicationError as err:
            raise Refused.found_in(err) or err from None
        # The superseding transaction already stopped their links; stop their workflows.
        for old in created.superseded:
            await tell_closed(old, f"superseded by {invitation_id}")
        handle = await workflow.start_child_workflow(
            InvitationWorkflow.run,
            invitation_input(
                invitation_id,
                partner_id=input.partner_id,
                enterprise_id=input.enterprise_id,
                purpose=created.purpose,
                invitee_email=request.invitee.email,
                timing=input.timing,
            ),
            id=invitation_workflow_id(invitation_id),
            # The invitation is a promise to a person: it outlives this workflow.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            search_attributes=search.attributes(
                input.enterprise_id,
                input.partner_id,
                invitee_domain=request.invitee.domain,
                invitation_state=InvitationState.PENDING.value,
            ),
            static_summary="Admin replacement invitation",
        )
        self._current = _Invitation(invitation_id, handle)
        return ReplacementStarted(invitation_id=invitation_id, purpose=created.purpose)
