"""The portal backend's API under /v1: HTTP in and out; the rules live in the services
(`starter/service/`)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response

from partners.errors import ErrorCode, Refused
from partners.ids import ENTERPRISE_ID_PATTERN
from partners.models import GrantKind, InvitationState
from partners.requests import (
    GRANT_REF_PATTERN,
    AcceptRequestBody,
    BatchInviteRequest,
    ConsoleSessionRequest,
    GrantRequest,
    InviteMemberRequest,
    PersonIn,
    RegisterPartnerRequest,
    SuspendRequest,
)
from partners.rules import LOGO_MAX_BYTES
from partners.views import (
    Access,
    AccessCheck,
    AuditPage,
    BatchResult,
    ConsoleLink,
    ConsoleSessionsEnded,
    GrantView,
    InvitationDetail,
    InvitationList,
    LogoView,
    MemberList,
    MembershipView,
    PartnerList,
    PartnerView,
)
from starter.auth import CurrentActor
from starter.deps import ConsoleDep, InvitationsDep, MembersDep, PartnersDep
from starter.pages import logo_response
from starter.problems import problem_responses

# Every /v1 call may answer these; the route decorators add their own.
router = APIRouter(
    prefix="/v1", tags=["portal"], responses=problem_responses(401, 403, 404, 405, 409, 413, 422, 429, 503)
)

EnterpriseId = Annotated[
    str,
    Path(pattern=ENTERPRISE_ID_PATTERN, description="The enterprise account's id in the portal."),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Retrying a registration with the same key within 24 hours answers with the same partner;"
            " the same key with another body is 422 `idempotency_key_reused`."
        ),
    ),
]
LOGO_TYPES = ("image/png", "image/jpeg", "image/webp")


StateFilter = Annotated[InvitationState | None, Query(description="Only invitations in this state.")]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page (the next, older one).")
]


@router.post("/enterprises/{enterprise_id}/partners", status_code=201, response_model=PartnerView)
async def register_partner(
    enterprise_id: EnterpriseId,
    body: RegisterPartnerRequest,
    actor: CurrentActor,
    partners: PartnersDep,
    idempotency_key: IdempotencyKey = None,
) -> PartnerView:
    """Registers a partner and invites its first admin (R2, R3, R4, R6).

    Answers once the partner is stored, `pending` until the admin accepts.
    """
    return await partners.register(actor, enterprise_id, body, idempotency_key)


@router.get("/enterprises/{enterprise_id}/partners", response_model=PartnerList)
async def list_partners(enterprise_id: EnterpriseId, actor: CurrentActor, partners: PartnersDep) -> PartnerList:
    return PartnerList(partners=await partners.of_enterprise(actor, enterprise_id))


@router.get("/partners/{partner_id}", response_model=PartnerView)
async def get_partner(partner_id: UUID, actor: CurrentActor, partners: PartnersDep) -> PartnerView:
    """The partner, for an account holder of its enterprise and its active members (R12).

    Its Admin and the account holder also see its invitations; its Members do not
    (`invitations` is null). Anyone else gets 404, as for a partner that does not exist."""
    return await partners.get(actor, partner_id)


@router.get("/partners/{partner_id}/members", response_model=MemberList)
async def list_members(partner_id: UUID, actor: CurrentActor, members: MembersDep) -> MemberList:
    """The active members, the Admin first (R12): for the account holder and the members."""
    return await members.of_partner(actor, partner_id)


@router.delete("/partners/{partner_id}/members/{email}", response_model=MembershipView)
async def remove_member(
    partner_id: UUID, email: Annotated[str, Path(max_length=320)], actor: CurrentActor, members: MembersDep
) -> MembershipView:
    """Ends a Member's membership (R13), by the account holder or the partner's Admin.

    Access ends at once; every pending invitation of that person to the partner (an admin
    replacement included) is cancelled in the same transaction. The Admin is replaced,
    never removed (409 `cannot_remove_admin`). The ended membership is kept and returned."""
    return await members.remove(actor, partner_id, email)


@router.post("/partners/{partner_id}/leave", response_model=MembershipView)
async def leave_partner(partner_id: UUID, actor: CurrentActor, members: MembersDep) -> MembershipView:
    """The acting member leaves the partner (R13), as a removal; the Admin cannot."""
    return await members.leave(actor, partner_id)


@router.get("/partners/{partner_id}/invitations", response_model=InvitationList)
async def partner_invitations(
    partner_id: UUID,
    actor: CurrentActor,
    invitations: InvitationsDep,
    state: StateFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InvitationList:
    """The partner's invitations, newest first, a page at a time (account holder, Admin)."""
    return await invitations.of_partner(actor, partner_id, state=state, limit=limit, cursor=cursor)


