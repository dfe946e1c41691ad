"""The portal backend's API under /v1."""

from __future__ import annotations

import uuid
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response
from temporalio.client import WithStartWorkflowOperation, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from partners import search
from partners.errors import ErrorCode, closed_invitation
from partners.ids import (
    deactivation_workflow_id,
    invitation_workflow_id,
    onboarding_workflow_id,
    replacement_workflow_id,
)
from partners.models import (
    CancelRequest,
    DeactivationInput,
    GrantRequest,
    InvitationInput,
    InvitationPurpose,
    InvitationState,
    InviteMemberRequest,
    NewInvitation,
    OnboardingInput,
    PartnerStatus,
    PersonIn,
    RegisterPartnerRequest,
    ReplaceAdminRequest,
    ReplacementInput,
    ResendRequest,
    Role,
)
from partners.rules import LOGO_MAX_BYTES, sniff_logo
from partners.views import AuditPage, GrantView, InvitationDetail, LogoView, PartnerList, PartnerView
from starter.auth import Actor, ActorRole, CurrentActor
from starter.pages import logo_response
from starter.problems import ProblemError
from starter.services import Services
from workflows.deactivation import PartnerDeactivationWorkflow
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.replacement import AdminReplacementWorkflow

router = APIRouter(prefix="/v1", tags=["portal"])

EnterpriseId = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$",
        description="The enterprise account's id in the portal.",
    ),
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

# Partner ids derived from an Idempotency-Key live in their own namespace.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("8f0b6c1e-3a55-4d6f-9a51-6e1d0b7c2a90")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post("/enterprises/{enterprise_id}/partners", status_code=201, response_model=PartnerView)
async def register_partner(
    request: Request,
    enterprise_id: EnterpriseId,
    body: RegisterPartnerRequest,
    actor: CurrentActor,
    idempotency_key: IdempotencyKey = None,
) -> PartnerView:
    """Registers a partner and invites its first admin (R2, R3, R4, R6).

    Answers once the partner is stored, `pending` until the admin accepts.
    """
    actor.require_account_holder_of(enterprise_id)
    if not body.admin_domain_is_registered():
        raise ProblemError(
            ErrorCode.DOMAIN_NOT_REGISTERED,
            "The admin's e-mail domain is not one of the partner's domains.",
            domains=body.domains,
        )
    services = _services(request)
    settings = services.settings
    partner_id = (
        uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{enterprise_id}\n{idempotency_key}") if idempotency_key else uuid.uuid4()
    )
    start = WithStartWorkflowOperation(
        PartnerOnboardingWorkflow.run,
        OnboardingInput(
            partner_id=partner_id,
            enterprise_id=enterprise_id,
            actor=actor.email,
            partner=body,
            invitation_ttl_seconds=settings.invitation_ttl,
            invitation_max_sends=settings.invitation_max_sends,
        ),
        id=onboarding_workflow_id(partner_id),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search.ENTERPRISE_ID, enterprise_id),
                SearchAttributePair(search.PARTNER_ID, str(partner_id)),
            ]
        ),
        static_summary=f"Onboarding of partner {body.name}",
    )
    try:
        registration = await services.client.execute_update_with_start_workflow(
            PartnerOnboardingWorkflow.registration, start_workflow_operation=start
        )
    except WorkflowUpdateFailedError as err:
        raise (_refusal_problem(err) or err) from None
    view = await services.store.get_partner(registration.partner_id)
    assert view is not None, "the registration update answers after the partner is stored"
    return view


@router.get("/enterprises/{enterprise_id}/partners", response_model=PartnerList)
async def list_partners(request: Request, enterprise_id: EnterpriseId, actor: CurrentActor) -> PartnerList:
    actor.require_account_holder_of(enterprise_id)
    return PartnerList(partners=await _services(request).store.list_partners(enterprise_id))


@router.get("/partners/{partner_id}", response_model=PartnerView)
async def get_partner(request: Request, partner_id: UUID, actor: CurrentActor) -> PartnerView:
    view = await _services(request).store.get_partner(partner_id)
    if view is None:
        raise ProblemError(ErrorCode.NOT_FOUND, "No such partner.")
    actor.require_account_holder_of(view.enterprise_id)
    return view


# --- invitations ---------------------------------------------------------------------------


