"""What the portal API and the operator CLI can do: one place for each operation's rules.

Every method takes the acting user, checks R1/R5 for them, starts or updates the
workflow that decides, and answers with the read model; a refusal is a ProblemError
with its stable code, whoever asked.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar
from uuid import UUID

from temporalio.client import WithStartWorkflowOperation, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
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
from partners.rules import sniff_logo
from partners.views import AuditPage, GrantView, InvitationDetail, LogoView, PartnerSummary, PartnerView
from starter.auth import Actor, ActorRole
from starter.problems import ProblemError
from starter.services import Services
from workflows.deactivation import PartnerDeactivationWorkflow
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.replacement import AdminReplacementWorkflow

T = TypeVar("T")

# Partner ids derived from an Idempotency-Key live in their own namespace.
IDEMPOTENCY_NAMESPACE = uuid.UUID("8f0b6c1e-3a55-4d6f-9a51-6e1d0b7c2a90")


def _attributes(enterprise_id: str, partner_id: UUID, domain: str | None = None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[str]] = [
        SearchAttributePair(search.ENTERPRISE_ID, enterprise_id),
        SearchAttributePair(search.PARTNER_ID, str(partner_id)),
    ]
    if domain is not None:
        pairs += [
            SearchAttributePair(search.INVITEE_DOMAIN, domain),
            SearchAttributePair(search.INVITATION_STATE, InvitationState.PENDING.value),
        ]
    return TypedSearchAttributes(pairs)


def _refusal(err: WorkflowUpdateFailedError) -> Exception:
    """The workflow's business refusal as the problem the user sees; anything else as is."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in set(ErrorCode):
        extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return ProblemError(ErrorCode(str(cause.type)), cause.message, **extra)
    return err


def _closed(state: InvitationState) -> ProblemError:
    return ProblemError(closed_invitation(state.value), f"The invitation is {state.value}.")


