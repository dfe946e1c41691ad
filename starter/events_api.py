"""Events for the portal (R15) under /v1/enterprises/{id}: the feed, and the enterprise's
webhook endpoints. HTTP only: the rules are in `starter/service/webhooks.py`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query

from partners.ids import ENTERPRISE_ID_PATTERN
from partners.requests import WebhookRequest
from partners.views import DeliveryList, EventPage, RetryAccepted, WebhookCreated, WebhookList, WebhookView
from starter.auth import CurrentActor
from starter.deps import WebhooksDep
from starter.problems import problem_responses

router = APIRouter(
    prefix="/v1/enterprises/{enterprise_id}",
    tags=["events"],
    responses=problem_responses(401, 403, 404, 405, 409, 413, 422, 429, 503),
)
EnterpriseId = Annotated[str, Path(pattern=ENTERPRISE_ID_PATTERN)]


@router.get("/events", response_model=EventPage, responses=problem_responses(410))
async def events(
    enterprise_id: EnterpriseId,
    actor: CurrentActor,
    hooks: WebhooksDep,
    after: Annotated[int, Query(ge=0, description="`next_cursor` of the previous page; 0 from the start.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """Every event of the enterprise in commit order: a portal that polls with the last
    `next_cursor` misses nothing and sees nothing twice. Events are kept EVENTS_RETENTION
    (30 days by default); a cursor into what was removed gets 410 `cursor_expired`, and
    `after=0` reads from the oldest event kept."""
    return await hooks.feed(actor, enterprise_id, after=after, limit=limit)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
async def create_webhook(
    body: WebhookRequest, enterprise_id: EnterpriseId, actor: CurrentActor, hooks: WebhooksDep
) -> WebhookCreated:
    """An endpoint for the events committed from now on, signed as Standard Webhooks
    says with the `whsec_` secret shown in this answer only."""
    return await hooks.create(actor, enterprise_id, body)


@router.get("/webhooks", response_model=WebhookList)
async def list_webhooks(enterprise_id: EnterpriseId, actor: CurrentActor, hooks: WebhooksDep) -> WebhookList:
    return await hooks.of_enterprise(actor, enterprise_id)


@router.delete("/webhooks/{webhook_id}", response_model=WebhookView)
async def delete_webhook(
    webhook_id: UUID, enterprise_id: EnterpriseId, actor: CurrentActor, hooks: WebhooksDep
) -> WebhookView:
    return await hooks.delete(actor, enterprise_id, webhook_id)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookCreated)
async def rotate_secret(
    webhook_id: UUID, enterprise_id: EnterpriseId, actor: CurrentActor, hooks: WebhooksDep
) -> WebhookCreated:
    """A new secret, shown in this answer only; the old one keeps signing beside it for 24 h."""
    return await hooks.rotate_secret(actor, enterprise_id, webhook_id)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryList)
async def deliveries(
    webhook_id: UUID,
    enterprise_id: EnterpriseId,
    actor: CurrentActor,
    hooks: WebhooksDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
) -> DeliveryList:
    """Every attempt, newest first: event, attempt, status, HTTP status, duration, error."""
    return await hooks.deliveries(actor, enterprise_id, webhook_id, limit=limit, before=before)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", status_code=202, response_model=RetryAccepted)
async def retry_delivery(
    webhook_id: UUID,
    delivery_id: Annotated[int, Path(ge=1)],
    enterprise_id: EnterpriseId,
    actor: CurrentActor,
    hooks: WebhooksDep,
) -> RetryAccepted:
    """Delivers that event once more, before the endpoint's next ones."""
    return await hooks.retry(actor, enterprise_id, webhook_id, delivery_id)