def _refusal_problem(err: WorkflowUpdateFailedError) -> ProblemError | None:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in set(ErrorCode):
        extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return ProblemError(ErrorCode(str(cause.type)), cause.message, **extra)
    return None


def _invitation_attributes(enterprise_id: str, partner_id: UUID, domain: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.ENTERPRISE_ID, enterprise_id),
            SearchAttributePair(search.PARTNER_ID, str(partner_id)),
            SearchAttributePair(search.INVITEE_DOMAIN, domain),
            SearchAttributePair(search.INVITATION_STATE, InvitationState.PENDING.value),
        ]
    )


async def _authorized_invitation(services: Services, actor: Actor, invitation_id: UUID) -> InvitationDetail:
    """The account holder of the partner's enterprise; for member invitations also its Admin."""
    detail = await services.store.get_invitation(invitation_id)
    if detail is None:
        raise ProblemError(ErrorCode.NOT_FOUND, "No such invitation.")
    if not (
        actor.role is ActorRole.PARTNER_USER
        and detail.purpose is InvitationPurpose.MEMBER
        and await services.store.is_active_admin(detail.partner_id, actor.email)
    ):
        actor.require_account_holder_of(detail.enterprise_id)
    return detail


def _require_not_deactivated(detail: InvitationDetail) -> None:
    """R10: every operation on a deactivated partner is refused, saying why."""
    if detail.partner_status is PartnerStatus.DEACTIVATED:
        raise ProblemError(ErrorCode.PARTNER_DEACTIVATED, "The partner is deactivated.")


@router.post("/partners/{partner_id}/invitations", status_code=201, response_model=InvitationDetail)
async def invite_member(
    request: Request, partner_id: UUID, body: InviteMemberRequest, actor: CurrentActor
) -> InvitationDetail:
    """The partner's Admin invites a person of the same company as Member (R5, R6, R7)."""
    if actor.role is not ActorRole.PARTNER_USER:
        raise ProblemError(ErrorCode.FORBIDDEN, "Only the partner's Admin invites its members.")
    services = _services(request)
    partner = await services.store.get_partner(partner_id)
    if partner is None:
        raise ProblemError(ErrorCode.NOT_FOUND, "No such partner.")
    settings = services.settings
    invitation_id = uuid.uuid4()
    person = PersonIn(first_name=body.first_name, last_name=body.last_name, email=body.email)
    start = WithStartWorkflowOperation(
        InvitationWorkflow.run,
        InvitationInput(
            invitation_id=invitation_id,
            partner_id=partner_id,
            enterprise_id=partner.enterprise_id,
            purpose=InvitationPurpose.MEMBER,
            invitee_domain=person.domain,
            ttl_seconds=settings.invitation_ttl,
            max_sends=settings.invitation_max_sends,
            create=NewInvitation(
                partner_id=partner_id,
                person=person,
                role=Role.MEMBER,
                purpose=InvitationPurpose.MEMBER,
                invited_by=actor.email,
                locale=body.locale,
            ),
        ),
        id=invitation_workflow_id(invitation_id),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=_invitation_attributes(partner.enterprise_id, partner_id, person.domain),
        static_summary=f"Member invitation of partner {partner.name}",
    )
    try:
        await services.client.execute_update_with_start_workflow(
            InvitationWorkflow.opened, start_workflow_operation=start
        )
    except WorkflowUpdateFailedError as err:
        raise (_refusal_problem(err) or err) from None
    detail = await services.store.get_invitation(invitation_id)
    assert detail is not None, "the opened update answers after the invitation is stored"
    return detail


@router.get("/invitations/{invitation_id}", response_model=InvitationDetail)
async def get_invitation(request: Request, invitation_id: UUID, actor: CurrentActor) -> InvitationDetail:
    """The invitation as stored, and its workflow's live status while it has one."""
    services = _services(request)
    detail = await _authorized_invitation(services, actor, invitation_id)
    handle = services.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation_id))
    try:
        live = await handle.query(InvitationWorkflow.status)
    except (RPCError, WorkflowQueryFailedError):
        live = None  # its history is gone (retention) or it never ran here
    return detail.model_copy(update={"live": live})


