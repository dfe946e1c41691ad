"""The invitation loop: one invitation's life inside a workflow, the state machine that
`InvitationWorkflow` and `PartnerOnboardingWorkflow` both run (workflows/invitation.py
holds the handlers that drive it)."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.invitations import InvitationActivities
    from partners import search
    from partners.activity_io import (
        AcceptInvitationInput,
        CloseInvitationInput,
        CreateInvitationInput,
        InvitationRef,
        ReopenInvitationInput,
    )
    from partners.errors import ErrorCode, Refused
    from partners.models import (
        AcceptRequest,
        AcceptResult,
        CancelRequest,
        CarriedInvitation,
        ClosedElsewhere,
        InvitationInput,
        InvitationResult,
        InvitationState,
        InvitationStatus,
        InvitationWorkflowRef,
        ResendRequest,
    )
    from partners.rules import resend_limit_refusal

from workflows.activity_options import database_step, history_is_long
from workflows.invitation_data import IndexedWith, InvitationData, Sending, indexed_alone
from workflows.invitation_sends import InvitationSends


class Invitation(InvitationSends):
    """One invitation's life inside a workflow: `InvitationWorkflow` runs one per member,
    replacement or taken-over invitation, and `PartnerOnboardingWorkflow` runs its
    partner's first admin's (one workflow per onboarding instead of two).

    It sends the invitation, resends it each time its TTL passes and expires it after the
    last send. Updates (accept, resend, cancel) and the `closed_elsewhere` signal change
    it, one at a time under one lock, which the expiry takes too: an acceptance under way
    when the timer fires wins; one arriving after the expiry was decided is answered
    "expired".
    """

    def __init__(self, input: InvitationInput, indexed_with: IndexedWith = indexed_alone) -> None:
        """`indexed_with`: what the owning workflow indexes beside a new state, in the same
        upsert (each upsert is a billed Action: one per state change)."""
        self._input = input
        self._indexed_with = indexed_with
        self._data = InvitationData(requested_by=input.take_over.actor if input.take_over else None)
        self._lock = asyncio.Lock()
        if (carried := input.carried) is not None:  # a continued run: where the last one stopped
            self._data = InvitationData(
                ready=True, sending=Sending.IDLE, **carried.model_dump(exclude={"invitation_id"})
            )

    def carry(self) -> CarriedInvitation:
        """What a continued run needs: the fields both share."""
        fields = CarriedInvitation.model_fields.keys() - {"invitation_id"}
        return CarriedInvitation(
            invitation_id=self._input.invitation_id, **{name: getattr(self._data, name) for name in fields}
        )

    def stored_by_registration(self) -> None:
        """Its row was stored with the partner: nothing to create."""
        self._data.ready = True

    def refuse(self, refusal: Refused) -> None:
        """It will not run here: every update is answered with this refusal."""
        self._data.refusal = refusal
        self._data.ready = True

    async def create_or_take_over(self) -> list[InvitationWorkflowRef]:
        """Creates its row, or takes a stored one over, as the run's input says; answers
        the admin invitations a revival superseded (R8), whose workflows are to be told."""
        data, input = self._data, self._input
        superseded: list[InvitationWorkflowRef] = []
        if input.carried is not None:
            return superseded
        try:
            if input.create is not None:
                await database_step(
                    InvitationActivities.create_invitation,
                    CreateInvitationInput(
                        invitation_id=input.invitation_id,
                        enterprise_id=input.enterprise_id,
                        invitation=input.create,
                        max_sends=input.timing.max_sends,
                    ),
                    summary="create: check domain, membership and pending invitations",
                )
            elif input.take_over is not None:
                taken = await database_step(
                    InvitationActivities.reopen_invitation,
                    ReopenInvitationInput(
                        invitation_id=input.invitation_id,
                        take_over=input.take_over,
                        workflow_id=workflow.info().workflow_id,
                        resend_daily_limit=input.timing.resend_daily_limit,
                    ),
                    summary="take the invitation over (revive it if expired or undeliverable)",
                )
                data.sends = taken.sends
                data.manual_sends = list(taken.manual_sends)
                workflow.upsert_search_attributes([search.INVITATION_STATE.value_set(InvitationState.PENDING.value)])
                superseded = taken.superseded
                if input.take_over.revive:
                    data.revival_unanswered = True
                    data.manual_sends.append(workflow.now())
                else:
                    # Adopted without a new mail: it ends when its last send would have,
                    # or goes on with the row's schedule, reminders included (R25).
                    data.sending = Sending.IDLE
                    data.round_sends = input.timing.max_sends
                    data.deadline = data.expires_at = taken.expires_at or workflow.now()
                    if input.take_over.continue_schedule and taken.next_send_at and taken.expires_at:
                        ttl = timedelta(seconds=input.timing.ttl_seconds)
                        left = round((taken.expires_at - taken.next_send_at) / ttl)
                        data.round_sends = max(input.timing.max_sends - left, 0)
                        data.deadline = data.next_send_at = taken.next_send_at
        except ApplicationError as err:
            data.refusal = Refused.found_in(err)
            if data.refusal is None:
                raise
        finally:
            data.ready = True
        return superseded

    async def run(self) -> InvitationResult | None:
        """Once ready: sends, waits, resends and expires until the invitation is closed.
        None: the history is long; the caller continues as new with `carry()`."""
        data = self._data
        if data.refusal is not None:
            return InvitationResult(state=None, sends=0, refused=data.refusal.code)
        ttl = timedelta(seconds=self._input.timing.ttl_seconds)
        while data.state is InvitationState.PENDING:
            if data.sending is Sending.DUE:
                await self._send(ttl)
                continue
            if self._history_is_long():
                # Hand over once no update is under way (none may be cut off).
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._changed_meanwhile())
                if not self._changed_meanwhile():
                    return None
                continue
            if data.sending is Sending.HELD:
                await self._held()
                continue
            assert data.deadline is not None
            data.rescheduled = False
            try:
                await workflow.wait_condition(
                    lambda: (
                        data.state is not InvitationState.PENDING or data.sending is Sending.DUE or data.rescheduled
                    ),
                    timeout=max(data.deadline - workflow.now(), timedelta(0)),
                    timeout_summary="time-to-live of the last send",
                )
            except TimeoutError:
                async with self._lock:  # an acceptance or cancellation under way goes first
                    if self._changed_meanwhile() or data.rescheduled:
                        continue
                    if data.round_sends >= self._input.timing.max_sends:
                        await self._expire()
                    else:
                        data.sending = Sending.DUE
        await self._tell_inviter()
        return InvitationResult(state=data.state, sends=data.sends)

    def _history_is_long(self) -> bool:
        return history_is_long(self._input.history_limit)

    def _changed_meanwhile(self) -> bool:
        """Closed, or a send asked for, while the timer fired."""
        return self._data.state is not InvitationState.PENDING or self._data.sending is Sending.DUE

    # --- what the handlers do --------------------------------------------------------------

    async def ready(self) -> InvitationStatus:
        await workflow.wait_condition(lambda: self._data.ready)
        if self._data.refusal is not None:
            raise self._data.refusal
        return self.status()

    async def accept(self, request: AcceptRequest) -> AcceptResult:
        await workflow.wait_condition(lambda: self._data.ready)
        async with self._lock:  # a second click waits for the first, then hears "already accepted"
            if self._data.refusal is not None:
                raise self._data.refusal
            if self._data.state is not InvitationState.PENDING:
                return AcceptResult(state=self._data.state, newly_accepted=False)
            outcome = await database_step(
                InvitationActivities.accept_invitation,
                AcceptInvitationInput(
                    invitation_id=self._input.invitation_id,
                    token_hash=request.token_hash,
                    clicked_at=request.clicked_at,
                ),
            )
            self._set_state(outcome.state)
        return AcceptResult(state=outcome.state, newly_accepted=outcome.state is InvitationState.ACCEPTED)

    async def resend(self, request: ResendRequest) -> InvitationStatus:
        await self._pending_turn()
        data = self._data
        if data.revival_unanswered:
            # The resend that started this run: its mail is the revival's first send.
            data.revival_unanswered = False
        else:
            if refusal := self._resend_refusal(cooldown=not request.operator):
                raise refusal
            now = workflow.now()
            data.manual_sends = [at for at in data.manual_sends if now - at < timedelta(hours=24)] + [now]
            if data.sending is Sending.IN_FLIGHT:
                # A send under way (a reminder) is the new mail: mailing again seconds
                # later would only confuse the invitee.
                data.round_sends = 1
            else:
                data.requested_by = request.actor
                data.round_sends = 0
                data.sending = Sending.DUE
        await workflow.wait_condition(
            lambda: data.state is not InvitationState.PENDING or data.sending in (Sending.IDLE, Sending.HELD)
        )
        return self.status()

    def refuse_resend_early(self, request: ResendRequest) -> None:
        """The validator's check: a resend refused by what the run knows already (closed,
        the cooldown, the daily limit) is rejected before the history records anything."""
        if not self._data.ready or self._data.revival_unanswered or self._lock.locked():
            return  # the handler decides once its turn comes
        self._require_pending()
        if refusal := self._resend_refusal(cooldown=not request.operator):
            raise refusal

    def _resend_refusal(self, *, cooldown: bool) -> Refused | None:
        """R7: resending by hand is rate-limited, per invitation: not within the cooldown
        of the last send, at most the daily limit in any 24 h."""
        data, timing, now = self._data, self._input.timing, workflow.now()
        wait_after = timedelta(seconds=timing.resend_cooldown_seconds)
        if cooldown and data.last_send_at is not None and now - data.last_send_at < wait_after:
            wait = data.last_send_at + wait_after - now
            return Refused(
                ErrorCode.RESEND_TOO_SOON,
                f"Sent {int((now - data.last_send_at).total_seconds())} s ago; wait before resending.",
                retry_after=max(1, math.ceil(wait.total_seconds())),
            )
        recent = [at for at in data.manual_sends if now - at < timedelta(hours=24)]
        return resend_limit_refusal(recent, now, timing.resend_daily_limit)

    async def cancel(self, request: CancelRequest) -> InvitationStatus:
        await workflow.wait_condition(lambda: self._data.ready)
        async with self._lock:
            self._require_pending()
            await self._close(InvitationState.CANCELLED, reason="cancelled by hand", actor=request.actor)
        return self.status()

    async def closed_elsewhere(self, request: ClosedElsewhere) -> None:
        await workflow.wait_condition(lambda: self._data.ready)
        async with self._lock:
            if self._data.refusal is not None or self._data.state is not InvitationState.PENDING:
                return
            # The transaction that closed it decided the state: read it, do not take the
            # signal's word for it (a made-up signal changes nothing).
            stored = await database_step(
                InvitationActivities.stored_state,
                InvitationRef(invitation_id=self._input.invitation_id),
                summary=f"read the state a transaction elsewhere left ({request.reason})",
            )
            self._set_state(stored.state)

    def status(self) -> InvitationStatus:
        data = self._data
        return InvitationStatus(
            invitation_id=self._input.invitation_id,
            state=data.state,
            sends=data.sends,
            max_sends=self._input.timing.max_sends,
            next_send_at=data.next_send_at,
            expires_at=data.expires_at,
            last_error=data.last_error,
        )

    # --- steps -------------------------------------------------------------------------

    async def _pending_turn(self) -> None:
        """This update's turn, once nothing else is being recorded; refused unless the
        invitation is still pending."""
        await workflow.wait_condition(lambda: self._data.ready)
        async with self._lock:
            self._require_pending()

    def _require_pending(self) -> None:
        if self._data.refusal is not None:
            raise self._data.refusal
        if (state := self._data.state) is not InvitationState.PENDING:
            raise Refused(ErrorCode.closed_invitation(state.value), f"The invitation is {state.value}.")

    async def _close(self, state: InvitationState, *, reason: str, actor: str = "system") -> None:
        """Records a decision of this workflow; the caller holds the lock."""
        # Decided now, before the activity records it: an update arriving meanwhile
        # answers with this state instead of racing it.
        self._set_state(state)
        self._data.next_send_at = None
        recorded = await database_step(
            InvitationActivities.close_invitation,
            CloseInvitationInput(invitation_id=self._input.invitation_id, state=state, reason=reason, actor=actor),
            summary=f"record: invitation {state.value}",
        )
        self._set_state(recorded.state)

    def _set_state(self, state: InvitationState) -> None:
        if state is not self._data.state:
            self._data.state = state
            workflow.upsert_search_attributes(
                [search.INVITATION_STATE.value_set(state.value), *self._indexed_with(state)]
            )
        self._describe()

    def _describe(self) -> None:
        data = self._data
        if data.state is InvitationState.PENDING and data.sending is Sending.HELD:
            workflow.set_current_details("held: its partner is suspended; it continues when the partner resumes")
        elif data.state is InvitationState.PENDING:
            expires = f"{data.expires_at:%Y-%m-%d %H:%M} UTC" if data.expires_at else "-"
            workflow.set_current_details(
                f"waiting for acceptance by someone at {self._input.invitee_domain}, "
                f"send {data.round_sends} of {self._input.timing.max_sends}, expires {expires}"
            )
        else:
            reason = f": {data.last_error}" if data.last_error else ""
            workflow.set_current_details(f"{data.state.value} after {data.sends} send(s){reason}")