class Commands:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings
        self._client = services.client
        self._store = services.store

    async def _start_with_update(
        self,
        update: Any,
        start: WithStartWorkflowOperation[Any, Any],
        *args: Any,
    ) -> Any:
        """Update-with-start: the workflow that decides answers, refusals included."""
        try:
            return await self._client.execute_update_with_start_workflow(update, *args, start_workflow_operation=start)
        except WorkflowUpdateFailedError as err:
            raise _refusal(err) from None

    def _start(
        self,
        run: Any,
        input: Any,
        workflow_id: str,
        attributes: TypedSearchAttributes,
        summary: str,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    ) -> Any:
        """A start for a workflow per business id: joined while it runs, started anew after
        (unless `reuse` says otherwise)."""
        return WithStartWorkflowOperation(
            run,
            input,
            id=workflow_id,
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse,
            search_attributes=attributes,
            static_summary=summary,
        )

    # --- partners ------------------------------------------------------------------------

    async def register_partner(
        self, actor: Actor, enterprise_id: str, body: RegisterPartnerRequest, idempotency_key: str | None
    ) -> PartnerView:
        actor.require_account_holder_of(enterprise_id)
        if not body.admin_domain_is_registered():
            raise ProblemError(
                ErrorCode.DOMAIN_NOT_REGISTERED,
                "The admin's e-mail domain is not one of the partner's domains.",
                domains=body.domains,
            )
        partner_id = (
            uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{enterprise_id}\n{idempotency_key}")
            if idempotency_key
            else uuid.uuid4()
        )
        start = self._start(
            PartnerOnboardingWorkflow.run,
            OnboardingInput(
                partner_id=partner_id,
                enterprise_id=enterprise_id,
                actor=actor.email,
                partner=body,
                invitation_ttl_seconds=self._settings.invitation_ttl,
                invitation_max_sends=self._settings.invitation_max_sends,
            ),
            onboarding_workflow_id(partner_id),
            _attributes(enterprise_id, partner_id),
            f"Onboarding of partner {body.name}",
            # One onboarding per partner, ever: a retry with the same Idempotency-Key after
            # it finished must not run it again (it would invite a second time).
            reuse=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        try:
            registration = await self._start_with_update(PartnerOnboardingWorkflow.registration, start)
        except WorkflowAlreadyStartedError:
            view = await self._store.get_partner(partner_id)
            if view is None:
                raise ProblemError(
                    ErrorCode.CONFLICT,
                    "This Idempotency-Key was used by a registration that was refused; use a new key.",
                ) from None
            return view
        return await self._partner(registration.partner_id)

    async def list_partners(self, actor: Actor, enterprise_id: str) -> list[PartnerSummary]:
        actor.require_account_holder_of(enterprise_id)
        return await self._store.list_partners(enterprise_id)

    async def get_partner(self, actor: Actor, partner_id: UUID) -> PartnerView:
        view = await self._partner(partner_id)
        actor.require_account_holder_of(view.enterprise_id)
        return view

    async def _partner(self, partner_id: UUID) -> PartnerView:
        view = await self._store.get_partner(partner_id)
        if view is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such partner.")
        return view

    async def replace_admin(self, actor: Actor, partner_id: UUID, person: PersonIn) -> InvitationDetail:
        partner = await self.get_partner(actor, partner_id)
        start = self._start(
            AdminReplacementWorkflow.run,
            ReplacementInput(
                partner_id=partner_id,
                enterprise_id=partner.enterprise_id,
                ttl_seconds=self._settings.invitation_ttl,
                max_sends=self._settings.invitation_max_sends,
            ),
            replacement_workflow_id(partner_id),
            _attributes(partner.enterprise_id, partner_id),
            f"Admin replacement of partner {partner.name}",
        )
        started = await self._start_with_update(
            AdminReplacementWorkflow.replace, start, ReplaceAdminRequest(person=person, actor=actor.email)
        )
        return await self._invitation(started.invitation_id)

    async def deactivate(self, actor: Actor, partner_id: UUID) -> PartnerView:
        partner = await self.get_partner(actor, partner_id)
        start = self._start(
            PartnerDeactivationWorkflow.run,
            DeactivationInput(partner_id=partner_id, enterprise_id=partner.enterprise_id, actor=actor.email),
            deactivation_workflow_id(partner_id),
            _attributes(partner.enterprise_id, partner_id),
            f"Deactivation of partner {partner.name}",
        )
        await self._start_with_update(PartnerDeactivationWorkflow.outcome, start)
        return await self._partner(partner_id)

    async def grant(self, actor: Actor, partner_id: UUID, body: GrantRequest) -> GrantView:
        await self.get_partner(actor, partner_id)
        return await self._store.grant(partner_id, body, actor.email)

    async def revoke(self, actor: Actor, partner_id: UUID, grant_id: UUID) -> GrantView:
        await self.get_partner(actor, partner_id)
        return await self._store.revoke(partner_id, grant_id, actor.email)

    async def set_logo(self, actor: Actor, partner_id: UUID, data: bytes) -> LogoView:
        """A PNG, JPEG or WebP image, judged by its bytes whatever the upload says."""
        await self.get_partner(actor, partner_id)
        content_type = sniff_logo(data)
        if content_type is None:
            raise ProblemError(ErrorCode.UNSUPPORTED_LOGO, "The logo must be a PNG, JPEG or WebP image.")
        await self._store.set_logo(partner_id, data, content_type, actor.email)
        return LogoView(content_type=content_type, size=len(data), url=f"/partners/{partner_id}/logo")

    async def audit(self, actor: Actor, partner_id: UUID, *, limit: int, before: int | None) -> AuditPage:
        await self.get_partner(actor, partner_id)
        return await self._store.audit(partner_id, limit=limit, before=before)

    # --- invitations ---------------------------------------------------------------------

    async def invite_member(self, actor: Actor, partner_id: UUID, body: InviteMemberRequest) -> InvitationDetail:
        """R5: the partner's Admin invites; whether the actor is that Admin is checked in the
        workflow's transaction, with the domain and duplicates."""
        if actor.role is not ActorRole.PARTNER_USER:
            raise ProblemError(ErrorCode.FORBIDDEN, "Only the partner's Admin invites its members.")
        partner = await self._partner(partner_id)
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
                ttl_seconds=self._settings.invitation_ttl,
                max_sends=self._settings.invitation_max_sends,
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
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=_attributes(partner.enterprise_id, partner_id, person.domain),
            static_summary=f"Member invitation of partner {partner.name}",
        )
        await self._start_with_update(InvitationWorkflow.opened, start)
        return await self._invitation(invitation_id)

    async def get_invitation(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """The invitation as stored, and its workflow's live status while it has one."""
        detail = await self._authorized_invitation(actor, invitation_id)
        handle = self._client.get_workflow_handle(await self._owner(invitation_id))
        try:
            live = await handle.query(InvitationWorkflow.status)
        except (RPCError, WorkflowQueryFailedError):
            live = None  # its history is gone (retention) or it never ran here
        return detail.model_copy(update={"live": live})

    async def resend(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        detail = await self._authorized_invitation(actor, invitation_id)
        _require_not_deactivated(detail)
        if detail.state not in (InvitationState.PENDING, InvitationState.EXPIRED):
            # The workflow would refuse too; answering here starts no run for nothing.
            raise _closed(detail.state)
        request = ResendRequest(actor=actor.email)
        owner = await self._owner(invitation_id)
        if detail.state is InvitationState.PENDING and owner != invitation_workflow_id(invitation_id):
            # Its partner's onboarding runs it. If that run has ended (the invitation expired
            # meanwhile, or an operator terminated it), the start below revives it or takes
            # it over in a workflow of its own.
            try:
                live = await self._client.get_workflow_handle(owner).execute_update(InvitationWorkflow.resend, request)
                return (await self._invitation(invitation_id)).model_copy(update={"live": live})
            except WorkflowUpdateFailedError as err:
                raise _refusal(err) from None
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:
                    raise
        domain = detail.email.rpartition("@")[2]
        # Running: the update reaches it. Expired (its run closed): a new run revives it.
        start = self._start(
            InvitationWorkflow.run,
            InvitationInput(
                invitation_id=invitation_id,
                partner_id=detail.partner_id,
                enterprise_id=detail.enterprise_id,
                purpose=detail.purpose,
                invitee_domain=domain,
                ttl_seconds=self._settings.invitation_ttl,
                max_sends=self._settings.invitation_max_sends,
                reopened_by=actor.email,
            ),
            invitation_workflow_id(invitation_id),
            _attributes(detail.enterprise_id, detail.partner_id, domain),
            "Invitation revived by hand",
        )
        live = await self._start_with_update(InvitationWorkflow.resend, start, request)
        return (await self._invitation(invitation_id)).model_copy(update={"live": live})

    async def cancel(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        detail = await self._authorized_invitation(actor, invitation_id)
        _require_not_deactivated(detail)
        if detail.state is not InvitationState.PENDING:
            raise _closed(detail.state)
        handle = self._client.get_workflow_handle(await self._owner(invitation_id))
        try:
            live = await handle.execute_update(InvitationWorkflow.cancel, CancelRequest(actor=actor.email))
        except WorkflowUpdateFailedError as err:
            raise _refusal(err) from None
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            # It closed between our read and the update: answer with the state it closed in.
            raise _closed((await self._invitation(invitation_id)).state) from None
        return (await self._invitation(invitation_id)).model_copy(update={"live": live})

    async def _invitation(self, invitation_id: UUID) -> InvitationDetail:
        detail = await self._store.get_invitation(invitation_id)
        if detail is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such invitation.")
        return detail

    async def _owner(self, invitation_id: UUID) -> str:
        """The workflow that runs the invitation: its own, or its partner's onboarding."""
        return await self._store.invitation_workflow(invitation_id) or invitation_workflow_id(invitation_id)

    async def _authorized_invitation(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """The account holder of the partner's enterprise; for member invitations also its Admin."""
        detail = await self._invitation(invitation_id)
        if not (
            actor.role is ActorRole.PARTNER_USER
            and detail.purpose is InvitationPurpose.MEMBER
            and await self._store.is_active_admin(detail.partner_id, actor.email)
        ):
            actor.require_account_holder_of(detail.enterprise_id)
        return detail


def _require_not_deactivated(detail: InvitationDetail) -> None:
    """R10: every operation on a deactivated partner is refused, saying why."""
    if detail.partner_status is PartnerStatus.DEACTIVATED:
        raise ProblemError(ErrorCode.PARTNER_DEACTIVATED, "The partner is deactivated.")