@router.post("/invitations/{invitation_id}/resend", response_model=InvitationDetail)
async def resend_invitation(request: Request, invitation_id: UUID, actor: CurrentActor) -> InvitationDetail:
    """Sends a new mail now and restarts the TTL; revives an expired invitation (R7)."""
    services = _services(request)
    detail = await _authorized_invitation(services, actor, invitation_id)
    _require_not_deactivated(detail)
    if detail.state not in (InvitationState.PENDING, InvitationState.EXPIRED):
        # The workflow would refuse too; answering here starts no run for nothing.
        raise ProblemError(closed_invitation(detail.state.value), f"The invitation is {detail.state.value}.")
    settings = services.settings
    domain = detail.email.rpartition("@")[2]
    # Running: the update reaches it. Expired (its run closed): a new run revives it.
    start = WithStartWorkflowOperation(
        InvitationWorkflow.run,
        InvitationInput(
            invitation_id=invitation_id,
            partner_id=detail.partner_id,
            enterprise_id=detail.enterprise_id,
            purpose=detail.purpose,
            invitee_domain=domain,
            ttl_seconds=settings.invitation_ttl,
            max_sends=settings.invitation_max_sends,
            reopened_by=actor.email,
        ),
        id=invitation_workflow_id(invitation_id),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=_invitation_attributes(detail.enterprise_id, detail.partner_id, domain),
        static_summary="Invitation revived by hand",
    )
    try:
        live = await services.client.execute_update_with_start_workflow(
            InvitationWorkflow.resend, ResendRequest(actor=actor.email), start_workflow_operation=start
        )
    except WorkflowUpdateFailedError as err:
        raise (_refusal_problem(err) or err) from None
    fresh = await services.store.get_invitation(invitation_id)
    assert fresh is not None
    return fresh.model_copy(update={"live": live})


@router.post("/invitations/{invitation_id}/cancel", response_model=InvitationDetail)
async def cancel_invitation(request: Request, invitation_id: UUID, actor: CurrentActor) -> InvitationDetail:
    """Cancels a pending invitation: its links stop working at once (R7)."""
    services = _services(request)
    detail = await _authorized_invitation(services, actor, invitation_id)
    _require_not_deactivated(detail)
    if detail.state is not InvitationState.PENDING:
        raise ProblemError(closed_invitation(detail.state.value), f"The invitation is {detail.state.value}.")
    handle = services.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation_id))
    try:
        live = await handle.execute_update(InvitationWorkflow.cancel, CancelRequest(actor=actor.email))
    except WorkflowUpdateFailedError as err:
        raise (_refusal_problem(err) or err) from None
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        # It closed between our read and the update: answer with the state it closed in.
        closed = await services.store.get_invitation(invitation_id)
        assert closed is not None
        raise ProblemError(closed_invitation(closed.state.value), f"The invitation is {closed.state.value}.") from None
    fresh = await services.store.get_invitation(invitation_id)
    assert fresh is not None
    return fresh.model_copy(update={"live": live})


# --- partner maintenance -------------------------------------------------------------------


async def _partner_of_holder(services: Services, actor: Actor, partner_id: UUID) -> PartnerView:
    view = await services.store.get_partner(partner_id)
    if view is None:
        raise ProblemError(ErrorCode.NOT_FOUND, "No such partner.")
    actor.require_account_holder_of(view.enterprise_id)
    return view


@router.post("/partners/{partner_id}/admin", status_code=202, response_model=InvitationDetail)
async def replace_admin(request: Request, partner_id: UUID, body: PersonIn, actor: CurrentActor) -> InvitationDetail:
    """Invites a new Admin (R8); the current one stays Admin until the new one accepts.

    A newer replacement supersedes a pending one. For a pending partner, the first
    admin's invitation is re-targeted to this person."""
    services = _services(request)
    partner = await _partner_of_holder(services, actor, partner_id)
    settings = services.settings
    start = WithStartWorkflowOperation(
        AdminReplacementWorkflow.run,
        ReplacementInput(
            partner_id=partner_id,
            enterprise_id=partner.enterprise_id,
            ttl_seconds=settings.invitation_ttl,
            max_sends=settings.invitation_max_sends,
        ),
        id=replacement_workflow_id(partner_id),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search.ENTERPRISE_ID, partner.enterprise_id),
                SearchAttributePair(search.PARTNER_ID, str(partner_id)),
            ]
        ),
        static_summary=f"Admin replacement of partner {partner.name}",
    )
    try:
        started = await services.client.execute_update_with_start_workflow(
            AdminReplacementWorkflow.replace,
            ReplaceAdminRequest(person=body, actor=actor.email),
            start_workflow_operation=start,
        )
    except WorkflowUpdateFailedError as err:
        raise (_refusal_problem(err) or err) from None
    detail = await services.store.get_invitation(started.invitation_id)
    assert detail is not None
    return detail


