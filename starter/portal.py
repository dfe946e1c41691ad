"""The portal backend's API under /v1: HTTP in and out; the rules live in Commands."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from partners.errors import ErrorCode, Refused
from partners.requests import GrantRequest, InviteMemberRequest, PersonIn, RegisterPartnerRequest
from partners.rules import LOGO_MAX_BYTES
from partners.views import AuditPage, GrantView, InvitationDetail, LogoView, PartnerList, PartnerView
from starter.auth import CurrentActor
from starter.commands import Commands
from starter.pages import logo_response
from starter.problems import problem_responses

# Every /v1 call may answer these; the route decorators add their own.
router = APIRouter(prefix="/v1", tags=["portal"], responses=problem_responses(401, 403, 404, 405, 409, 422, 503))

EnterpriseId = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", description="The enterprise account's id in the portal."),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying a registration with the same key answers with the same partner.",
    ),
]
LOGO_TYPES = ("image/png", "image/jpeg", "image/webp")


def _commands(request: Request) -> Commands:
    return Commands(request.app.state.services)


Do = Annotated[Commands, Depends(_commands)]


@router.post("/enterprises/{enterprise_id}/partners", status_code=201, response_model=PartnerView)
async def register_partner(
    enterprise_id: EnterpriseId,
    body: RegisterPartnerRequest,
    actor: CurrentActor,
    do: Do,
    idempotency_key: IdempotencyKey = None,
) -> PartnerView:
    """Registers a partner and invites its first admin (R2, R3, R4, R6).

    Answers once the partner is stored, `pending` until the admin accepts.
    """
    return await do.register_partner(actor, enterprise_id, body, idempotency_key)


@router.get("/enterprises/{enterprise_id}/partners", response_model=PartnerList)
async def list_partners(enterprise_id: EnterpriseId, actor: CurrentActor, do: Do) -> PartnerList:
    return PartnerList(partners=await do.list_partners(actor, enterprise_id))


@router.get("/partners/{partner_id}", response_model=PartnerView)
async def get_partner(partner_id: UUID, actor: CurrentActor, do: Do) -> PartnerView:
    return await do.get_partner(actor, partner_id)


@router.post("/partners/{partner_id}/invitations", status_code=201, response_model=InvitationDetail)
async def invite_member(partner_id: UUID, body: InviteMemberRequest, actor: CurrentActor, do: Do) -> InvitationDetail:
    """The partner's Admin invites a person of the same company as Member (R5, R6, R7)."""
    return await do.invite_member(actor, partner_id, body)


@router.get("/invitations/{invitation_id}", response_model=InvitationDetail)
async def get_invitation(invitation_id: UUID, actor: CurrentActor, do: Do) -> InvitationDetail:
    """The invitation as stored, and its workflow's live status while it has one."""
    return await do.get_invitation(actor, invitation_id)


@router.post("/invitations/{invitation_id}/resend", response_model=InvitationDetail)
async def resend_invitation(invitation_id: UUID, actor: CurrentActor, do: Do) -> InvitationDetail:
    """Sends a new mail now and restarts the TTL; revives an expired invitation (R7)."""
    return await do.resend(actor, invitation_id)


@router.post("/invitations/{invitation_id}/cancel", response_model=InvitationDetail)
async def cancel_invitation(invitation_id: UUID, actor: CurrentActor, do: Do) -> InvitationDetail:
    """Cancels a pending invitation: its links stop working at once (R7)."""
    return await do.cancel(actor, invitation_id)


@router.post("/partners/{partner_id}/admin", status_code=202, response_model=InvitationDetail)
async def replace_admin(partner_id: UUID, body: PersonIn, actor: CurrentActor, do: Do) -> InvitationDetail:
    """Invites a new Admin (R8); the current one stays Admin until the new one accepts.

    A newer replacement supersedes a pending one. For a pending partner, the first
    admin's invitation is re-targeted to this person."""
    return await do.replace_admin(actor, partner_id, body)


@router.post("/partners/{partner_id}/grants", status_code=201, response_model=GrantView)
async def grant(partner_id: UUID, body: GrantRequest, actor: CurrentActor, do: Do) -> GrantView:
    """Grants a product or an API to the partner (R9)."""
    return await do.grant(actor, partner_id, body)


@router.delete("/partners/{partner_id}/grants/{grant_id}", response_model=GrantView)
async def revoke(partner_id: UUID, grant_id: UUID, actor: CurrentActor, do: Do) -> GrantView:
    """Revokes a grant; it is kept, with who revoked it and when (R9)."""
    return await do.revoke(actor, partner_id, grant_id)


@router.post("/partners/{partner_id}/deactivate", response_model=PartnerView)
async def deactivate(partner_id: UUID, actor: CurrentActor, do: Do) -> PartnerView:
    """Deactivates the partner, irreversibly (R10): refused while an API is granted."""
    return await do.deactivate(actor, partner_id)


@router.get("/partners/{partner_id}/audit", response_model=AuditPage)
async def audit(
    partner_id: UUID,
    actor: CurrentActor,
    do: Do,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
) -> AuditPage:
    """Every change of the partner, newest first (R11)."""
    return await do.audit(actor, partner_id, limit=limit, before=before)


@router.put(
    "/partners/{partner_id}/logo",
    response_model=LogoView,
    responses=problem_responses(413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in LOGO_TYPES},
        }
    },
)
async def put_logo(request: Request, partner_id: UUID, actor: CurrentActor, do: Do) -> LogoView:
    """The partner's logo: a PNG, JPEG or WebP image of at most 512 KiB, judged by content."""
    return await do.set_logo(actor, partner_id, await _read_limited(request, LOGO_MAX_BYTES))


@router.get(
    "/partners/{partner_id}/logo",
    response_class=Response,
    responses={200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in LOGO_TYPES}}},
)
async def get_logo(request: Request, partner_id: UUID, actor: CurrentActor, do: Do) -> Response:
    await do.get_partner(actor, partner_id)
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