@router.get("/enterprises/{enterprise_id}/invitations", response_model=InvitationList)
async def enterprise_invitations(
    enterprise_id: EnterpriseId,
    actor: CurrentActor,
    invitations: InvitationsDep,
    state: StateFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InvitationList:
    """Every invitation of the enterprise's partners, newest first (account holder)."""
    return await invitations.of_enterprise(actor, enterprise_id, state=state, limit=limit, cursor=cursor)


@router.post("/partners/{partner_id}/invitations/batch", response_model=BatchResult)
async def invite_batch(
    partner_id: UUID, body: BatchInviteRequest, actor: CurrentActor, invitations: InvitationsDep
) -> BatchResult:
    """The partner's Admin invites up to 50 people at once.

    One result per person, in order: `status` 201 with the invitation, or the problem's
    `status`, `code` and `detail` that refused that person. A refused person does not stop
    the others."""
    return await invitations.invite_batch(actor, partner_id, body.people)


@router.get("/access", response_model=Access)
async def access(actor: CurrentActor, members: MembersDep) -> Access:
    """What the acting person may use (R14): their active memberships of active partners,
    with the products and APIs granted to each. Nothing else grants access."""
    return await members.access(actor)


@router.get("/access/check", response_model=AccessCheck)
async def access_check(
    actor: CurrentActor,
    members: MembersDep,
    enterprise_id: Annotated[
        str,
        Query(
            pattern=ENTERPRISE_ID_PATTERN,
            description="The enterprise that owns the catalog the product or API belongs to.",
        ),
    ],
    kind: Annotated[GrantKind, Query(description="`product` or `api`.")],
    ref: Annotated[
        str, Query(min_length=1, max_length=200, pattern=GRANT_REF_PATTERN, description="The Service Catalog id.")
    ],
) -> AccessCheck:
    """Whether the acting person may use this product or API of `enterprise_id`'s catalog
    (R14, R21), and through which partner and role. Only that enterprise's partners
    answer: a ref is text each enterprise chooses, so the same ref granted by another
    enterprise opens nothing here."""
    return await members.check(actor, enterprise_id, kind, ref)


@router.post("/invitations/accept", response_model=InvitationDetail)
async def accept_signed_in(
    body: AcceptRequestBody, actor: CurrentActor, invitations: InvitationsDep
) -> InvitationDetail:
    """Acceptance by the signed-in invitee (`X-Actor-Email`, role `partner_user`).

    For portals whose mails link to their own page (`ACCEPT_URL`). Only the invitee
    accepts: anyone else gets 403 `invitee_mismatch` and nothing changes; every token
    that is not a live link gets the same 404 `invalid_link`."""
    return await invitations.accept(actor, body.token)


@router.post("/partners/{partner_id}/invitations", status_code=201, response_model=InvitationDetail)
async def invite_member(
    partner_id: UUID, body: InviteMemberRequest, actor: CurrentActor, invitations: InvitationsDep
) -> InvitationDetail:
    """The partner's Admin invites a person of the same company as Member (R5, R6, R7)."""
    return await invitations.invite(actor, partner_id, body)


# Only a UUID matches: /invitations/accept is another resource (GET there is 405, not 422).
@router.get("/invitations/{invitation_id:uuid}", response_model=InvitationDetail)
async def get_invitation(invitation_id: UUID, actor: CurrentActor, invitations: InvitationsDep) -> InvitationDetail:
    """The invitation as stored, and its workflow's live status while it has one."""
    return await invitations.get(actor, invitation_id)


@router.post("/invitations/{invitation_id}/resend", response_model=InvitationDetail)
async def resend_invitation(invitation_id: UUID, actor: CurrentActor, invitations: InvitationsDep) -> InvitationDetail:
    """Sends a new mail now and restarts the TTL; revives an expired invitation (R7)."""
    return await invitations.resend(actor, invitation_id)


@router.post("/invitations/{invitation_id}/cancel", response_model=InvitationDetail)
async def cancel_invitation(invitation_id: UUID, actor: CurrentActor, invitations: InvitationsDep) -> InvitationDetail:
    """Cancels a pending invitation: its links stop working at once (R7)."""
    return await invitations.cancel(actor, invitation_id)


@router.post("/partners/{partner_id}/admin", status_code=202, response_model=InvitationDetail)
async def replace_admin(
    partner_id: UUID, body: PersonIn, actor: CurrentActor, partners: PartnersDep
) -> InvitationDetail:
    """Invites a new Admin (R8); the current one stays Admin until the new one accepts.

    A newer replacement supersedes a pending one. For a pending partner, the first
    admin's invitation is re-targeted to this person."""
    return await partners.replace_admin(actor, partner_id, body)


@router.post("/partners/{partner_id}/grants", status_code=201, response_model=GrantView)
async def grant(partner_id: UUID, body: GrantRequest, actor: CurrentActor, partners: PartnersDep) -> GrantView:
    """Grants a product or an API to the partner (R9)."""
    return await partners.grant(actor, partner_id, body)


@router.delete("/partners/{partner_id}/grants/{grant_id}", response_model=GrantView)
async def revoke(partner_id: UUID, grant_id: UUID, actor: CurrentActor, partners: PartnersDep) -> GrantView:
    """Revokes a grant; it is kept, with who revoked it and when (R9)."""
    return await partners.revoke(actor, partner_id, grant_id)


@router.post("/partners/{partner_id}/deactivate", response_model=PartnerView)
async def deactivate(partner_id: UUID, actor: CurrentActor, partners: PartnersDep) -> PartnerView:
    """Deactivates the partner, irreversibly (R10): refused while an API is granted."""
    return await partners.deactivate(actor, partner_id)


@router.post("/partners/{partner_id}/suspend", response_model=PartnerView)
async def suspend(
    partner_id: UUID, actor: CurrentActor, partners: PartnersDep, body: SuspendRequest | None = None
) -> PartnerView:
    """Suspends the partner now (R23): nothing grants access through it, its invitation
    links accept no one and its mails wait; members, grants and invitations stay. Suspending
    a suspended partner changes nothing."""
    return await partners.suspend(actor, partner_id, body or SuspendRequest())


@router.post("/partners/{partner_id}/resume", response_model=PartnerView)
async def resume(partner_id: UUID, actor: CurrentActor, partners: PartnersDep) -> PartnerView:
    """Resumes a suspended partner exactly as it was (R23); its pending invitations get
    back the time they were suspended. 409 `partner_not_suspended` otherwise."""
    return await partners.resume(actor, partner_id)


@router.get("/partners/{partner_id}/audit", response_model=AuditPage)
async def audit(
    partner_id: UUID,
    actor: CurrentActor,
    partners: PartnersDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
) -> AuditPage:
    """Every change of the partner, newest first (R11)."""
    return await partners.audit(actor, partner_id, limit=limit, before=before)


@router.put(
    "/partners/{partner_id}/logo",
    response_model=LogoView,
    responses=problem_responses(415),
    openapi_extra={
        "requestBody": {
            "required": True,
            # application/octet-stream too, for generated clients: the type is judged by content.
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in (*LOGO_TYPES, "application/octet-stream")
            },
        }
    },
)
async def put_logo(request: Request, partner_id: UUID, actor: CurrentActor, partners: PartnersDep) -> LogoView:
    """The partner's logo: a PNG, JPEG or WebP image of at most 512 KiB, judged by content."""
    return await partners.set_logo(actor, partner_id, await _read_limited(request, LOGO_MAX_BYTES))