@router.post("/partners/{partner_id}/grants", status_code=201, response_model=GrantView)
async def grant(request: Request, partner_id: UUID, body: GrantRequest, actor: CurrentActor) -> GrantView:
    """Grants a product or an API to the partner (R9)."""
    services = _services(request)
    await _partner_of_holder(services, actor, partner_id)
    return await services.store.grant(partner_id, body, actor.email)


@router.delete("/partners/{partner_id}/grants/{grant_id}", response_model=GrantView)
async def revoke(request: Request, partner_id: UUID, grant_id: UUID, actor: CurrentActor) -> GrantView:
    """Revokes a grant; it is kept, with who revoked it and when (R9)."""
    services = _services(request)
    await _partner_of_holder(services, actor, partner_id)
    return await services.store.revoke(partner_id, grant_id, actor.email)


@router.post("/partners/{partner_id}/deactivate", response_model=PartnerView)
async def deactivate(request: Request, partner_id: UUID, actor: CurrentActor) -> PartnerView:
    """Deactivates the partner, irreversibly (R10): refused while an API is granted."""
    services = _services(request)
    partner = await _partner_of_holder(services, actor, partner_id)
    start = WithStartWorkflowOperation(
        PartnerDeactivationWorkflow.run,
        DeactivationInput(partner_id=partner_id, enterprise_id=partner.enterprise_id, actor=actor.email),
        id=deactivation_workflow_id(partner_id),
        task_queue=services.settings.temporal_task_queue,
        # A second request while one runs hears the same outcome; a later one runs anew.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search.ENTERPRISE_ID, partner.enterprise_id),
                SearchAttributePair(search.PARTNER_ID, str(partner_id)),
            ]
        ),
        static_summary=f"Deactivation of partner {partner.name}",
    )
    try:
        await services.client.execute_update_with_start_workflow(
            PartnerDeactivationWorkflow.outcome, start_workflow_operation=start
        )
    except WorkflowUpdateFailedError as err:
        raise (_refusal_problem(err) or err) from None
    view = await services.store.get_partner(partner_id)
    assert view is not None
    return view


@router.get("/partners/{partner_id}/audit", response_model=AuditPage)
async def audit(
    request: Request,
    partner_id: UUID,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
) -> AuditPage:
    """Every change of the partner, newest first (R11)."""
    services = _services(request)
    await _partner_of_holder(services, actor, partner_id)
    return await services.store.audit(partner_id, limit=limit, before=before)


@router.put(
    "/partners/{partner_id}/logo",
    response_model=LogoView,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in LOGO_TYPES},
        }
    },
)
async def put_logo(request: Request, partner_id: UUID, actor: CurrentActor) -> LogoView:
    """The partner's logo: a PNG, JPEG or WebP image of at most 512 KiB, judged by content."""
    services = _services(request)
    await _partner_of_holder(services, actor, partner_id)
    data = await _read_limited(request, LOGO_MAX_BYTES)
    content_type = sniff_logo(data)
    if content_type is None:
        raise ProblemError(ErrorCode.UNSUPPORTED_LOGO, "The logo must be a PNG, JPEG or WebP image.")
    await services.store.set_logo(partner_id, data, content_type, actor.email)
    return LogoView(content_type=content_type, size=len(data), url=f"/partners/{partner_id}/logo")


@router.get("/partners/{partner_id}/logo", response_class=Response)
async def get_logo(request: Request, partner_id: UUID, actor: CurrentActor) -> Response:
    services = _services(request)
    await _partner_of_holder(services, actor, partner_id)
    return await logo_response(services, partner_id)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(ErrorCode.LOGO_TOO_LARGE, f"The logo may be {limit // 1024} KiB at most.")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ProblemError(ErrorCode.LOGO_TOO_LARGE, f"The logo may be {limit // 1024} KiB at most.")
    return bytes(data)
