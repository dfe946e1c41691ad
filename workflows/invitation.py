"""InvitationWorkflow: one invitation, from its first e-mail to its final state."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from uuid import UUID

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.mail import UNDELIVERABLE, Mailer
    from activities.store import PartnerStore
    from partners import search
    from partners.errors import ErrorCode, closed_invitation
    from partners.ids import invitation_workflow_id
    from partners.models import (
        AcceptInvitationInput,
        AcceptRequest,
        AcceptResult,
        CancelRequest,
        CloseInvitationInput,
        CreateInvitationInput,
        InvitationInput,
        InvitationResult,
        InvitationState,
        InvitationStatus,
        Refusal,
        ReopenInvitationInput,
        ResendRequest,
        SendInvitationInput,
        SendOutcome,
        WithdrawRequest,
    )
    from workflows.refusals import STEP_FAILURES, refusal_of, refused
    from workflows.steps import MAIL_STEP, database_step

# Refusals of creating or reviving an invitation that the portal hears about.
OPENING_REFUSALS = frozenset(
    code.value
    for code in (
        ErrorCode.NOT_FOUND,
        ErrorCode.FORBIDDEN,
        ErrorCode.DOMAIN_NOT_REGISTERED,
        ErrorCode.ALREADY_MEMBER,
        ErrorCode.ALREADY_INVITED,
        ErrorCode.PARTNER_NOT_ACTIVE,
        ErrorCode.PARTNER_DEACTIVATED,
    )
)


class Invitation:
    """One invitation's life, from its first e-mail to its final state, inside a workflow:
    `InvitationWorkflow` runs one per member, replacement or revived invitation, and
    `PartnerOnboardingWorkflow` runs its partner's first admin's (one workflow per
    onboarding instead of two: see BENCHMARKS.md).

    It sends the invitation, resends it each time its TTL passes and expires it after the
    last send. Everything that changes it arrives as an update (accept, resend, cancel)
    and is decided here, one at a time: an acceptance racing the expiry timer ends in one
    deterministic state (an acceptance under way when the timer fires wins; one arriving
    after the expiry is decided is answered "expired").
    """

    def __init__(self, input: InvitationInput) -> None:
        self._input = input
        self._state = InvitationState.PENDING
        self._opened = False
        self._refusal: Refusal | None = None
        self._sends = 0  # every send of this invitation, over all runs: the ledger's key
        self._round_sends = 0  # sends since the invitation was opened or resent by hand
        self._send_due = True
        self._sending = False
        self._deadline: datetime | None = None
        self._next_send_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._last_error: str | None = None
        self._busy = False  # an accept or cancel is being recorded
        self._requested_by = input.reopened_by  # who asked for the next send by hand

    @property
    def state(self) -> InvitationState:
        return self._state

    def opened_elsewhere(self, refusal: Refusal | None = None) -> None:
        """Its row was created by another step (the partner's registration), or, with a
        refusal, this invitation is not run here and every update is refused."""
        self._refusal = refusal
        self._opened = True

    async def open(self) -> None:
        """Creates the invitation's row, or revives it, when this run was started for that."""
        try:
            if self._input.create is not None:
                await database_step(
                    PartnerStore.create_invitation,
                    CreateInvitationInput(
                        invitation_id=self._input.invitation_id,
                        invitation=self._input.create,
                        max_sends=self._input.max_sends,
                    ),
                    summary="create: check domain, membership and pending invitations",
                )
            elif self._input.reopened_by is not None:
                reopened = await database_step(
                    PartnerStore.reopen_invitation,
                    ReopenInvitationInput(invitation_id=self._input.invitation_id, actor=self._input.reopened_by),
                    summary="revive the expired invitation",
                )
                self._sends = reopened.sends
                self._set_state(reopened.state)
        except STEP_FAILURES as err:
            self._refusal = refusal_of(err, OPENING_REFUSALS)
            if self._refusal is None:
                raise
        finally:
            self._opened = True

    async def run(self) -> InvitationResult:
        """Once opened: sends, waits, resends and expires until the invitation is closed."""
        if self._refusal is not None:
            return InvitationResult(state=None, sends=0, refusal=self._refusal)
        ttl = timedelta(seconds=self._input.ttl_seconds)
        while self._state is InvitationState.PENDING:
            if self._send_due:
                self._send_due = False
                await self._send(ttl)
                continue
            assert self._deadline is not None
            try:
                await workflow.wait_condition(
                    lambda: self._state is not InvitationState.PENDING or self._send_due,
                    timeout=max(self._deadline - workflow.now(), timedelta(0)),
                    timeout_summary="time-to-live of the last send",
                )
            except TimeoutError:
                # An acceptance or cancellation under way wins over the timer.
                await workflow.wait_condition(lambda: not self._busy)
                if self._state is not InvitationState.PENDING or self._send_due:
                    continue
                if self._round_sends >= self._input.max_sends:
                    await self._close(InvitationState.EXPIRED, reason=f"not accepted after {self._round_sends} sends")
                else:
                    self._send_due = True
        return InvitationResult(state=self._state, sends=self._sends)

    # --- what the handlers do --------------------------------------------------------------

    async def opened(self) -> InvitationStatus:
        await workflow.wait_condition(lambda: self._opened)
        if self._refusal is not None:
            raise refused(self._refusal)
        return self.status()

    async def accept(self, request: AcceptRequest) -> AcceptResult:
        # A second click waits for the first and then answers "already accepted".
        await workflow.wait_condition(lambda: self._opened and not self._busy)
        if self._refusal is not None:
            raise refused(self._refusal)
        if self._state is not InvitationState.PENDING:
            return AcceptResult(state=self._state, newly_accepted=False)
        with self._recording():
            outcome = await database_step(
                PartnerStore.accept_invitation,
                AcceptInvitationInput(invitation_id=self._input.invitation_id, send_number=request.send_number),
                summary="accept: record the acceptance and its effect",
            )
        self._set_state(outcome.state)
        return AcceptResult(state=outcome.state, newly_accepted=outcome.state is InvitationState.ACCEPTED)

    async def resend(self, request: ResendRequest) -> InvitationStatus:
        await self._pending_turn()
        if self._sending:
            # A send under way (a reminder, or a revived run's first send) is the new
            # mail: mailing again seconds later would only confuse the invitee.
            self._round_sends = 1
        else:
            self._requested_by = request.actor
            self._round_sends = 0
            self._send_due = True
        await workflow.wait_condition(
            lambda: self._state is not InvitationState.PENDING or not (self._send_due or self._sending)
        )
        return self.status()

    async def cancel(self, request: CancelRequest) -> InvitationStatus:
        await self._pending_turn()
        with self._recording():
            await self._close(InvitationState.CANCELLED, reason="cancelled by hand", actor=request.actor)
        return self.status()

    async def withdraw(self, request: WithdrawRequest) -> None:
        await workflow.wait_condition(lambda: self._opened and not self._busy)
        if self._refusal is not None or self._state is not InvitationState.PENDING:
            return
        with self._recording():
            # The transaction that closed it decided the state; recording it is a no-op.
            await self._close(request.state, reason=request.reason)

    def status(self) -> InvitationStatus:
        return InvitationStatus(
            invitation_id=self._input.invitation_id,
            state=self._state,
            sends=self._sends,
            max_sends=self._input.max_sends,
            next_send_at=self._next_send_at,
            expires_at=self._expires_at,
            last_error=self._last_error,
        )

    # --- steps -------------------------------------------------------------------------

    async def _pending_turn(self) -> None:
        """This update's turn, once the invitation exists and nothing else is being
        recorded; refused unless the invitation is still pending."""
        await workflow.wait_condition(lambda: self._opened and not self._busy)
        if self._refusal is not None:
            raise refused(self._refusal)
        if self._state is not InvitationState.PENDING:
            raise refused(_closed_refusal(self._state))

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """An acceptance or cancellation under way: other updates and the expiry wait for it."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    async def _send(self, ttl: timedelta) -> None:
        self._sends += 1
        self._round_sends += 1
        left = self._input.max_sends - self._round_sends
        now = workflow.now()
        self._deadline = now + ttl
        self._next_send_at = self._deadline if left > 0 else None
        self._expires_at = now + ttl * (left + 1)
        self._describe()
        self._sending = True
        requested_by, self._requested_by = self._requested_by, None
        try:
            sent = await workflow.execute_activity_method(
                Mailer.send_invitation,
                SendInvitationInput(
                    invitation_id=self._input.invitation_id,
                    send_number=self._sends,
                    next_send_at=self._next_send_at,
                    expires_at=self._expires_at,
                    requested_by=requested_by,
                ),
                summary=f"send e-mail {self._round_sends} of {self._input.max_sends}",
                **MAIL_STEP,
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type == UNDELIVERABLE:
                self._last_error = err.cause.message
                await self._close(InvitationState.UNDELIVERABLE, reason=err.cause.message)
                return
            raise
        finally:
            self._sending = False
        if sent.outcome is SendOutcome.CLOSED:
            # Closed in the database by a transaction outside this workflow: mirror it.
            self._set_state(sent.state)

    async def _close(self, state: InvitationState, *, reason: str, actor: str = "system") -> None:
        # Decided now, before the activity records it: an update arriving meanwhile
        # answers with this state instead of racing it.
        self._set_state(state)
        self._next_send_at = None
        recorded = await database_step(
            PartnerStore.close_invitation,
            CloseInvitationInput(invitation_id=self._input.invitation_id, state=state, reason=reason, actor=actor),
            summary=f"record: invitation {state.value}",
        )
        self._set_state(recorded.state)

    def _set_state(self, state: InvitationState) -> None:
        if state is not self._state:
            self._state = state
            workflow.upsert_search_attributes([search.INVITATION_STATE.value_set(state.value)])
        self._describe()

    def _describe(self) -> None:
        if self._state is InvitationState.PENDING:
            expires = f"{self._expires_at:%Y-%m-%d %H:%M} UTC" if self._expires_at else "-"
            workflow.set_current_details(
                f"waiting for acceptance by someone at {self._input.invitee_domain}, "
                f"send {self._round_sends} of {self._input.max_sends}, expires {expires}"
            )
        else:
            reason = f": {self._last_error}" if self._last_error else ""
            workflow.set_current_details(f"{self._state.value} after {self._sends} send(s){reason}")


class InvitationHandlers:
    """The updates, signal and query of a workflow that runs an `Invitation`: the same
    names wherever an invitation runs, so the pages and the API address it alike."""

    _invitation: Invitation

    @workflow.update
    async def opened(self) -> InvitationStatus:
        """Answers once the invitation exists (or was refused): its creator's answer."""
        return await self._invitation.opened()

    @workflow.update
    async def accept(self, request: AcceptRequest) -> AcceptResult:
        return await self._invitation.accept(request)

    @workflow.update
    async def resend(self, request: ResendRequest) -> InvitationStatus:
        """Sends a new mail now and restarts the TTL with a fresh budget of sends."""
        return await self._invitation.resend(request)

    @workflow.update
    async def cancel(self, request: CancelRequest) -> InvitationStatus:
        return await self._invitation.cancel(request)

    @workflow.signal
    async def withdraw(self, request: WithdrawRequest) -> None:
        """Closed elsewhere (superseded by a newer admin invitation, or the partner was
        deactivated) in a transaction that already stopped its links: stop here too."""
        await self._invitation.withdraw(request)

    @workflow.query
    def status(self) -> InvitationStatus:
        return self._invitation.status()


@workflow.defn
class InvitationWorkflow(InvitationHandlers):
    """`invitation-{id}`: one member, replacement or revived invitation."""

    @workflow.init
    def __init__(self, input: InvitationInput) -> None:
        self._invitation = Invitation(input)

    @workflow.run
    async def run(self, input: InvitationInput) -> InvitationResult:
        await self._invitation.open()
        result = await self._invitation.run()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result


def _closed_refusal(state: InvitationState) -> Refusal:
    return Refusal(code=closed_invitation(state.value).value, detail=f"The invitation is {state.value}.")


async def withdraw(invitation_id: UUID, owner: str | None, state: InvitationState, reason: str) -> None:
    """Tells the workflow running an invitation (`owner`; None: its own
    `invitation-{id}`) that a transaction closed it, from another workflow."""
    try:
        await workflow.get_external_workflow_handle(owner or invitation_workflow_id(invitation_id)).signal(
            InvitationWorkflow.withdraw, WithdrawRequest(state=state, reason=reason)
        )
    except ApplicationError:
        # Its workflow is gone (closed, or its history past retention): nothing to stop.
        workflow.logger.info("invitation %s has no running workflow to withdraw", invitation_id)
