"""Events for the portal (R15): the feed, and the enterprise's webhook endpoints."""

from __future__ import annotations

import contextlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from partners import destinations
from partners.errors import ErrorCode, Refused
from partners.ids import webhook_workflow_id
from partners.requests import WebhookRequest
from partners.views import DeliveryList, EventPage, WebhookCreated, WebhookList, WebhookView
from starter.auth import Actor, CurrentActor
from starter.problems import problem_responses
from starter.services import Services
from store.events import EventStore
from workflows.webhooks import WebhookDeliveryWorkflow, start_delivery

router = APIRouter(
    prefix="/v1/enterprises/{enterprise_id}",
    tags=["events"],
    responses=problem_responses(401, 403, 404, 405, 409, 413, 422, 429, 503),
)
EnterpriseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]


class RetryAccepted(BaseModel):
    delivery_id: int
    status: str = "queued"


class Webhooks:
    def __init__(self, request: Request, actor: CurrentActor, enterprise_id: EnterpriseId) -> None:
        actor.require_account_holder_of(enterprise_id)
        self.services: Services = request.app.state.services
        self.store: EventStore = self.services.stores.events
        self.actor: Actor = actor
        self.enterprise_id = enterprise_id

    async def create(self, body: WebhookRequest) -> WebhookCreated:
        settings = self.services.settings
        target = destinations.parse(body.url, allow_http=settings.webhook_allow_http)
        await destinations.resolve(target, allow_private=settings.webhook_allow_private)
        events = None if body.events == ["*"] else body.events
        view, secret = await self.store.create_endpoint(self.enterprise_id, body.url, events, self.actor.email)
        await self.services.temporal(start_delivery(self.services.client, settings, view.id, self.enterprise_id))
        return WebhookCreated(**view.model_dump(), secret=secret)

    async def stop(self, endpoint_id: UUID) -> None:
        """The endpoint's workflow stops at its next wait anyway; this stops a retry under way."""
        handle = self.services.client.get_workflow_handle(webhook_workflow_id(endpoint_id))
        with contextlib.suppress(RPCError, Refused):
            await self.services.temporal(handle.cancel())

    async def retry(self, endpoint_id: UUID, delivery_id: int) -> RetryAccepted:
        endpoint = await self.store.endpoint(self.enterprise_id, endpoint_id)
        if endpoint.status != "enabled":
            raise Refused(ErrorCode.WEBHOOK_DISABLED, "The endpoint is disabled; register it again.")
        seq = await self.store.delivery_event(endpoint_id, delivery_id)
        handle = self.services.client.get_workflow_handle(webhook_workflow_id(endpoint_id))
        try:
            await self.services.temporal(handle.signal(WebhookDeliveryWorkflow.redeliver, seq))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            raise Refused(ErrorCode.WEBHOOK_DISABLED, "The endpoint's delivery is not running.") from None
        return RetryAccepted(delivery_id=delivery_id)


async def _webhooks(request: Request, actor: CurrentActor, enterprise_id: EnterpriseId) -> Webhooks:
    """A coroutine: FastAPI would run the class itself in its thread pool."""
    return Webhooks(request, actor, enterprise_id)


Hooks = Annotated[Webhooks, Depends(_webhooks)]


@router.get("/events", response_model=EventPage)
async def events(
    hooks: Hooks,
    after: Annotated[int, Query(ge=0, description="`next_cursor` of the previous page; 0 from the start.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """Every event of the enterprise in commit order: a portal that polls with the last
    `next_cursor` misses nothing and sees nothing twice."""
    return await hooks.store.feed(hooks.enterprise_id, after=after, limit=limit)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
async def create_webhook(body: WebhookRequest, hooks: Hooks) -> WebhookCreated:
    """An endpoint for the events committed from now on, signed as Standard Webhooks
    says with the `whsec_` secret shown in this answer only."""
    return await hooks.create(body)


@router.get("/webhooks", response_model=WebhookList)
async def list_webhooks(hooks: Hooks) -> WebhookList:
    return WebhookList(webhooks=await hooks.store.endpoints(hooks.enterprise_id))


@router.delete("/webhooks/{webhook_id}", response_model=WebhookView)
async def delete_webhook(webhook_id: UUID, hooks: Hooks) -> WebhookView:
    view = await hooks.store.delete_endpoint(hooks.enterprise_id, webhook_id, hooks.actor.email)
    await hooks.stop(webhook_id)
    return view


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookCreated)
async def rotate_secret(webhook_id: UUID, hooks: Hooks) -> WebhookCreated:
    """A new secret, shown in this answer only; the old one keeps signing beside it for 24 h."""
    view, secret = await hooks.store.rotate_secret(hooks.enterprise_id, webhook_id, hooks.actor.email)
    return WebhookCreated(**view.model_dump(), secret=secret)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveryList)
async def deliveries(
    webhook_id: UUID,
    hooks: Hooks,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page.")] = None,
) -> DeliveryList:
    """Every attempt, newest first: event, attempt, status, HTTP status, duration, error."""
    await hooks.store.endpoint(hooks.enterprise_id, webhook_id)
    return await hooks.store.deliveries(webhook_id, limit=limit, before=before)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", status_code=202, response_model=RetryAccepted)
async def retry_delivery(webhook_id: UUID, delivery_id: Annotated[int, Path(ge=1)], hooks: Hooks) -> RetryAccepted:
    """Delivers that event once more, before the endpoint's next ones."""
    return await hooks.retry(webhook_id, delivery_id)
