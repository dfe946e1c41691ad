"""Events for the portal (R15): the feed, and the enterprise's webhook endpoints. Every
operation is the enterprise's account holder's."""

from __future__ import annotations

import contextlib
from uuid import UUID

from temporalio.service import RPCError, RPCStatusCode

from partners import destinations
from partners.errors import ErrorCode, Refused
from partners.ids import webhook_workflow_id
from partners.requests import WebhookRequest
from partners.views import DeliveryList, EventPage, RetryAccepted, WebhookCreated, WebhookList, WebhookView
from starter.actors import Actor
from starter.service.base import Service
from workflows.webhooks import WebhookDeliveryWorkflow, start_delivery


class Webhooks(Service):
    async def feed(self, actor: Actor, enterprise_id: str, *, after: int, limit: int) -> EventPage:
        actor.require_account_holder_of(enterprise_id)
        return await self._stores.events.feed(enterprise_id, after=after, limit=limit)

    async def create(self, actor: Actor, enterprise_id: str, body: WebhookRequest) -> WebhookCreated:
        actor.require_account_holder_of(enterprise_id)
        settings = self._settings
        target = destinations.parse(body.url, allow_http=settings.webhook_allow_http)
        await destinations.resolve(target, allow_private=settings.webhook_allow_private)
        events = None if body.events == ["*"] else body.events
        view, secret = await self._stores.events.create_endpoint(enterprise_id, body.url, events, actor.email)
        await self._services.temporal(start_delivery(self._client, settings, view.id, enterprise_id))
        return WebhookCreated(**view.model_dump(), secret=secret)

    async def of_enterprise(self, actor: Actor, enterprise_id: str) -> WebhookList:
        actor.require_account_holder_of(enterprise_id)
        return WebhookList(webhooks=await self._stores.events.endpoints(enterprise_id))

    async def delete(self, actor: Actor, enterprise_id: str, endpoint_id: UUID) -> WebhookView:
        """Disabled at once; its workflow stops at its next wait anyway, and a retry under
        way is cancelled."""
        actor.require_account_holder_of(enterprise_id)
        view = await self._stores.events.delete_endpoint(enterprise_id, endpoint_id, actor.email)
        handle = self._client.get_workflow_handle(webhook_workflow_id(endpoint_id))
        with contextlib.suppress(RPCError, Refused):
            await self._services.temporal(handle.cancel())
        return view

    async def rotate_secret(self, actor: Actor, enterprise_id: str, endpoint_id: UUID) -> WebhookCreated:
        actor.require_account_holder_of(enterprise_id)
        view, secret = await self._stores.events.rotate_secret(enterprise_id, endpoint_id, actor.email)
        return WebhookCreated(**view.model_dump(), secret=secret)

    async def deliveries(
        self, actor: Actor, enterprise_id: str, endpoint_id: UUID, *, limit: int, before: int | None
    ) -> DeliveryList:
        actor.require_account_holder_of(enterprise_id)
        await self._stores.events.endpoint(enterprise_id, endpoint_id)
        return await self._stores.events.deliveries(endpoint_id, limit=limit, before=before)

    async def retry(self, actor: Actor, enterprise_id: str, endpoint_id: UUID, delivery_id: int) -> RetryAccepted:
        actor.require_account_holder_of(enterprise_id)
        endpoint = await self._stores.events.endpoint(enterprise_id, endpoint_id)
        if endpoint.status != "enabled":
            raise Refused(ErrorCode.WEBHOOK_DISABLED, "The endpoint is disabled; register it again.")
        seq = await self._stores.events.delivery_event(endpoint_id, delivery_id)
        handle = self._client.get_workflow_handle(webhook_workflow_id(endpoint_id))
        try:
            await self._services.temporal(handle.signal(WebhookDeliveryWorkflow.redeliver, seq))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            raise Refused(ErrorCode.WEBHOOK_DISABLED, "The endpoint's delivery is not running.") from None
        return RetryAccepted(delivery_id=delivery_id)
