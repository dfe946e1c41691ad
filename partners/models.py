"""Input and output models of the workflows: their inputs and results, updates, signals
and queries (the activities' are in partners.activity_io), and the shapes both share.

One input and one output model per workflow, update and query. These are
the service's own shapes: plain fields, no validation beyond types (the API validated
what it accepted, partners.requests), so a running workflow's input decodes whatever
the API's rules become.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from uuid import UUID

from pydantic import BaseModel

from partners.errors import ErrorCode
from partners.texts import Locale

if TYPE_CHECKING:
    from partners.settings import Settings


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class PartnerStatus(StrEnum):
    """pending until its first admin accepts, then active; suspended and back (R23);
    deactivated for good (R10)."""

    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"  # R23: paused by its account holder, resumed as it was
    DEACTIVATED = "deactivated"


class InvitationState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    UNDELIVERABLE = "undeliverable"


class InvitationPurpose(StrEnum):
    FIRST_ADMIN = "first_admin"
    MEMBER = "member"
    ADMIN_REPLACEMENT = "admin_replacement"


class GrantKind(StrEnum):
    PRODUCT = "product"
    API = "api"


class Invitee(BaseModel):
    """A person to invite, as the API normalised them."""

    first_name: str
    last_name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


class NewPartner(BaseModel):
    name: str
    enterprise_name: str | None = None
    domains: list[str]
    admin: Invitee
    locale: Locale | None = None


class InvitationTiming(BaseModel):
    """R7: how long each send waits for a click, how many sends before expiry, and how
    often a person may resend it by hand."""

    ttl_seconds: int
    max_sends: int
    resend_cooldown_seconds: int
    resend_daily_limit: int
    # What a run does beyond 1.0.0, set only by the starts of this build: a run started
    # before (its input without them) replays and goes on as it was, with no patch marker
    # (each workflow.patched upserts TemporalChangeVersion, a billed Action).
    hold_while_suspended: bool = False  # R23: an expiry waits while the partner is suspended
    tell_inviter: bool = False  # R24: the inviter hears how it ended (NOTIFY_INVITERS)

    @classmethod
    def of(cls, settings: Settings) -> InvitationTiming:
        """The timing the settings give every invitation this build starts."""
        return cls(
            ttl_seconds=settings.invitation_ttl,
            max_sends=settings.invitation_max_sends,
            resend_cooldown_seconds=settings.resend_cooldown,
            resend_daily_limit=settings.resend_daily_limit,
            hold_while_suspended=True,
            tell_inviter=settings.notify_inviters,
        )


class CarriedInvitation(BaseModel):
    """An invitation's state, handed to the next run of the workflow that runs it when
    its history grows long (continue-as-new): resent by hand every day, an invitation
    would otherwise grow its history without bound."""

    invitation_id: UUID
    sends: int
    round_sends: int
    deadline: datetime | None
    next_send_at: datetime | None
    expires_at: datetime | None
    last_send_at: datetime | None
    manual_sends: list[datetime]
    last_error: str | None


# Events after which a run hands its invitation to a new run (or sooner, when the server
# suggests it): replaying a history this long stays cheap.
HISTORY_LIMIT = 2_000


class InvitationWorkflowRef(BaseModel):
    """An invitation a transaction closed, and the workflow that runs it (to be told)."""

    invitation_id: UUID
    workflow_id: str


# --- PartnerOnboardingWorkflow ---------------------------------------------------------


class OnboardingInput(BaseModel):
    partner_id: UUID
    enterprise_id: str
    actor: str
    partner: NewPartner
    timing: InvitationTiming
    # A continued run: the partner is registered, its first admin's invitation goes on.
    carried: CarriedInvitation | None = None


class OnboardingPhase(StrEnum):
    REGISTERING = "registering"
    REFUSED = "refused"
    AWAITING_ADMIN = "awaiting_admin"
    ACTIVE = "active"
    ADMIN_NOT_ACCEPTED = "admin_not_accepted"
    # The first admin's invitation was superseded by an admin replacement, which carries on.
    RETARGETED = "retargeted"


class Registration(BaseModel):
    """The answer of the `registration` update: the partner is in the database."""

    partner_id: UUID
    invitation_id: UUID


class OnboardingState(BaseModel):
    phase: OnboardingPhase
    partner_id: UUID
    invitation_id: UUID | None = None
    invitation_state: InvitationState | None = None
    refused: ErrorCode | None = None


class OnboardingResult(BaseModel):
    phase: OnboardingPhase
    invitation_state: InvitationState | None = None
    refused: ErrorCode | None = None


# --- InvitationWorkflow ----------------------------------------------------------------


class NewInvitation(BaseModel):
    """An invitation whose row the workflow creates (members, admin replacement)."""

    partner_id: UUID
    invitee: Invitee
    role: Role
    purpose: InvitationPurpose
    invited_by: str
    locale: Locale | None = None


class TakeOver(BaseModel):
    """This run takes over a stored invitation whose workflow is gone: it revives an
    expired one (`revive`, a resend by hand) or adopts a pending one; any other state is
    refused with the code that names it."""

    actor: str
    revive: bool
    # R25: a pending invitation adopted goes on with the row's schedule, its reminders
    # included (reconcile after a restore); without, it ends when its last send would have.
    continue_schedule: bool = False


class InvitationInput(BaseModel):
    invitation_id: UUID
    partner_id: UUID
    enterprise_id: str
    purpose: InvitationPurpose
    invitee_domain: str
    timing: InvitationTiming
    # How the run finds its invitation: creates it, or takes it over. Neither: its row was
    # stored by another step (the partner's registration).
    create: NewInvitation | None = None
    take_over: TakeOver | None = None
    carried: CarriedInvitation | None = None  # a continued run
    history_limit: int = HISTORY_LIMIT
    # The workflow told the final state (an admin replacement's): it waits for it.
    report_to: str | None = None


def invitation_input(
    invitation_id: UUID,
    *,
    partner_id: UUID,
    enterprise_id: str,
    purpose: InvitationPurpose,
    invitee_email: str,
    timing: InvitationTiming,
    create: NewInvitation | None = None,
    take_over: TakeOver | None = None,
    carried: CarriedInvitation | None = None,
) -> InvitationInput:
    """The one way an invitation's run is described, wherever it runs."""
    return InvitationInput(
        invitation_id=invitation_id,
        partner_id=partner_id,
        enterprise_id=enterprise_id,
        purpose=purpose,
        invitee_domain=invitee_email.rpartition("@")[2],
        timing=timing,
        create=create,
        take_over=take_over,
        carried=carried,
    )


