"""What rules R23 and R24 add to an invitation's life (workflows/invitation_loop.py runs
it): while its partner is suspended a send or an expiry is held until the resume, which
gives the invitation back its schedule; once it is closed, whoever asked for it is told."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.invitations import InvitationActivities
    from activities.mail import Mailer
    from partners.activity_io import CloseInvitationInput, InvitationRef, InviterNoticeInput, StoredSchedule
    from partners.models import InvitationInput, InvitationPurpose, InvitationState

from workflows.activity_options import DATABASE_STEP, MAIL_STEP, database_step
from workflows.invitation_data import InvitationData, Sending

# R23: a suspended partner's invitation waits for the resume's signal; should that signal
# be lost, it looks again this often (one timer and one read a day while suspended).
HELD_RECHECK = timedelta(days=1)
# R24: the inviter's mail, tried this long at most (a relay down for a day drops it).
INVITER_NOTICE_WITHIN = timedelta(days=1)


class InvitationHolds:
    """The suspension's holds and the inviter's notice, over the state `Invitation` keeps."""

    _input: InvitationInput
    _data: InvitationData
    _lock: asyncio.Lock

    def _set_state(self, state: InvitationState) -> None:
        raise NotImplementedError

    def _describe(self) -> None:
        raise NotImplementedError

    async def _close(self, state: InvitationState, *, reason: str, actor: str = "system") -> None:
        raise NotImplementedError

    async def _tell_inviter(self) -> None:
        """R24: whoever asked for it hears how it ended, where that is news to act on: a
        first admin or a replacement accepted, or it expired or could not be delivered.
        A mail that cannot go out is logged; the invitation's outcome stands."""
        state, purpose = self._data.state, self._input.purpose
        told = state in (InvitationState.EXPIRED, InvitationState.UNDELIVERABLE) or (
            state is InvitationState.ACCEPTED and purpose is not InvitationPurpose.MEMBER
        )
        if not told or not self._input.timing.tell_inviter:
            return
        try:
            await workflow.execute_activity_method(
                Mailer.notify_inviter,
                InviterNoticeInput(invitation_id=self._input.invitation_id, state=state),
                summary=f"tell the inviter: {state.value}",
                schedule_to_close_timeout=INVITER_NOTICE_WITHIN,
                **MAIL_STEP,
            )
        except ActivityError as err:
            workflow.logger.warning("the inviter of %s was not told: %s", self._input.invitation_id, err.cause)

    async def partner_resumed(self) -> None:
        """R23: its partner resumed; the stored schedule, moved on by the time it was
        suspended, is the one to keep (read, not taken from the signal)."""
        await workflow.wait_condition(lambda: self._data.ready)
        async with self._lock:
            if self._data.refusal is None and self._data.state is InvitationState.PENDING:
                await self._adopt_schedule()

    async def _expire(self) -> None:
        """The last send's time-to-live ended unanswered: expired, unless its partner is
        suspended (R23), which holds it until the resume gives its time back."""
        data = self._data
        reason = f"not accepted after {data.round_sends} sends"
        if not self._input.timing.hold_while_suspended:  # a run started by 1.0.0
            await self._close(InvitationState.EXPIRED, reason=reason)
            return
        recorded = await database_step(
            InvitationActivities.close_invitation,
            CloseInvitationInput(
                invitation_id=self._input.invitation_id,
                state=InvitationState.EXPIRED,
                reason=reason,
                hold_while_suspended=True,
            ),
            summary="record: invitation expired (held while its partner is suspended)",
        )
        if recorded.held:
            data.sending = Sending.HELD
            self._describe()
            return
        data.next_send_at = None
        self._set_state(recorded.state)

    async def _held(self) -> None:
        """Waits for the resume's signal; without one for a day, reads the schedule itself."""
        data = self._data
        try:
            await workflow.wait_condition(
                lambda: data.state is not InvitationState.PENDING or data.sending is not Sending.HELD,
                timeout=HELD_RECHECK,
                timeout_summary="partner suspended: look again",
            )
        except TimeoutError:
            async with self._lock:
                if data.state is InvitationState.PENDING and data.sending is Sending.HELD:
                    await self._adopt_schedule()

    async def _adopt_schedule(self) -> None:
        """The stored state and schedule; the caller holds the lock. While the partner is
        still suspended, nothing changes."""
        data = self._data
        # A regular activity, not a local one: it runs from a signal handler or a day's
        # timer, rarely, and the time-skipping test server mishandles a local activity's
        # marker beside a timer (it refused the completion once in three full runs).
        stored: StoredSchedule = await workflow.execute_activity_method(
            InvitationActivities.stored_schedule,
            InvitationRef(invitation_id=self._input.invitation_id),
            summary="read the schedule its partner's resume left",
            **DATABASE_STEP,
        )
        if stored.state is not InvitationState.PENDING:
            self._set_state(stored.state)
            return
        if stored.suspended:
            return
        data.next_send_at, data.expires_at = stored.next_send_at, stored.expires_at
        # A deadline already past goes off in a second: a timer of no length is one the
        # time-skipping test server mishandles, and a second changes nothing for anyone.
        soonest = workflow.now() + timedelta(seconds=1)
        data.deadline = max(stored.next_send_at or stored.expires_at or soonest, soonest)
        if data.sending is Sending.HELD:
            data.sending = Sending.IDLE
        data.rescheduled = True
        self._describe()