@router.get(
    "/partners/{partner_id}/logo",
    response_class=Response,
    responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in LOGO_TYPES}}},
)
async def get_logo(request: Request, partner_id: UUID, actor: CurrentActor, partners: PartnersDep) -> Response:
    await partners.get(actor, partner_id)
    return await logo_response(request.app.state.services, partner_id)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(ErrorCode.LOGO_TOO_LARGE, f"The logo may be {limit // 1024} KiB at most.")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise Refused(ErrorCode.LOGO_TOO_LARGE, f"The logo may be {limit // 1024} KiB at most.")
    return bytes(data)


@router.post("/console/sessions", status_code=201, response_model=ConsoleLink)
async def console_session(
    actor: CurrentActor, console: ConsoleDep, body: ConsoleSessionRequest | None = None
) -> ConsoleLink:
    """A single-use link to the Partners console for the person signed in to the portal
    (the `X-Actor-*` headers), valid `CONSOLE_LINK_TTL` (300 s). Redirect the person there,
    or open it in an iframe (`CONSOLE_FRAME_ANCESTORS`); it starts their console session.
    `return_to`: where the console's way back goes (PORTAL_URL by default)."""
    return await console.mint(actor, body or ConsoleSessionRequest())


@router.delete("/console/sessions", response_model=ConsoleSessionsEnded)
async def end_console_sessions(actor: CurrentActor, console: ConsoleDep) -> ConsoleSessionsEnded:
    """Ends every console session of the person the actor headers name, and voids their
    unused console links. The portal calls it when the person signs out of it or loses
    a role: the console acts with the rights of the moment a link was minted (R19), so
    a session must not outlive them. `ended`: how many sessions ended (0 is no error)."""
    return await console.end_sessions(actor)
