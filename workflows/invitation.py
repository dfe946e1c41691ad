"""InvitationWorkflow: one invitation, from its first e-mail to its final state; and the
handlers every workflow that runs an invitation answers (the state machine itself is
workflows/invitation_loop.py)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from partners.models import (
        AcceptRequest,
        AcceptResult,
        CancelRequest,
        ClosedElsewhere,
        InvitationClosed,
        InvitationInput,
        InvitationResult,
        InvitationStatus,
        InvitationWorkflowRef,
        ResendRequest,
    )
    from partners.rules import TOKEN_HASH_PATTERN, is_actor

from workflows.invitation_loop import Invitation


class InvitationHandlers:
    """The updates, signal and query of a workflow that runs an `Invitation`: the same
    names wherever an invitation runs, so the pages and the API address it alike."""

    _invitation: Invitation

    @workflow.update
    async def ready(self) -> InvitationStatus:
        """Answers once the invitation exists, or with the refusal that stopped it: the
        answer to whoever started the run."""
        return await self._invitation.ready()

    @workflow.update
    async def accept(self, request: AcceptRequest) -> AcceptResult:
        return await self._invitation.accept(request)

    @accept.validator
    def _validate_accept(self, request: AcceptRequest) -> None:
        if not TOKEN_HASH_PATTERN.fullmatch(request.token_hash):
            raise ValueError("token_hash must be the link token's SHA-256, in lower-case hex")

    @workflow.update
    async def resend(self, request: ResendRequest) -> InvitationStatus:
        """Sends a new mail now and restarts the TTL with a fresh budget of sends."""
        return await self._invitation.resend(request)

    @resend.validator
    def _validate_resend(self, request: ResendRequest) -> None:
        _require_actor(request.actor)
        self._invitation.refuse_resend_early(request)

    @workflow.update
    async def cancel(self, request: CancelRequest) -> InvitationStatus:
        return await self._invitation.cancel(request)

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        _require_actor(request.actor)

    @workflow.signal
    async def closed_elsewhere(self, request: ClosedElsewhere) -> None:
        """Closed by a transaction outside this workflow (superseded by a newer admin
        invitation, or the partner was deactivated), which already stopped its links."""
        await self._invitation.closed_elsewhere(request)

    @workflow.signal
    async def partner_resumed(self) -> None:
        """Its partner was resumed (R23): the schedule moved on by the time it was suspended."""
        await self._invitation.partner_resumed()

    @workflow.query
    def status(self) -> InvitationStatus:
        return self._invitation.status()


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class InvitationWorkflow(InvitationHandlers):
    """`invitation-{id}`: one member, replacement or taken-over invitation."""

    @workflow.init
    def __init__(self, input: InvitationInput) -> None:
        self._invitation = Invitation(input)

    @workflow.run
    async def run(self, input: InvitationInput) -> InvitationResult:
        for old in await self._invitation.create_or_take_over():
            await tell_closed(old, f"superseded by the revived {input.invitation_id}")
        result = await self._invitation.run()
        if result is None:
            workflow.continue_as_new(
                input.model_copy(update={"create": None, "take_over": None, "carried": self._invitation.carry()})
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if input.report_to is not None and result.state is not None:
            await _report(input.report_to, InvitationClosed(invitation_id=input.invitation_id, state=result.state))
        return result


def _require_actor(actor: str) -> None:
    if not is_actor(actor):
        raise ValueError("actor must name who asks (an e-mail address or operator:<name>)")


async def _report(workflow_id: str, closed: InvitationClosed) -> None:
    """Tells the replacement workflow that waits for this invitation how it ended."""
    try:
        await workflow.get_external_workflow_handle(workflow_id).signal("invitation_closed", closed)
    except ApplicationError:
        workflow.logger.info("the replacement workflow %s is gone: nothing to tell", workflow_id)


async def tell_closed(invitation: InvitationWorkflowRef, reason: str) -> None:
    """From a workflow: tells the workflow that runs an invitation that a transaction
    closed it."""
    try:
        await workflow.get_external_workflow_handle(invitation.workflow_id).signal(
            InvitationWorkflow.closed_elsewhere, ClosedElsewhere(reason=reason)
        )
    except ApplicationError:
        # Its workflow is gone (closed, or its history past retention): nothing to stop.
        workflow.logger.info("invitation %s has no running workflow to tell", invitation.invitation_id)
