"""One send of an invitation (workflows/invitation_loop.py runs it): the mail activity,
bounded by the invitation's expiry, and what its outcome or failure means: sent, closed
meanwhile, held while the partner is suspended (R23), or the invitation closed because the
mail cannot go out (R7)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.mail import UNDELIVERABLE, Mailer
    from partners.activity_io import SendInvitationInput, SendOutcome
    from partners.models import InvitationState

from workflows.activity_options import MAIL_STEP
from workflows.invitation_data import Sending
from workflows.invitation_holds import InvitationHolds


class InvitationSends(InvitationHolds):
    """Sending, over the state `Invitation` keeps (its lock, data and input: `InvitationHolds`)."""

    async def _send(self, ttl: timedelta) -> None:
        data, max_sends = self._data, self._input.timing.max_sends
        before = (data.sends, data.round_sends, data.deadline, data.next_send_at, data.expires_at, data.last_send_at)
        data.sends += 1
        data.round_sends += 1
        now = workflow.now()
        data.deadline = now + ttl
        left = max_sends - data.round_sends
        data.next_send_at = data.deadline if left > 0 else None
        data.expires_at = now + ttl * (left + 1)
        data.last_send_at = now
        data.sending = Sending.IN_FLIGHT
        requested_by, data.requested_by = data.requested_by, None
        self._describe()
        try:
            sent = await workflow.execute_activity_method(
                Mailer.send_invitation,
                SendInvitationInput(
                    invitation_id=self._input.invitation_id,
                    send_number=data.sends,
                    next_send_at=data.next_send_at,
                    expires_at=data.expires_at,
                    requested_by=requested_by,
                ),
                summary=f"send e-mail {data.round_sends} of {max_sends}",
                # R7: a mail that cannot go out (4xx for days) does not keep the
                # invitation pending past its expiry.
                schedule_to_close_timeout=data.expires_at - now,
                **MAIL_STEP,
            )
        except ActivityError as err:
            closing = _closing_failure(err)
            if closing is None:
                raise
            state, data.last_error = closing
            async with self._lock:
                if data.state is InvitationState.PENDING:
                    await self._close(state, reason=data.last_error)
            return
        finally:
            if data.sending is Sending.IN_FLIGHT:
                data.sending = Sending.IDLE
        if sent.outcome is SendOutcome.CLOSED:
            # Closed in the database by a transaction outside this workflow: mirror it.
            self._set_state(sent.state)
        elif sent.outcome is SendOutcome.HELD:  # an outcome no 1.0.0 history holds
            # R23: its partner is suspended; nothing went out. As it was before this send,
            # to be sent once the partner resumes.
            data.sends, data.round_sends, data.deadline, data.next_send_at, data.expires_at, data.last_send_at = before
            data.requested_by = requested_by
            data.sending = Sending.HELD
            self._describe()


def _closing_failure(err: ActivityError) -> tuple[InvitationState, str] | None:
    """The state a failed send closes the invitation in, with why; None to fail the run."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == UNDELIVERABLE:
        return InvitationState.UNDELIVERABLE, cause.message
    if err.retry_state is RetryState.TIMEOUT:
        # Out of time (the schedule-to-close bound, the invitation's expiry): the server
        # gives up with the last attempt's failure, or a timeout when none was left.
        last = cause.cause if isinstance(cause, ActivityTimeout) and cause.cause is not None else cause
        return InvitationState.EXPIRED, f"expired before its mail could be sent: {last}"
    return None
