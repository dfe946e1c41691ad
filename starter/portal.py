"""The portal backend's API under /v1."""

from __future__ import annotations

import uuid
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Path, Request
from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from partners import search
from partners.errors import ErrorCode
from partners.ids import onboarding_workflow_id
from partners.models import OnboardingInput, RegisterPartnerRequest
from partners.views import PartnerList, PartnerView
from starter.auth import CurrentActor
from starter.problems import ProblemError
from starter.services import Services
from workflows.onboarding import PartnerOnboardingWorkflow

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
        uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{enterprise_id}\n{idempotency_key}")
        if idempotency_key
        else uuid.uuid4()
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
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type in set(ErrorCode):
            extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            raise ProblemError(ErrorCode(str(cause.type)), cause.message, **extra) from None
        raise
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
