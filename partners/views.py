"""What the API answers: read models of the partner, built from PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from partners.models import GrantKind, InvitationPurpose, InvitationState, InvitationStatus, PartnerStatus, Role
from partners.texts import Locale


class PersonView(BaseModel):
    first_name: str
    last_name: str
    email: str


class AdminView(PersonView):
    status: str  # "invited" until the first admin accepts, then "active"


class MemberView(PersonView):
    role: Role
    joined_at: datetime


MEMBERSHIP_COLUMNS = "partner_id, first_name, last_name, email, role, joined_at, ended_at, ended_by, end_reason"


class MembershipView(MemberView):
    """A membership, active or ended (R13): ended ones are kept, with who and when."""

    partner_id: UUID
    ended_at: datetime | None
    ended_by: str | None
    end_reason: Literal["removed", "left", "partner_deactivated", "erased"] | None


class MemberList(BaseModel):
    members: list[MemberView]


class InvitationView(PersonView):
    id: UUID
    partner_id: UUID
    role: Role
    purpose: InvitationPurpose
    state: InvitationState
    sends: int
    max_sends: int
    next_send_at: datetime | None
    expires_at: datetime | None
    last_error: str | None
    locale: Locale
    invited_by: str
    created_at: datetime


class GrantView(BaseModel):
    id: UUID
    kind: GrantKind
    ref: str
    name: str
    granted_by: str
    granted_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None


GRANT_COLUMNS = ", ".join(GrantView.model_fields)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    details: dict[str, object]
    actor_name: str | None = Field(default=None, description="The actor's name, where the partner knows them.")
    about: str | None = Field(default=None, description="The person the entry is about (an invitee, a member).")
    about_name: str | None = Field(default=None, description="Their name, where the partner knows them.")


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_before: int | None = None  # pass as `before` for the next (older) page


class PartnerSummary(BaseModel):
    id: UUID
    enterprise_id: str
    name: str
    status: PartnerStatus
    domains: list[str]
    created_at: datetime
    suspended_at: datetime | None = Field(default=None, description="Set while the partner is suspended (R23).")
    suspension_reason: str | None = Field(default=None, description="The account holder's reason, if one was given.")


# Who the actor is to a partner (R1, R12): the one type the API and its answers share.
Viewer = Literal["account_holder", "operator", "admin", "member"]


class PartnerView(PartnerSummary):
    """R12: the account holder and the partner's Admin see its invitations; its Members
    see the partner without them (`null`). Bounded whatever the partner's past: the
    pending invitations only, newest first, at most 50, with a count per state; every
    invitation is in the paged list (`GET /v1/partners/{id}/invitations`)."""

    viewer_role: Viewer = "account_holder"
    admin: AdminView | None
    admin_invitation: InvitationView | None  # the latest admin invitation, in any state
    admin_replacement: InvitationView | None  # the latest, pending or not
    members: list[MemberView]
    invitations: list[InvitationView] | None = Field(description="The pending ones, newest first, at most 50.")
    invitation_counts: dict[InvitationState, int] | None = Field(
        description="How many invitations the partner had, per state (absent states: none)."
    )
    grants: list[GrantView]  # the active ones
    has_logo: bool
    activated_at: datetime | None
    deactivated_at: datetime | None


class PartnerList(BaseModel):
    partners: list[PartnerSummary]


class InvitationLinkView(BaseModel):
    """What the public invitation page shows; found by the link's token hash."""

    invitation_id: UUID
    workflow_id: str  # the workflow that runs it: where the acceptance goes
    state: InvitationState
    role: Role
    first_name: str
    email: str  # the invitee's: signed-in acceptance is theirs only
    enterprise_id: str
    enterprise_name: str
    partner_name: str
    partner_id: UUID
    partner_status: PartnerStatus
    send_number: int
    locale: Locale
    has_logo: bool


class InvitationDetail(InvitationView):
    """One invitation: the read model, which its workflow keeps current. `live`, the
    workflow's own status, comes with the answers of resend and cancel (their update's)
    and the operator CLI's `invitations show` (a query); a plain read asks no workflow,
    since the server bills every query."""

    enterprise_id: str
    partner_status: PartnerStatus
    live: InvitationStatus | None = None


class LogoView(BaseModel):
    content_type: str
    size: int
    url: str


class InvitationList(BaseModel):
    invitations: list[InvitationView]
    next_cursor: str | None = None  # pass as `cursor` for the next (older) page


class BatchRowResult(BaseModel):
    """One person of a batch: the invitation created, or the problem that refused them."""

    email: str
    status: int
    invitation: InvitationDetail | None = None
    code: str | None = None
    detail: str | None = None


class BatchResult(BaseModel):
    results: list[BatchRowResult]


class GrantedRef(BaseModel):
    ref: str
    name: str


class Membership(BaseModel):
    partner_id: UUID
    partner_name: str
    enterprise_id: str
    role: Role
    # The console's: a suspended partner's membership, granting nothing (R23). Never in
    # an answer of the API, whose /v1/access lists active partners only.
    partner_status: PartnerStatus = Field(default=PartnerStatus.ACTIVE, exclude=True)
    products: list[GrantedRef]
    apis: list[GrantedRef]


class Access(BaseModel):
    """R14: what the person may use: their active memberships of active partners."""

    email: str
    memberships: list[Membership]


class AccessCheck(BaseModel):
    allowed: bool
    partner_id: UUID | None = None
    role: Role | None = None


class EventView(BaseModel):
    """R15's envelope: the same in the feed and in every webhook."""

    id: str
    type: str
    created_at: datetime
    enterprise_id: str
    partner_id: UUID | None
    data: dict[str, object]


class EventPage(BaseModel):
    events: list[EventView]
    next_cursor: str  # pass as `after` next time: the feed goes on from there, even when empty


class WebhookView(BaseModel):
    id: UUID
    enterprise_id: str | None
    url: str
    events: list[str]  # ["*"]: every type
    status: Literal["enabled", "disabled", "deleted"]
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None


class WebhookCreated(WebhookView):
    secret: str  # whsec_...: shown in this answer only


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class DeliveryView(BaseModel):
    id: int
    event_id: str
    event_type: str
    attempt: int
    status: Literal["delivered", "retrying", "failed"]
    http_status: int | None
    duration_ms: int
    error: str | None
    at: datetime


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]
    next_before: int | None = None


class RetryAccepted(BaseModel):
    delivery_id: int
    status: str = "queued"


class ConsoleLink(BaseModel):
    """A single-use link that opens the console for the person it was minted for."""

    url: str
    expires_at: datetime


class ConsoleSessionsEnded(BaseModel):
    """DELETE /v1/console/sessions: how many console sessions of the person ended."""

    ended: int


class PartnerSlots(BaseModel):
    """R2: partners counted against the enterprise's limit (pending and active ones)."""

    used: int
    limit: int
