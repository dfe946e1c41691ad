"""AdminReplacementWorkflow: one partner's admin replacements, the newest one winning."""

from __future__ import annotations

import asyncio
import functools
from uuid import UUID

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.invitations import InvitationActivities
    from partners import search
    from partners.activity_io import CreateInvitationInput
    from partners.errors import Refused
    from partners.ids import invitation_workflow_id
    from partners.models import (
        InvitationClosed,
        InvitationPurpose,
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

from workflows.activity_options import database_step, history_is_long
from workflows.invitation import InvitationWorkflow, tell_closed


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AdminReplacementWorkflow:
    """`partner-admin-replacement-{partner_id}`: each `replace` update invites a new admin
    (R8). The old Admin stays Admin until the new one accepts; the acceptance swaps them in
    one transaction. A newer request supersedes a pending one. The run ends with the last
    invitation's outcome, which that invitation's workflow signals (`invitation_closed`);
    a later replacement starts a new run. A long history continues as new, carrying the
    invitation it waits for."""

    @workflow.init
    def __init__(self, input: ReplacementInput) -> None:
        self._input = input
        self._current: UUID | None = input.current
        self._closed: dict[UUID, InvitationState] = {}
        self._requests = 0
        self._lock = asyncio.Lock()  # one request at a time
        self._outcome: InvitationState | None = None

    @workflow.run
    async def run(self, input: ReplacementInput) -> ReplacementResult:
        while True:
            await workflow.wait_condition(
                lambda: (self._requests > 0 or self._current is not None) and not self._lock.locked()
            )
            current = self._current
            if current is None:  # every request so far was refused
                break
            workflow.set_current_details(f"waiting for the new admin to accept invitation {current}")
            await workflow.wait_condition(functools.partial(self._decided_or_long, current))
            # Hand over, or end, once no request is under way (none may be cut off).
            await workflow.wait_condition(lambda: not self._lock.locked() and workflow.all_handlers_finished())
            if self._current != current:  # a newer request superseded it: wait for that one
                continue
            if current in self._closed:
                self._outcome = self._closed[current]
                break
            workflow.continue_as_new(input.model_copy(update={"current": current}))
        state = self._outcome.value if self._outcome else "refused"
        workflow.set_current_details(f"replacement {state}")
        return ReplacementResult(invitation_id=self._current, state=self._outcome)

    def _decided_or_long(self, waited: UUID) -> bool:
        """The invitation waited for ended, a newer request superseded it, or the history
        is long enough to hand over."""
        return waited in self._closed or self._current != waited or self._history_is_long()

    def _history_is_long(self) -> bool:
        return history_is_long(self._input.history_limit)

    @workflow.signal
    def invitation_closed(self, closed: InvitationClosed) -> None:
        """From the workflow of an invitation this one started: its final state."""
        self._closed[closed.invitation_id] = closed.state

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
                InvitationActivities.create_invitation,
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
        await workflow.start_child_workflow(
            InvitationWorkflow.run,
            invitation_input(
                invitation_id,
                partner_id=input.partner_id,
                enterprise_id=input.enterprise_id,
                purpose=created.purpose,
                invitee_email=request.invitee.email,
                timing=input.timing,
            ).model_copy(update={"report_to": workflow.info().workflow_id}),
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
        self._current = invitation_id
        return ReplacementStarted(invitation_id=invitation_id, purpose=created.purpose)
