"""Inputs and outputs of the activities: the database steps and the mail.

The workflows' own models (their inputs, results, updates, queries) are in
partners.models; these are what a workflow hands a step and gets back.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel

from partners.models import (
    InvitationPurpose,
    InvitationState,
    InvitationWorkflowRef,
    NewInvitation,
    NewPartner,
    PartnerStatus,
    PruneKind,
    TakeOver,
)

# --- partners ----------------------------------------------------------------------------


class RegisterPartnerInput(BaseModel):
    partner_id: UUID
    invitation_id: UUID
    enterprise_id: str
    actor: str
    partner: NewPartner
    max_sends: int
    workflow_id: str  # the onboarding, which runs the first admin's invitation


class DeactivatePartnerInput(BaseModel):
    partner_id: UUID
    enterprise_id: str  # checked against the partner's own: Temporal is no back door
    actor: str


class DeactivatePartnerOutput(BaseModel):
    newly_deactivated: bool
    cancelled: list[InvitationWorkflowRef] = []


# --- invitations -------------------------------------------------------------------------


class CreateInvitationInput(BaseModel):
    invitation_id: UUID
    enterprise_id: str  # checked against the partner's own: Temporal is no back door
    invitation: NewInvitation
    max_sends: int


class CreateInvitationOutput(BaseModel):
    # Decided under the partner's lock: an admin invitation of a pending partner is its
    # first admin's (it activates the partner); of an active one, a replacement.
    purpose: InvitationPurpose
    superseded: list[InvitationWorkflowRef] = []


class ReopenInvitationInput(BaseModel):
    invitation_id: UUID
    take_over: TakeOver
    workflow_id: str
    resend_daily_limit: int


class ReopenInvitationOutput(BaseModel):
    """A pending invitation, taken over: its sends so far, when it expires, the manual
    sends of the last 24 h, and the admin invitations a revival superseded (R8)."""

    sends: int
    expires_at: datetime | None = None
    next_send_at: datetime | None = None
    manual_sends: list[datetime] = []
    superseded: list[InvitationWorkflowRef] = []


class InvitationRef(BaseModel):
    invitation_id: UUID


class AcceptInvitationInput(BaseModel):
    invitation_id: UUID
    token_hash: str
    clicked_at: datetime


class AcceptInvitationOutput(BaseModel):
    state: InvitationState
    partner_status: PartnerStatus


class CloseInvitationInput(BaseModel):
    """Records a decision of the workflow: expired, undeliverable, cancelled, superseded."""

    invitation_id: UUID
    state: InvitationState
    reason: str | None = None
    actor: str = "system"
    hold_while_suspended: bool = False  # an expiry: not while the partner is suspended (R23)


class CloseInvitationOutput(BaseModel):
    """The state the invitation has: the one asked for, or the one it was already closed in;
    `held`: still pending, its partner suspended (nothing was recorded)."""

    state: InvitationState
    held: bool = False


class StoredSchedule(BaseModel):
    """An invitation's state and schedule as stored, and whether its partner is suspended."""

    state: InvitationState
    next_send_at: datetime | None
    expires_at: datetime | None
    suspended: bool


class SendInvitationInput(BaseModel):
    invitation_id: UUID
    send_number: int
    next_send_at: datetime | None
    expires_at: datetime
    requested_by: str | None = None  # who resent it by hand; None for the automatic sends


class InviterNoticeInput(BaseModel):
    """Tell an invitation's inviter how it ended (R24): accepted (a first admin or a
    replacement), expired or undeliverable."""

    invitation_id: UUID
    state: InvitationState


class SendOutcome(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    CLOSED = "closed"
    HELD = "held"  # the partner is suspended: nothing was sent or recorded (R23)


class SendInvitationOutput(BaseModel):
    outcome: SendOutcome
    state: InvitationState = InvitationState.PENDING


class SendFailure(BaseModel):
    """A temporary delivery failure, kept for the partner view while the mail is retried."""

    invitation_id: UUID
    error: str


# --- webhooks (R15) -------------------------------------------------------------------
# Only ids cross Temporal: the event's body is read from PostgreSQL where it is sent.


class WebhookInput(BaseModel):
    """`webhook-{endpoint_id}`: delivers the endpoint's events, in order, for ever."""

    endpoint_id: UUID
    retry_for_seconds: int
    attempt_seconds: float  # an attempt's whole time: WEBHOOK_TIMEOUT and a margin


class NextEventsInput(BaseModel):
    endpoint_id: UUID
    limit: int = 100


class NextEventsOutput(BaseModel):
    seqs: list[int]
    backlog: int = 0
    oldest_age: float = 0.0  # seconds since the first of them committed
    stopped: bool = False  # the endpoint was deleted or disabled
    sleeping: bool = False  # none waits: the endpoint is flagged asleep until the next commit wakes it


class DeliverInput(BaseModel):
    endpoint_id: UUID
    seqs: list[int]  # in order; the first is retried until it is delivered or failed
    backlog: int | None = None  # the events waiting, these included (None: a redelivery)
    earlier_attempts: int = 0  # the first event's attempts in an earlier batch


class DeliverOutput(BaseModel):
    done: int  # how many of the seqs are delivered or failed, from the first
    status: str  # the last one's: delivered, or failed (a 4xx but 429: retrying would not help)
    http_status: int | None = None
    seq: int | None = None  # the last one's
    retry_next: bool = False  # the event after them failed once and is to be retried


class DeliverNextInput(NextEventsInput):
    earlier_attempts: int = 0  # the first event's attempts in an earlier activity


class DeliverNextOutput(DeliverOutput):
    """What one wake-up's activity did: `done` events delivered or failed, the last one's
    outcome; then either more wait (`backlog`), or none (`sleeping`), or the endpoint is
    disabled or deleted (`stopped`)."""

    done: int = 0
    status: str = "none"
    backlog: int = 0
    sleeping: bool = False
    stopped: bool = False


class GiveUpInput(BaseModel):
    endpoint_id: UUID
    seq: int | None  # None: the endpoint's next event, whichever it is now
    error: str


class PruneInput(BaseModel):
    kind: PruneKind
    budget_seconds: float  # batches until one is not full or this is spent (one at least)


class PruneOutput(BaseModel):
    rows: dict[PruneKind, int]  # an event's attempts count as deliveries
    more: bool  # the budget ran out with rows left
