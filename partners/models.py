"""Input and output models of the API, the workflows and the activities.

One input and one output model per workflow, activity, update and query. New fields
get defaults, so that histories written before them still decode.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from partners.messages import Locale
from partners.rules import (
    email_domain_is_registered,
    has_control_characters,
    normalize_domain,
    normalize_email,
)


class Role(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class PartnerStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
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


def _no_control_characters(value: object) -> object:
    if isinstance(value, str) and has_control_characters(value):
        raise ValueError("control characters (CR, LF, NUL, ...) are not allowed")
    return value


def _email(value: str) -> str:
    return normalize_email(value).address


# Control characters are refused before stripping: "Ada\n" is refused, not trimmed.
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    BeforeValidator(_no_control_characters),
]
PartnerName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    BeforeValidator(_no_control_characters),
]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Domain = Annotated[str, StringConstraints(max_length=253), AfterValidator(normalize_domain)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonIn(_Input):
    first_name: PersonName
    last_name: PersonName
    email: Email = Field(description="Normalised: lower case, domain in IDNA/punycode.")

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


class RegisterPartnerRequest(_Input):
    name: PartnerName
    enterprise_name: PartnerName | None = Field(
        default=None, description="How invitations name the enterprise; kept for later ones."
    )
    domains: list[Domain] = Field(min_length=1, max_length=20)
    admin: PersonIn
    locale: Locale | None = Field(
        default=None,
        description="Language of the enterprise's invitations (pt-BR or en); kept for later ones.",
    )

    def model_post_init(self, context: object, /) -> None:
        # Two spellings of one domain (`Acme.com`, `acme.com.`) are one domain.
        object.__setattr__(self, "domains", list(dict.fromkeys(self.domains)))

    def admin_domain_is_registered(self) -> bool:
        return email_domain_is_registered(normalize_email(self.admin.email), self.domains)


class InviteMemberRequest(PersonIn):
    locale: Locale | None = Field(
        default=None, description="Language of this invitation; the enterprise's when absent."
    )


class GrantKind(StrEnum):
    PRODUCT = "product"
    API = "api"


GrantRef = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$"),
]


class GrantRequest(_Input):
    kind: GrantKind
    ref: GrantRef = Field(description="The product's or API's id in the Service Catalog.")
    name: PartnerName


class NewInvitation(BaseModel):
    """An invitation the InvitationWorkflow creates itself (members, admin replacement)."""

    partner_id: UUID
    person: PersonIn
    role: Role
    purpose: InvitationPurpose
    invited_by: str
    locale: Locale | None = None


# --- PartnerOnboardingWorkflow ---------------------------------------------------------


class OnboardingInput(BaseModel):
    partner_id: UUID
    enterprise_id: str
    actor: str
    partner: RegisterPartnerRequest
    invitation_ttl_seconds: int
    invitation_max_sends: int


class OnboardingPhase(StrEnum):
    REGISTERING = "registering"
    REFUSED = "refused"
    AWAITING_ADMIN = "awaiting_admin"
    ACTIVE = "active"
    ADMIN_NOT_ACCEPTED = "admin_not_accepted"
    # The first admin's invitation was superseded by an admin replacement, which carries on.
    RETARGETED = "retargeted"


class Refusal(BaseModel):
    code: str
    detail: str
    extra: dict[str, object] = {}


class Registration(BaseModel):
    """The answer of the `registration` update: the partner is in the database."""

    partner_id: UUID
    invitation_id: UUID


class OnboardingState(BaseModel):
    phase: OnboardingPhase
    partner_id: UUID
    invitation_id: UUID | None = None
    invitation_state: InvitationState | None = None
    refusal: Refusal | None = None


class OnboardingResult(BaseModel):
    phase: OnboardingPhase
    invitation_state: InvitationState | None = None
    refusal: Refusal | None = None


class RegisterPartnerInput(BaseModel):
    partner_id: UUID
    invitation_id: UUID
    enterprise_id: str
    actor: str
    partner: RegisterPartnerRequest
    invitation_max_sends: int
    # The workflow that runs the first admin's invitation (its partner's onboarding);
    # None in executions that ran it in its own `invitation-{id}` (before 2026-11-24).
    invitation_workflow_id: str | None = None


# --- InvitationWorkflow ----------------------------------------------------------------


class InvitationInput(BaseModel):
    invitation_id: UUID
    partner_id: UUID
    enterprise_id: str
    purpose: InvitationPurpose
    invitee_domain: str
    ttl_seconds: int
    max_sends: int
    # Set when this run must create the invitation's row first (checks included).
    create: NewInvitation | None = None
    # Set when this run revives an expired invitation (a resend by hand).
    reopened_by: str | None = None


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
    """The final state; None with `refusal` when the invitation was never created."""

    state: InvitationState | None
    sends: int
    refusal: Refusal | None = None


class ResendRequest(BaseModel):
    actor: str


class CancelRequest(BaseModel):
    actor: str


class CreateInvitationInput(BaseModel):
    invitation_id: UUID
    invitation: NewInvitation
    max_sends: int


class CreateInvitationOutput(BaseModel):
    enterprise_id: str
    # Decided under the partner's lock: an admin invitation of a pending partner is its
    # first admin's (it activates the partner); of an active one, a replacement.
    purpose: InvitationPurpose | None = None
    superseded: list[UUID] = []
    # The workflow running each superseded invitation; absent (older histories): its own.
    workflow_ids: dict[UUID, str] = {}


class WithdrawRequest(BaseModel):
    """Signal: the invitation was closed by a transaction elsewhere (superseded, cancelled)."""

    state: InvitationState
    reason: str


# --- AdminReplacementWorkflow ----------------------------------------------------------


class ReplacementInput(BaseModel):
    partner_id: UUID
    enterprise_id: str
    ttl_seconds: int
    max_sends: int


class ReplaceAdminRequest(BaseModel):
    person: PersonIn
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


class DeactivatePartnerInput(BaseModel):
    partner_id: UUID
    actor: str


class DeactivatePartnerOutput(BaseModel):
    newly_deactivated: bool
    cancelled_invitations: list[UUID] = []
    # The workflow running each cancelled invitation; absent (older histories): its own.
    workflow_ids: dict[UUID, str] = {}


class DeactivationResult(BaseModel):
    deactivated: bool
    refusal: Refusal | None = None


class ReopenInvitationInput(BaseModel):
    invitation_id: UUID
    actor: str


class ReopenInvitationOutput(BaseModel):
    state: InvitationState
    sends: int


class AcceptRequest(BaseModel):
    """The `accept` update; the link's token never travels, only which send it was from."""

    send_number: int | None = None


class AcceptResult(BaseModel):
    state: InvitationState
    newly_accepted: bool


class SendInvitationInput(BaseModel):
    invitation_id: UUID
    send_number: int
    next_send_at: datetime | None
    expires_at: datetime
    requested_by: str | None = None  # who resent it by hand; None for the automatic sends


class SendOutcome(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    CLOSED = "closed"


class SendInvitationOutput(BaseModel):
    outcome: SendOutcome
    state: InvitationState = InvitationState.PENDING


class SendFailure(BaseModel):
    """A temporary delivery failure, kept for the partner view while the mail is retried."""

    invitation_id: UUID
    error: str


class AcceptInvitationInput(BaseModel):
    invitation_id: UUID
    send_number: int | None = None


class AcceptInvitationOutput(BaseModel):
    state: InvitationState
    partner_status: PartnerStatus


class CloseInvitationInput(BaseModel):
    """Records a decision of the workflow: expired, undeliverable, cancelled, superseded."""

    invitation_id: UUID
    state: InvitationState
    reason: str | None = None
    actor: str = "system"


class CloseInvitationOutput(BaseModel):
    """The state the invitation has: the one asked for, or the one it was already closed in."""

    state: InvitationState
