"""The invitation state machine alone, in seconds: the time-skipping server runs the real
workflows, and every activity is a double registered under the real one's name
(samples-python's way), keeping the invitation's row in memory. The real activities
are tested against PostgreSQL and SMTP by the other test files; here a change to the
state machine (send, resend on TTL, expiry, acceptance racing expiry, cancel, manual
resend, supersede, undeliverable, refusal) is checked without them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mail import UNDELIVERABLE
from partners.activity_io import (
    AcceptInvitationInput,
    AcceptInvitationOutput,
    CloseInvitationInput,
    CloseInvitationOutput,
    CreateInvitationInput,
    CreateInvitationOutput,
    InvitationRef,
    SendInvitationInput,
    SendInvitationOutput,
    SendOutcome,
)
from partners.errors import ErrorCode, Refused
from partners.models import (
    AcceptRequest,
    CancelRequest,
    ClosedElsewhere,
    InvitationPurpose,
    InvitationResult,
    InvitationState,
    InvitationTiming,
    Invitee,
    NewInvitation,
    PartnerStatus,
    ResendRequest,
    Role,
    invitation_input,
)
from worker import sandbox_runner
from workflows.invitation import InvitationWorkflow

TTL = timedelta(days=3)
TIMING = InvitationTiming(
    ttl_seconds=int(TTL.total_seconds()), max_sends=3, resend_cooldown_seconds=60, resend_daily_limit=5
)
LINK = AcceptRequest(token_hash="ab" * 32, clicked_at=datetime.now(UTC))  # the doubles take any link


@dataclass
class Doubles:
    """The invitation's row and the mails, in memory; each method stands in for the
    activity of the same name."""

    state: InvitationState = InvitationState.PENDING
    sends: list[SendInvitationInput] = field(default_factory=list)
    closes: list[CloseInvitationInput] = field(default_factory=list)
    refuse_creation: ErrorCode | None = None
    undeliverable: bool = False
    accept_delay: float = 0.0

    @activity.defn(name="create_invitation")
    async def create_invitation(self, input: CreateInvitationInput) -> CreateInvitationOutput:
        if self.refuse_creation is not None:
            raise Refused(self.refuse_creation, "refused by the double")
        return CreateInvitationOutput(purpose=input.invitation.purpose)

    @activity.defn(name="send_invitation")
    async def send_invitation(self, input: SendInvitationInput) -> SendInvitationOutput:
        if self.state is not InvitationState.PENDING:
            return SendInvitationOutput(outcome=SendOutcome.CLOSED, state=self.state)
        if self.undeliverable:
            raise ApplicationError("550 no such mailbox", type=UNDELIVERABLE, non_retryable=True)
        self.sends.append(input)
        return SendInvitationOutput(outcome=SendOutcome.SENT)

    @activity.defn(name="accept_invitation")
    async def accept_invitation(self, input: AcceptInvitationInput) -> AcceptInvitationOutput:
        await asyncio.sleep(self.accept_delay)  # real time: the workflow's timer may fire meanwhile
        if self.state is InvitationState.PENDING:
            self.state = InvitationState.ACCEPTED
        return AcceptInvitationOutput(state=self.state, partner_status=PartnerStatus.ACTIVE)

    @activity.defn(name="close_invitation")
    async def close_invitation(self, input: CloseInvitationInput) -> CloseInvitationOutput:
        self.closes.append(input)
        if self.state is InvitationState.PENDING:
            self.state = input.state
        return CloseInvitationOutput(state=self.state)

    @activity.defn(name="stored_state")
    async def stored_state(self, input: InvitationRef) -> CloseInvitationOutput:
        return CloseInvitationOutput(state=self.state)

    def activities(self) -> list[Any]:
        return [
            self.create_invitation,
            self.send_invitation,
            self.accept_invitation,
            self.close_invitation,
            self.stored_state,
        ]


@dataclass
class Machine:
    env: WorkflowEnvironment
    doubles: Doubles
    task_queue: str

    async def start(self, **overrides: Any) -> WorkflowHandle[InvitationWorkflow, InvitationResult]:
        invitation_id = uuid.uuid4()
        invitee = Invitee(first_name="Mel", last_name="Member", email="mel@partner.example")
        return await self.env.client.start_workflow(
            InvitationWorkflow.run,
            invitation_input(
                invitation_id,
                partner_id=uuid.uuid4(),
                enterprise_id="ent",
                purpose=InvitationPurpose.MEMBER,
                invitee_email=invitee.email,
                timing=TIMING,
                create=NewInvitation(
                    partner_id=uuid.uuid4(),
                    invitee=invitee,
                    role=Role.MEMBER,
                    purpose=InvitationPurpose.MEMBER,
                    invited_by="admin@partner.example",
                ),
            ).model_copy(update=overrides),
            id=f"invitation-{invitation_id}",
            task_queue=self.task_queue,
        )

    async def result(self, handle: WorkflowHandle[InvitationWorkflow, InvitationResult]) -> InvitationResult:
        async with asyncio.timeout(30):
            return await handle.result()


@pytest.fixture
async def machine(time_env: WorkflowEnvironment) -> AsyncIterator[Machine]:
    doubles, task_queue = Doubles(), f"machine-{uuid.uuid4()}"
    async with Worker(
        time_env.client,
        task_queue=task_queue,
        workflows=[InvitationWorkflow],
        activities=doubles.activities(),
        workflow_runner=sandbox_runner(),
    ):
        yield Machine(time_env, doubles, task_queue)


async def test_no_click_sends_at_each_ttl_then_expires(machine: Machine) -> None:
    handle = await machine.start()

    result = await machine.result(handle)

    assert (result.state, result.sends) == (InvitationState.EXPIRED, 3)
    sends = machine.doubles.sends
    assert [s.send_number for s in sends] == [1, 2, 3]
    assert [s.requested_by for s in sends] == [None, None, None]
    assert sends[0].next_send_at is not None and sends[1].next_send_at is not None
    # Each reminder one TTL after the last (a timer fires a few milliseconds late).
    assert abs(sends[1].next_send_at - sends[0].next_send_at - TTL) < timedelta(seconds=1)
    assert sends[2].next_send_at is None
    assert abs(sends[2].expires_at - (sends[0].next_send_at + 2 * TTL)) < timedelta(seconds=1)
    assert [c.state for c in machine.doubles.closes] == [InvitationState.EXPIRED]


async def test_accepted_after_the_first_send(machine: Machine) -> None:
    handle = await machine.start()
    await handle.execute_update(InvitationWorkflow.ready)

    # Two clicks at once: the second waits for the first and hears "already accepted".
    accepted, again = await asyncio.gather(
        handle.execute_update(InvitationWorkflow.accept, LINK),
        handle.execute_update(InvitationWorkflow.accept, LINK),
    )

    assert sorted([accepted.newly_accepted, again.newly_accepted]) == [False, True]
    assert accepted.state is again.state is InvitationState.ACCEPTED
    result = await machine.result(handle)
    assert (result.state, result.sends) == (InvitationState.ACCEPTED, 1)
    assert machine.doubles.closes == []


async def test_acceptance_under_way_when_the_last_ttl_ends_wins(machine: Machine) -> None:
    handle = await machine.start()
    await handle.execute_update(InvitationWorkflow.ready)
    await machine.env.sleep(3 * TTL - timedelta(seconds=1))  # just before the expiry
    machine.doubles.accept_delay = 3.0  # the acceptance outlasts what is left of the TTL

    accepted = await handle.execute_update(InvitationWorkflow.accept, LINK)

    assert accepted.state is InvitationState.ACCEPTED
    assert (await machine.result(handle)).state is InvitationState.ACCEPTED
    assert machine.doubles.closes == [], "the expiry, waiting for the acceptance, recorded nothing"


async def test_cancelled_by_hand_then_no_more_mail(machine: Machine) -> None:
    handle = await machine.start()
    await handle.execute_update(InvitationWorkflow.ready)

    status = await handle.execute_update(InvitationWorkflow.cancel, CancelRequest(actor="holder@ent.example"))

    assert status.state is InvitationState.CANCELLED
    result = await machine.result(handle)
    assert (result.state, result.sends) == (InvitationState.CANCELLED, 1)
    [close] = machine.doubles.closes
    assert (close.state, close.actor) == (InvitationState.CANCELLED, "holder@ent.example")


async def test_resend_by_hand_sends_now_with_a_fresh_budget(machine: Machine) -> None:
    handle = await machine.start()
    await handle.execute_update(InvitationWorkflow.ready)
    await machine.env.sleep(TTL / 2)

    status = await handle.execute_update(InvitationWorkflow.resend, ResendRequest(actor="admin@partner.example"))

    assert (status.state, status.sends) == (InvitationState.PENDING, 2)
    result = await machine.result(handle)
    # The resend restarts the round: three more sends after it, four in all.
    assert (result.state, result.sends) == (InvitationState.EXPIRED, 4)
    assert [s.requested_by for s in machine.doubles.sends] == [None, "admin@partner.example", None, None]


async def test_superseded_elsewhere_stops_it(machine: Machine) -> None:
    handle = await machine.start()
    await handle.execute_update(InvitationWorkflow.ready)
    machine.doubles.state = InvitationState.SUPERSEDED  # the superseding transaction committed

    await handle.signal(InvitationWorkflow.closed_elsewhere, ClosedElsewhere(reason="newer"))

    result = await machine.result(handle)
    assert (result.state, result.sends) == (InvitationState.SUPERSEDED, 1)


async def test_permanent_refusal_of_the_recipient_makes_it_undeliverable(machine: Machine) -> None:
    machine.doubles.undeliverable = True
    handle = await machine.start()

    result = await machine.result(handle)

    assert result.state is InvitationState.UNDELIVERABLE
    [close] = machine.doubles.closes
    assert (close.state, close.reason) == (InvitationState.UNDELIVERABLE, "550 no such mailbox")
    assert (await handle.query(InvitationWorkflow.status)).last_error == "550 no such mailbox"


async def test_refused_creation_answers_every_update_with_the_refusal(machine: Machine) -> None:
    machine.doubles.refuse_creation = ErrorCode.ALREADY_MEMBER
    handle = await machine.start()

    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(InvitationWorkflow.ready)

    refusal = Refused.found_in(failed.value)
    assert refusal is not None and refusal.code is ErrorCode.ALREADY_MEMBER
    result = await machine.result(handle)
    assert (result.state, result.refused, result.sends) == (None, ErrorCode.ALREADY_MEMBER, 0)
    assert machine.doubles.sends == []


async def test_a_long_history_continues_as_new_with_the_invitation_as_it_was(machine: Machine) -> None:
    timing = TIMING.model_copy(update={"resend_daily_limit": 100})
    handle = await machine.start(history_limit=40, timing=timing)
    first_run = (await handle.describe()).run_id
    await handle.execute_update(InvitationWorkflow.ready)

    for _ in range(8):  # resent by hand, day after day: each adds events
        await machine.env.sleep(timedelta(hours=1))
        resent = await handle.execute_update(InvitationWorkflow.resend, ResendRequest(actor="admin@partner.example"))
        assert resent.state is InvitationState.PENDING

    # The latest run, followed by hand (the time-skipping server's result does not
    # follow a continue-as-new chain).
    latest = (await handle.describe()).run_id
    continued = machine.env.client.get_workflow_handle_for(InvitationWorkflow.run, handle.id, run_id=latest)
    # Only the handles the environment started skip time by themselves.
    async with asyncio.timeout(30), machine.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        result = await continued.result()
    # The last resend restarted the round: two reminders after it, then the expiry.
    assert (result.state, result.sends) == (InvitationState.EXPIRED, 11)
    assert [s.send_number for s in machine.doubles.sends] == list(range(1, 12)), "the ledger's key goes on"
    assert (await handle.describe()).run_id != first_run
    history = await machine.env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    assert history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    assert len(history.events) < 80, "the history stayed bounded"


def test_every_field_of_an_invitations_state_is_carried_or_said_to_belong_to_one_run() -> None:
    """Continue-as-new hands the state over in CarriedInvitation, copied field by field:
    a field added to InvitationData and to neither list would be reset without a word."""
    import dataclasses

    from partners.models import CarriedInvitation
    from workflows.invitation_data import RUN_ONLY, InvitationData

    state = {f.name for f in dataclasses.fields(InvitationData)}
    carried = set(CarriedInvitation.model_fields) - {"invitation_id"}
    assert carried <= state, carried - state
    assert state - carried == RUN_ONLY
