"""Invitations (R5 to R7): member invitations, one at a time or a batch, resend and cancel,
the lists, and acceptance by link or by the signed-in invitee."""

from __future__ import annotations

import asyncio
import collections
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from partners import search
from partners.errors import ErrorCode, Refused, validation_detail
from partners.ids import invitation_workflow_id
from partners.models import (
    AcceptRequest,
    AcceptResult,
    CancelRequest,
    InvitationPurpose,
    InvitationState,
    InvitationStatus,
    NewInvitation,
    PartnerStatus,
    ResendRequest,
    Role,
    TakeOver,
    invitation_input,
)
from partners.requests import InviteMemberRequest
from partners.rules import TOKEN_PATTERN, token_hash
from partners.views import (
    BatchResult,
    BatchRowResult,
    InvitationDetail,
    InvitationLinkView,
    InvitationList,
    PartnerSummary,
)
from starter.actors import Actor, ActorRole
from starter.service.base import Service
from workflows.invitation import InvitationWorkflow

P = TypeVar("P")  # an update's request
R = TypeVar("R")  # its answer

# Invitations of one batch under way at once: each holds the partner's row lock briefly.
_BATCH_CONCURRENCY = 4


class Invitations(Service):
    async def invite(self, actor: Actor, partner_id: UUID, body: InviteMemberRequest) -> InvitationDetail:
        return await self._invite_into(await self.authorize.inviting_partner(actor, partner_id), actor, body)

    async def invite_batch(self, actor: Actor, partner_id: UUID, people: list[dict[str, Any]]) -> BatchResult:
        """One invitation per person, in order; a refused person does not stop the others."""
        partner = await self.authorize.inviting_partner(actor, partner_id)
        gate = asyncio.Semaphore(_BATCH_CONCURRENCY)
        # One address at a time, in the batch's order: its first row decides, a repeat of
        # it answers what a second invitation gets.
        per_address: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

        async def one(row: dict[str, Any]) -> BatchRowResult:
            email = str(row.get("email", ""))[:320]
            try:
                body = InviteMemberRequest.model_validate(row)
            except ValidationError as err:
                refusal = Refused(ErrorCode.INVALID_INPUT, validation_detail(err))
                return BatchRowResult(email=email, status=422, code=refusal.code.value, detail=refusal.detail)
            # Taken before this task first yields: the tasks start in the batch's order.
            async with per_address[body.email], gate:
                try:
                    created = await self._invite_into(partner, actor, body)
                except Refused as err:
                    return BatchRowResult(
                        email=body.email, status=err.code.http_status, code=err.code.value, detail=err.detail
                    )
            return BatchRowResult(email=body.email, status=201, invitation=created)

        return BatchResult(results=list(await asyncio.gather(*(one(row) for row in people))))

    async def _invite_into(self, partner: PartnerSummary, actor: Actor, body: InviteMemberRequest) -> InvitationDetail:
        """A member invitation of `partner` (from `inviting_partner`). The workflow's
        transaction checks again that the actor is its Admin, with the domain and the
        duplicates."""
        partner_id, invitation_id, invitee = partner.id, uuid.uuid4(), body.invitee()
        start = self._start_operation(
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
        await self._decided(
            self._client.execute_update_with_start_workflow(InvitationWorkflow.ready, start_workflow_operation=start)
        )
        return await self._invitation(invitation_id)

    async def get(self, actor: Actor, invitation_id: UUID, *, ask_workflow: bool = False) -> InvitationDetail:
        """The invitation as stored: its state, sends and times, as its workflow wrote them.
        `ask_workflow` (the operator CLI) adds the workflow's own live status, a query:
        the server bills every query, so the portal's reads do not ask."""
        detail = await self.authorize.invitation(actor, invitation_id)
        if not ask_workflow:
            return detail
        handle = self._client.get_workflow_handle(await self._workflow_of(invitation_id))
        try:
            live = await self._services.temporal(handle.query(InvitationWorkflow.status))
        except (RPCError, WorkflowQueryFailedError, Refused):
            # Its history is gone (retention), it never ran here, or no worker answered in
            # time: the stored invitation is the answer.
            live = None
        return detail.model_copy(update={"live": live})

    async def of_partner(
        self, actor: Actor, partner_id: UUID, *, state: InvitationState | None, limit: int, cursor: str | None
    ) -> InvitationList:
        await self.authorize.held_partner(actor, partner_id, or_admin=True)
        return await self._reads.invitations(partner_id=partner_id, state=state, limit=limit, cursor=cursor)

    async def of_enterprise(
        self, actor: Actor, enterprise_id: str, *, state: InvitationState | None, limit: int, cursor: str | None
    ) -> InvitationList:
        actor.require_account_holder_of(enterprise_id)
        return await self._reads.invitations(enterprise_id=enterprise_id, state=state, limit=limit, cursor=cursor)

    async def resend(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """Sends a new mail now; revives an expired invitation (R7). Its workflow decides;
        the invitee's daily mail quota is claimed first, and given back if it refuses."""
        detail = await self.authorize.invitation(actor, invitation_id)
        if detail.partner_status is PartnerStatus.SUSPENDED:  # R23: its mails wait
            raise Refused(ErrorCode.PARTNER_SUSPENDED, "The partner's access is suspended; resume it first.")
        async with self._stores.mail_quota.spending(detail.partner_id, detail.email):
            request = ResendRequest(actor=actor.email, operator=actor.role is ActorRole.OPERATOR)
            return await self._update(actor, detail, InvitationWorkflow.resend, request, revive=True)

    async def cancel(self, actor: Actor, invitation_id: UUID) -> InvitationDetail:
        """Cancels a pending invitation (R7). Its workflow decides."""
        detail = await self.authorize.invitation(actor, invitation_id)
        request = CancelRequest(actor=actor.email)
        return await self._update(actor, detail, InvitationWorkflow.cancel, request, revive=False)

    async def _update(
        self,
        actor: Actor,
        detail: InvitationDetail,
        update: UpdateMethodMultiParam[[InvitationWorkflow, P], InvitationStatus],
        request: P,
        *,
        revive: bool,
    ) -> InvitationDetail:
        """An update to the workflow that runs the invitation, answered with its status
        (see `_taken_over`): it revives an expired invitation when `revive`."""
        take_over = TakeOver(actor=actor.email, revive=revive)
        live = await self._taken_over(
            detail.id, update, request, take_over, summary="Invitation taken over by hand", detail=detail
        )
        return (await self._invitation(detail.id)).model_copy(update={"live": live})

    async def _taken_over(
        self,
        invitation_id: UUID,
        update: UpdateMethodMultiParam[[InvitationWorkflow, P], R],
        request: P,
        take_over: TakeOver,
        *,
        summary: str,
        workflow_id: str | None = None,
        detail: InvitationDetail | None = None,
    ) -> R:
        """The update's answer from the workflow that runs the invitation (its row says
        which). Where that workflow is gone (the invitation closed, or an operator
        terminated it), a new run of its own `invitation-{id}` takes it over and answers:
        it adopts a pending invitation, revives an expired one when asked, refuses any
        other state. Resend, cancel and acceptance all reach an invitation this way.
        `workflow_id` and `detail`, where the caller has them, spare their reads; the
        detail is read only when a run must take the invitation over."""
        workflow_id = workflow_id or await self._workflow_of(invitation_id)
        try:  # the common case: the workflow runs, and answers
            handle = self._client.get_workflow_handle(workflow_id)
            return await self._decided(handle.execute_update(update, request))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        detail = detail or await self._invitation(invitation_id)
        start = self._start_operation(
            InvitationWorkflow.run,
            invitation_input(
                invitation_id,
                partner_id=detail.partner_id,
                enterprise_id=detail.enterprise_id,
                purpose=detail.purpose,
                invitee_email=detail.email,
                timing=self._timing,
                take_over=take_over,
            ),
            id=invitation_workflow_id(invitation_id),
            # Its state is set once the run has taken the invitation over (or refused).
            attributes=search.attributes(
                detail.enterprise_id, detail.partner_id, invitee_domain=detail.email.rpartition("@")[2]
            ),
            summary=summary,
        )
        return await self._decided(
            self._client.execute_update_with_start_workflow(update, request, start_workflow_operation=start)
        )

    async def _workflow_of(self, invitation_id: UUID) -> str:
        """The workflow that runs the invitation, as its row records."""
        workflow_id = await self._reads.invitation_workflow(invitation_id)
        if workflow_id is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        return workflow_id

    # --- acceptance ----------------------------------------------------------------------

    async def accept(self, actor: Actor, token: str) -> InvitationDetail:
        """Acceptance by the signed-in invitee: every bad token the same 404, another
        person 403, and nothing changes for either. Accepting again answers the same
        (a portal's retry); any other closed state is its 409."""
        if actor.role is not ActorRole.PARTNER_USER:
            raise Refused(ErrorCode.FORBIDDEN, "Only the invited person accepts an invitation.")
        page = await self.link(token)
        if page is None:
            raise Refused(ErrorCode.INVALID_LINK, "Not a valid invitation link.")
        if page.email != actor.email:
            raise Refused(ErrorCode.INVITEE_MISMATCH, "This invitation is for someone else: sign in as the invitee.")
        state = page.state
        if state is InvitationState.PENDING:
            state = (await self.accept_link(page, token)).state
        if state is not InvitationState.ACCEPTED:
            raise Refused(ErrorCode.closed_invitation(state.value), f"The invitation is {state.value}.")
        return await self._invitation(page.invitation_id)

    async def link(self, token: str) -> InvitationLinkView | None:
        """The invitation behind a link's token, or None for any token that is not one."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        return await self._reads.invitation_page(token_hash(token))

    async def accept_link(self, page: InvitationLinkView, token: str) -> AcceptResult:
        """The `accept` update to the workflow that runs the invitation, or, where that
        workflow is gone (terminated, a namespace lost), to a new run that takes the
        pending invitation over (R25): the invitee is the one person who cannot work around
        it. Where it closed meanwhile, the database has the answer."""
        request = AcceptRequest(token_hash=token_hash(token).hex(), clicked_at=datetime.now(UTC))
        try:
            return await self._taken_over(
                page.invitation_id,
                InvitationWorkflow.accept,
                request,
                TakeOver(actor="system", revive=False),
                summary="Invitation taken over by its acceptance",
                workflow_id=page.workflow_id,
            )
        except (Refused, WorkflowUpdateFailedError):
            fresh = await self.link(token)
            if fresh is None or fresh.state is InvitationState.PENDING:
                raise  # the workflow's refusal (a suspended partner, say), as it is
            return AcceptResult(state=fresh.state, newly_accepted=False)
