"""InvitationWorkflow: one invitation, from the first e-mail to its final state."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.mail import UNDELIVERABLE, Mailer
    from activities.store import PartnerStore
    from partners import search
    from partners.models import (
        AcceptInvitationInput,
        AcceptRequest,
        AcceptResult,
        CloseInvitationInput,
        InvitationInput,
        InvitationResult,
        InvitationState,
        InvitationStatus,
        SendInvitationInput,
        SendOutcome,
    )
    from workflows.steps import DATABASE_STEP, MAIL_STEP


@workflow.defn
class InvitationWorkflow:
    """Sends the invitation, resends it each time its TTL passes, expires after the last send.

    Acceptance arrives as the `accept` update and is decided here, one at a time, so that
    an acceptance racing the expiry timer ends in one deterministic state: an acceptance
    already under way when the timer fires wins; one arriving after expiry is refused.
    """

    @workflow.init
    def __init__(self, input: InvitationInput) -> None:
        self._input = input
        self._state = InvitationState.PENDING
        self._sends = 0
        self._next_send_at: datetime | None = None
        self._expires_at: datetime | None = None
        self._accepting = False

    @workflow.run
    async def run(self, input: InvitationInput) -> InvitationResult:
        ttl = timedelta(seconds=input.ttl_seconds)
        while self._state is InvitationState.PENDING:
            if self._sends >= input.max_sends:
                await self._close(InvitationState.EXPIRED, reason=f"not accepted after {self._sends} sends")
                break
            deadline = workflow.now() + ttl
            await self._send(ttl)
            if self._state is not InvitationState.PENDING:
                break
            try:
                await workflow.wait_condition(
                    lambda: self._state is not InvitationState.PENDING,
                    timeout=max(deadline - workflow.now(), timedelta(0)),
                    timeout_summary="time-to-live of this send",
                )
            except TimeoutError:
                # The TTL passed. An acceptance already under way wins over the timer.
                await workflow.wait_condition(lambda: not self._accepting)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return InvitationResult(state=self._state, sends=self._sends)

    @workflow.update
    async def accept(self, request: AcceptRequest) -> AcceptResult:
        # A second click waits for the first and then answers "already accepted".
        await workflow.wait_condition(lambda: not self._accepting)
        if self._state is not InvitationState.PENDING:
            return AcceptResult(state=self._state, newly_accepted=False)
        self._accepting = True
        try:
            outcome = await workflow.execute_activity_method(
                PartnerStore.accept_invitation,
                AcceptInvitationInput(
                    invitation_id=self._input.invitation_id, send_number=request.send_number
                ),
                summary="accept: record the acceptance and its effect",
                **DATABASE_STEP,
            )
        finally:
            self._accepting = False
        self._set_state(outcome.state)
        return AcceptResult(state=outcome.state, newly_accepted=outcome.state is InvitationState.ACCEPTED)

    @workflow.query
    def status(self) -> InvitationStatus:
        return InvitationStatus(
            invitation_id=self._input.invitation_id,
            state=self._state,
            sends=self._sends,
            max_sends=self._input.max_sends,
            next_send_at=self._next_send_at,
            expires_at=self._expires_at,
        )

    async def _send(self, ttl: timedelta) -> None:
        self._sends += 1
        left = self._input.max_sends - self._sends
        now = workflow.now()
        self._next_send_at = now + ttl if left > 0 else None
        self._expires_at = now + ttl * (left + 1)
        self._describe()
        try:
            sent = await workflow.execute_activity_method(
                Mailer.send_invitation,
                SendInvitationInput(
                    invitation_id=self._input.invitation_id,
                    send_number=self._sends,
                    next_send_at=self._next_send_at,
                    expires_at=self._expires_at,
                ),
                summary=f"send e-mail {self._sends} of {self._input.max_sends}",
                **MAIL_STEP,
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type == UNDELIVERABLE:
                await self._close(InvitationState.UNDELIVERABLE, reason=err.cause.message)
                return
            raise
        if sent.outcome is SendOutcome.CLOSED:
            # Closed in the database by a transaction outside this workflow: mirror it.
            self._set_state(sent.state)

    async def _close(self, state: InvitationState, *, reason: str) -> None:
        # Decided now, before the activity records it: an `accept` arriving meanwhile
        # answers with this state instead of racing it.
        self._set_state(state)
        self._next_send_at = None
        recorded = await workflow.execute_activity_method(
            PartnerStore.close_invitation,
            CloseInvitationInput(invitation_id=self._input.invitation_id, state=state, reason=reason),
            summary=f"record: invitation {state.value}",
            **DATABASE_STEP,
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
                f"send {self._sends} of {self._input.max_sends}, expires {expires}"
            )
        else:
            workflow.set_current_details(f"{self._state.value} after {self._sends} send(s)")