class InvitationStatus(BaseModel):
    """The `status` query: what an operator needs to know about one invitation."""

    invitation_id: UUID
    state: InvitationState
    sends: int
    max_sends: int
    next_send_at: datetime | None = None
    expires_at: datetime | None = None
    last_error: str | None = None


class InvitationResult(BaseModel):
    """The final state; None with `refused` when the invitation was never opened here."""

    state: InvitationState | None
    sends: int
    refused: ErrorCode | None = None


class ResendRequest(BaseModel):
    actor: str
    # An operator (the CLI) is not held by the cooldown, only by the daily limit: they
    # resend deliberately, say right after fixing the relay.
    operator: bool = False


class CancelRequest(BaseModel):
    actor: str


class ClosedElsewhere(BaseModel):
    """Signal: a transaction outside the workflow closed the invitation (superseded by a
    newer admin invitation, cancelled by the partner's deactivation). It carries no
    state: the workflow reads the stored one, so a forged signal changes nothing."""

    reason: str


class AcceptRequest(BaseModel):
    """The `accept` update: proof of the link (its token's SHA-256, never the token) and
    when it was clicked (expiry is judged by that, R7)."""

    token_hash: str
    clicked_at: datetime


class AcceptResult(BaseModel):
    state: InvitationState
    newly_accepted: bool


# --- AdminReplacementWorkflow ----------------------------------------------------------


class ReplacementInput(BaseModel):
    partner_id: UUID
    enterprise_id: str
    timing: InvitationTiming
    # A continued run: the invitation the last one waited for.
    current: UUID | None = None
    history_limit: int = HISTORY_LIMIT


class InvitationClosed(BaseModel):
    """Signal to the replacement workflow: its invitation reached a final state."""

    invitation_id: UUID
    state: InvitationState


class ReplaceAdminRequest(BaseModel):
    invitee: Invitee
    actor: str


class ReplacementStarted(BaseModel):
    invitation_id: UUID
    purpose: InvitationPurpose


class ReplacementResult(BaseModel):
    invitation_id: UUID | None
    state: InvitationState | None


# --- PartnerDeactivationWorkflow -------------------------------------------------------


class DeactivationInput(BaseModel):
    partner_id: UUID
    enterprise_id: str
    actor: str


class DeactivationResult(BaseModel):
    deactivated: bool


class PruneKind(StrEnum):
    """R17: every kind of stored record with a retention, in the order a run prunes them
    (an event before the attempts left after it, an invitation before its partner)."""

    EVENTS = "events"  # with their delivery attempts
    DELIVERIES = "deliveries"
    AUDIT = "audit"
    INVITATIONS = "invitations"  # closed: the row, its sends and its tokens
    MEMBERSHIPS = "memberships"  # ended
    DEACTIVATED_PARTNERS = "deactivated_partners"  # logo and personal data; the row stays
    IDEMPOTENCY_KEYS = "idempotency_keys"
    MAIL_QUOTA = "mail_quota"
    LINK_ATTEMPTS = "link_attempts"
    WEBHOOK_ENDPOINTS = "webhook_endpoints"  # deleted ones, once their attempts are gone
    CONSOLE = "console"  # console links and sessions, a day after they ended (R19)
    SUPPRESSIONS = "suppressions"  # mailboxes that complained (R24), SUPPRESSIONS_RETENTION after


class ReconcileInput(BaseModel):
    """A run of `partners reconcile` (R25): who asks (audited), and whether it only lists."""

    actor: str = "system"
    dry_run: bool = False
    # A workflow started this recently is left alone: its row may not be committed yet.
    settle_seconds: int = 600
    enterprise_id: str | None = None  # one enterprise's only (None: all)


class Repair(BaseModel):
    kind: str  # invitation_taken_over, webhook_started, workflow_told_closed, workflow_terminated
    id: str  # the invitation, endpoint or workflow it is about
    detail: str


class ReconcileResult(BaseModel):
    dry_run: bool
    repairs: list[Repair]


class RetentionInput(BaseModel):
    """A run of `RetentionWorkflow`; a continued one carries what it pruned so far."""

    pruned: dict[PruneKind, int] = {}
    finished: list[PruneKind] = []
    history_limit: int = HISTORY_LIMIT
    # How long one activity prunes one kind before the workflow hears how far it got.
    budget_seconds: float = 20.0


class RetentionResult(BaseModel):
    pruned: dict[PruneKind, int]
