"""Partners (R1 to R4, R8 to R11): registration, the partner's view, admin replacement,
grants, logo, deactivation and the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from uuid import UUID

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from partners import search
from partners.errors import ErrorCode, Refused
from partners.ids import deactivation_workflow_id, onboarding_workflow_id, replacement_workflow_id
from partners.logos import decode_logo
from partners.models import DeactivationInput, OnboardingInput, ReplaceAdminRequest, ReplacementInput
from partners.requests import GrantRequest, PersonIn, RegisterPartnerRequest, SuspendRequest
from partners.views import (
    AuditPage,
    GrantView,
    InvitationDetail,
    LogoView,
    PartnerSlots,
    PartnerSummary,
    PartnerView,
)
from starter.actors import Actor
from starter.service.base import Service
from store.idempotency import idempotent_partner_id
from workflows.deactivation import PartnerDeactivationWorkflow
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.replacement import AdminReplacementWorkflow

# What a Member does not see of their partner (R12).
_HIDDEN_FROM_MEMBERS = ("invitations", "invitation_counts", "admin_invitation", "admin_replacement")


class Partners(Service):
    async def register(
        self, actor: Actor, enterprise_id: str, body: RegisterPartnerRequest, idempotency_key: str | None
    ) -> PartnerView:
        actor.require_account_holder_of(enterprise_id)
        new_partner = body.new_partner()
        partner_id = uuid.uuid4()
        if idempotency_key:
            request_hash = hashlib.sha256(body.model_dump_json().encode()).digest()
            generation = await self._stores.idempotency.claim(enterprise_id, idempotency_key, request_hash)
            partner_id = idempotent_partner_id(enterprise_id, idempotency_key, generation)
        start = self._start_operation(
            PartnerOnboardingWorkflow.run,
            OnboardingInput(
                partner_id=partner_id,
                enterprise_id=enterprise_id,
                actor=actor.email,
                partner=new_partner,
                timing=self._timing,
            ),
            id=onboarding_workflow_id(partner_id),
            attributes=search.onboarding_attributes(enterprise_id, partner_id, new_partner.admin.domain),
            summary=f"Onboarding of partner {body.name}",
            # One onboarding per partner, ever: a retry with the same Idempotency-Key
            # after it finished must not run it again (it would invite a second time).
            reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        try:
            registration = await self._decided(
                self._client.execute_update_with_start_workflow(
                    PartnerOnboardingWorkflow.registration, start_workflow_operation=start
                )
            )
        except WorkflowAlreadyStartedError:
            view = await self._reads.get_partner(partner_id)
            if view is None:
                raise Refused(
                    ErrorCode.CONFLICT,
                    "This Idempotency-Key was used by a registration that was refused; use a new key.",
                ) from None
            return view
        return await self._partner(registration.partner_id)

    async def of_enterprise(self, actor: Actor, enterprise_id: str) -> list[PartnerSummary]:
        actor.require_account_holder_of(enterprise_id)
        return await self._reads.list_partners(enterprise_id)

    async def slots(self, actor: Actor, enterprise_id: str) -> PartnerSlots:
        """How many of the enterprise's partner slots are taken (R2), for the console's list."""
        actor.require_account_holder_of(enterprise_id)
        return await self._reads.partner_slots(enterprise_id, self._settings.partner_limit)

    async def get(self, actor: Actor, partner_id: UUID) -> PartnerView:
        """R12: the account holder and the Admin see everything; a Member the partner
        without its invitations."""
        _, viewer = await self.authorize.seen_by(actor, partner_id)
        view = await self._partner(partner_id)
        if viewer == "member":
            view = view.model_copy(update=dict.fromkeys(_HIDDEN_FROM_MEMBERS))
        return view.model_copy(update={"viewer_role": viewer})

    async def replace_admin(self, actor: Actor, partner_id: UUID, person: PersonIn) -> InvitationDetail:
        partner, invitee = await self.authorize.held_partner(actor, partner_id), person.invitee()
        start = self._start_operation(
            AdminReplacementWorkflow.run,
            ReplacementInput(partner_id=partner_id, enterprise_id=partner.enterprise_id, timing=self._timing),
            id=replacement_workflow_id(partner_id),
            attributes=search.attributes(partner.enterprise_id, partner_id),
            summary=f"Admin replacement of partner {partner.name}",
        )
        started = await self._decided(
            self._client.execute_update_with_start_workflow(
                AdminReplacementWorkflow.replace,
                ReplaceAdminRequest(invitee=invitee, actor=actor.email),
                start_workflow_operation=start,
            )
        )
        return await self._invitation(started.invitation_id)

    async def deactivate(self, actor: Actor, partner_id: UUID) -> PartnerView:
        partner = await self.authorize.held_partner(actor, partner_id)
        start = self._start_operation(
            PartnerDeactivationWorkflow.run,
            DeactivationInput(partner_id=partner_id, enterprise_id=partner.enterprise_id, actor=actor.email),
            id=deactivation_workflow_id(partner_id),
            attributes=search.attributes(partner.enterprise_id, partner_id),
            summary=f"Deactivation of partner {partner.name}",
        )
        await self._decided(
            self._client.execute_update_with_start_workflow(
                PartnerDeactivationWorkflow.outcome, start_workflow_operation=start
            )
        )
        return await self._partner(partner_id)

    async def suspend(self, actor: Actor, partner_id: UUID, body: SuspendRequest) -> PartnerView:
        """R23: access through the partner ends with the commit; its links accept no one
        and its mails wait. Suspending a suspended partner changes nothing."""
        partner = await self.authorize.held_partner(actor, partner_id)
        await self._stores.suspensions.suspend(partner_id, partner.enterprise_id, actor.email, body.reason)
        return await self._partner(partner_id)

    async def resume(self, actor: Actor, partner_id: UUID) -> PartnerView:
        """R23: the partner as it was; its pending invitations' time is given back, and
        their workflows are told so (one that is not told looks again within a day)."""
        partner = await self.authorize.held_partner(actor, partner_id)
        pending = await self._stores.suspensions.resume(partner_id, partner.enterprise_id, actor.email)
        await self._tell(pending, InvitationWorkflow.partner_resumed, "resumed")
        return await self._partner(partner_id)

    async def grant(self, actor: Actor, partner_id: UUID, body: GrantRequest) -> GrantView:
        await self.authorize.held_partner(actor, partner_id)
        return await self._stores.grants.grant(partner_id, body, actor.email)

    async def revoke(self, actor: Actor, partner_id: UUID, grant_id: UUID) -> GrantView:
        await self.authorize.held_partner(actor, partner_id)
        return await self._stores.grants.revoke(partner_id, grant_id, actor.email)

    async def set_logo(self, actor: Actor, partner_id: UUID, data: bytes) -> LogoView:
        """A PNG, JPEG or WebP image that decodes whole, at most 2048 x 2048 pixels,
        judged by its bytes whatever the upload says."""
        await self.authorize.held_partner(actor, partner_id)
        content_type = await asyncio.to_thread(decode_logo, data)  # CPU: off the event loop
        await self._stores.grants.set_logo(partner_id, data, content_type, actor.email)
        return LogoView(content_type=content_type, size=len(data), url=f"/partners/{partner_id}/logo")

    async def audit(self, actor: Actor, partner_id: UUID, *, limit: int, before: int | None) -> AuditPage:
        await self.authorize.held_partner(actor, partner_id)
        return await self._reads.audit(partner_id, limit=limit, before=before)
