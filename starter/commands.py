"""What the portal API and the operator CLI can do: one place for each operation's rules.

Every method takes the acting user, checks R1/R5 for them, starts or updates the
workflow that decides, and answers with the read model; a refusal is `Refused` with its
stable code, whoever asked and wherever it was decided.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from uuid import UUID

from temporalio.client import WithStartWorkflowOperation, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from partners import search
from partners.errors import ErrorCode, Refused
from partners.ids import (
    deactivation_workflow_id,
    invitation_workflow_id,
    onboarding_workflow_id,
    replacement_workflow_id,
)
from partners.models import (
    CancelRequest,
    DeactivationInput,
    InvitationPurpose,
    InvitationState,
    InvitationStatus,
    InvitationTiming,
    NewInvitation,
    OnboardingInput,
    ReplaceAdminRequest,
    ReplacementInput,
    ResendRequest,
    Role,
    TakeOver,
    invitation_input,
)
from partners.requests import GrantRequest, InviteMemberRequest, PersonIn, RegisterPartnerRequest
from partners.rules import sniff_logo
from partners.views import AuditPage, GrantView, InvitationDetail, LogoView, PartnerSummary, PartnerView
from starter.auth import Actor, ActorRole
from starter.authorization import Authorization
from starter.services import Services
from store.idempotency import idempotent_partner_id
from workflows.deactivation import PartnerDeactivationWorkflow
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.replacement import AdminReplacementWorkflow

# What a Member does not see of their partner (R12).
_HIDDEN_FROM_MEMBERS = ("invitations", "invitation_counts", "admin_invitation", "admin_replacement")


class Commands:
    def __init__(self, services: Services) -> None:
        self._temporal = services.temporal
        self._settings = services.settings
        self._client = services.client
        self._reads = services.stores.reads
        self._grants = services.stores.grants
        self._memberships = services.stores.memberships
        self._idempotency = services.stores.idempotency
        self._mail_quota = services.stores.mail_quota
        self.authorize = Authorization(services.stores.reads)

    @property
    def _timing(self) -> InvitationTiming:
        settings = self._settings
        return InvitationTiming(
            ttl_seconds=settings.invitation_ttl,
            max_sends=settings.invitation_max_sends,
            resend_cooldown_seconds=settings.resend_cooldown,
            resend_daily_limit=settings.resend_daily_limit,
        )

    async def _start(
        self,
        update: Any,
        run: Any,
        input: Any,
        *args: Any,
        id: str,
        attributes: TypedSearchAttributes,
        summary: str,
        conflict: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.USE_EXISTING,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    ) -> Any:
        """The one way the API starts a workflow: update-with-start, so the workflow that
        decides answers, refusals included. By default a workflow per business id: joined
        while it runs, started anew after."""
        start = WithStartWorkflowOperation(
            run,
            input,
            id=id,
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=conflict,
            id_reuse_policy=reuse,
            search_attributes=attributes,
            static_summary=summary,
        )
        try:
            return await self._temporal(
                self._client.execute_update_with_start_workflow(update, *args, start_workflow_operation=start)
            )
        except WorkflowUpdateFailedError as err:
            raise Refused.found_in(err) or err from None

    # --- partners ------------------------------------------------------------------------

    async def register_partner(
        self, actor: Actor, enterprise_id: str, body: RegisterPartnerRequest, idempotency_key: str | None
    ) -> PartnerView:
        actor.require_account_holder_of(enterprise_id)
        new_partner = body.new_partner()
        partner_id = uuid.uuid4()
        if idempotency_key:
            request_hash = hashlib.sha256(body.model_dump_json().encode()).digest()
            generation = await self._idempotency.claim(enterprise_id, idempotency_key, request_hash)
            partner_id = idempotent_partner_id(enterprise_id, idempotency_key, generation)
        try:
            registration = await self._start(
                PartnerOnboardingWorkflow.registration,
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
        except WorkflowAlreadyStartedError:
            view = await self._reads.get_partner(partner_id)
            if view is None:
                raise Refused(
                    ErrorCode.CONFLICT,
                    "This Idempotency-Key was used by a registration that was refused; use a new key.",
                ) from None
            return view
        return await self._partner(registration.partner_id)

    async def list_partners(self, actor: Actor, enterprise_id: str) -> list[PartnerSummary]:
        actor.require_account_holder_of(enterprise_id)
        return await self._reads.list_partners(enterprise_id)

    async def get_partner(self, actor: Actor, partner_id: UUID) -> PartnerView:
        """R12: the account holder and the Admin see everything; a Member the partner
        without its invitations."""
        _, viewer = await self.authorize.seen_by(actor, partner_id)
        view = await self._partner(partner_id)
        if viewer == "member":
            view = view.model_copy(update=dict.fromkeys(_HIDDEN_FROM_MEMBERS))
        return view.model_copy(update={"viewer_role": viewer})

    async def _partner(self, partner_id: UUID) -> PartnerView:
        view = await self._reads.get_partner(partner_id)
        if view is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such partner.")
        return view

    async def replace_admin(self, actor: Actor, partner_id: UUID, person: PersonIn) -> InvitationDetail:
        partner, invitee = await self.authorize.held_partner(actor, partner_id), person.invitee()
        started = await self._start(
            AdminReplacementWorkflow.replace,
            AdminReplacementWorkflow.run,
            ReplacementInput(partner_id=partner_id, enterprise_id=partner.enterprise_id, timing=self._timing),
            ReplaceAdminRequest(invitee=invitee, actor=actor.email),
            id=replacement_workflow_id(partner_id),
            attributes=search.attributes(partner.enterprise_id, partner_id),
            summary=f"Admin replacement of partner {partner.name}",
        )
        return await self._invitation(started.invitation_id)

    async def deactivate(self, actor: Actor, partner_id: UUID) -> PartnerView:
        partner = await self.authorize.held_partner(actor, partner_id)
        await self._start(
            PartnerDeactivationWorkflow.outcome,
            PartnerDeactivationWorkflow.run,
            DeactivationInput(partner_id=partner_id, enterprise_id=partner.enterprise_id, actor=actor.email),
            id=deactivation_workflow_id(partner_id),
            attributes=search.attributes(partner.enterprise_id, partner_id),
            summary=f"Deactivation of partner {partner.name}",
        )
        return await self._partner(partner_id)

    async def grant(self, actor: Actor, partner_id: UUID, body: GrantRequest) -> GrantView:
        await self.authorize.held_partner(actor, partner_id)
        return await self._grants.grant(partner_id, body, actor.email)

    async def revoke(self, actor: Actor, partner_id: UUID, grant_id: UUID) -> GrantView:
        await self.authorize.held_partner(actor, partner_id)
        return await self._grants.revoke(partner_id, grant_id, actor.email)

    async def set_logo(self, actor: Actor, partner_id: UUID, data: bytes) -> LogoView:
        """A PNG, JPEG or WebP image, judged by its bytes whatever the upload says."""
        await self.authorize.held_partner(actor, partner_id)
        content_type = sniff_logo(data)
        if content_type is None:
            raise Refused(ErrorCode.UNSUPPORTED_LOGO, "The logo must be a PNG, JPEG or WebP image.")
        await self._grants.set_logo(partner_id, data, content_type, actor.email)
        return LogoView(content_type=content_type, size=len(data), url=f"/partners/{partner_id}/logo")

    async def audit(self, actor: Actor, partner_id: UUID, *, limit: int, before: int | None) -> AuditPage:
        await self.authorize.held_partner(actor, partner_id)
        return await self._reads.audit(partner_id, limit=limit, before=before)

    # --- invitations ---------------------------------------------------------------------

    async def invite_member(self, actor: Actor, partner_id: UUID, body: InviteMemberRequest) -> InvitationDetail:
        return await self.invite_into(await self.authorize.inviting_partner(actor, partner_id), actor, body)

    async def invite_into(self, partner: PartnerSummary, actor: Actor, body: InviteMemberRequest) -> InvitationDetail:
        """A member invitation of `partner` (from `inviting_partner`). The workflow's
        transaction checks again that the actor is its Admin, with the domain and the
        duplicates."""
        partner_id, invitation_id, invitee = partner.id, uuid.uuid4(), body.invitee()
        await self._start(
            InvitationWorkflow.ready,
            InvitationWorkflow.run,
            invitation_input(
                invitation_id,
                partner_id=partner_id,
                enterprise_id=partner.enterprise_id,
                purpose=InvitationPurpose.MEMBER,
                invitee_email=invitee.email,
                timing=self._timing,
                create=NewInvitation(
                    partner_id=partner_id,
                    invitee=invitee,
                    role=Role.MEMBER,
                    purpose=InvitationPurpose.MEMBER,
                    invited_by=actor.email,
                    locale=body.locale,
                ),
            ),
            id=invitation_workflow_id(invitation_id),
            attributes=search.attributes(
                partner.enterprise_id,
                partner_id,
                invitee_domain=invitee.domain,
                invitation_state=InvitationState.PENDING.value,
            ),
            summary=f"Member invitation of partner {partner.name}",
            conflict=WorkflowIDConflictPolicy.FAIL,
        )
        return await self._invitation(invitation_id)

    async def get_invitation(
        self, actor: Actor, invitation_id: UUID, *, ask_workflow: bool = False
    ) -> InvitationDetail:
        """The invitation as stored: its state, sends and times, as its workflow wrote them.
        `ask_workflow` (the operator CLI) adds the workflow's own live status, a query:
        the server bills every query, so the portal's reads do not ask."""
        detail = await self.authorize.invitation(actor, invitation_id)
        if not ask_workflow:
            return detail
        handle = self._client.get_workflow_handle(await self._workflow_of(invitation_id))
        try:
            live = await self._temporal(handle.query(InvitationWorkflow.status))
        except (RPCError, WorkflowQueryFailedError, Refused):
            # Its history is gone (retention), it never ran here, or no worker answered in
            # time: the stored invitation is the answer.
            live = None
        return detail.model_copy(update={"live": live})

    async def resend(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """Sends a new mail now; revives an expired invitation (R7). Its workflow decides;
        the invitee's daily mail quota is claimed first, and given back if it refuses."""
        detail = await self.authorize.invitation(actor, invitation_id)
        async with self._mail_quota.spending(detail.partner_id, detail.email):
            return await self._invitation_update(
                actor,
                detail,
                InvitationWorkflow.resend,
                ResendRequest(actor=actor.email, operator=actor.role is ActorRole.OPERATOR),
                revive=True,
            )

    async def cancel(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """Cancels a pending invitation (R7). Its workflow decides."""
        detail = await self.authorize.invitation(actor, invitation_id)
        return await self._invitation_update(
            actor, detail, InvitationWorkflow.cancel, CancelRequest(actor=actor.email), revive=False
        )

    async def _invitation_update(
        self, actor: Actor, detail: InvitationDetail, update: Any, request: Any, *, revive: bool
    ) -> InvitationDetail:
        """An update to the workflow that runs the invitation (its row says which). Where
        that workflow is gone (the invitation closed, or an operator terminated it), a new
        run of its own `invitation-{id}` takes it over and answers: it revives an expired
        invitation when `revive`, adopts a pending one, refuses any other state."""
        invitation_id = detail.id
        workflow_id = await self._workflow_of(invitation_id)
        live: InvitationStatus | None = None
        if workflow_id != invitation_workflow_id(invitation_id):
            try:
                live = await self._temporal(
                    self._client.get_workflow_handle(workflow_id).execute_update(update, request)
                )
            except WorkflowUpdateFailedError as err:
                raise Refused.found_in(err) or err from None
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise
        if live is None:
            live = await self._start(
                update,
                InvitationWorkflow.run,
                invitation_input(
                    invitation_id,
                    partner_id=detail.partner_id,
                    enterprise_id=detail.enterprise_id,
                    purpose=detail.purpose,
                    invitee_email=detail.email,
                    timing=self._timing,
                    take_over=TakeOver(actor=actor.email, revive=revive),
                ),
                request,
                id=invitation_workflow_id(invitation_id),
                # Its state is set once the run has taken the invitation over (or refused).
                attributes=search.attributes(
                    detail.enterprise_id, detail.partner_id, invitee_domain=detail.email.rpartition("@")[2]
                ),
                summary="Invitation taken over by hand",
            )
        return (await self._invitation(invitation_id)).model_copy(update={"live": live})

    async def _invitation(self, invitation_id: UUID) -> InvitationDetail:
        detail = await self._reads.get_invitation(invitation_id)
        if detail is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        return detail

    async def _workflow_of(self, invitation_id: UUID) -> str:
        """The workflow that runs the invitation, as its row records."""
        workflow_id = await self._reads.invitation_workflow(invitation_id)
        if workflow_id is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        return workflow_id
