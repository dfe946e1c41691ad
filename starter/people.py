"""The partner's side and the portal's questions: members (R12, R13), invitation lists, a
batch of invitations, signed-in acceptance, and what a person may use (R14).

Built on `Commands`: the same authorisation (`starter/authorization.py`), the same invitation path, the
same refusals.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from partners.errors import ErrorCode, Refused
from partners.models import (
    AcceptRequest,
    AcceptResult,
    ClosedElsewhere,
    GrantKind,
    InvitationState,
    InvitationWorkflowRef,
)
from partners.requests import InviteMemberRequest
from partners.rules import TOKEN_PATTERN, normalize_email, token_hash
from partners.views import (
    Access,
    AccessCheck,
    BatchResult,
    BatchRowResult,
    InvitationDetail,
    InvitationLinkView,
    InvitationList,
    MemberList,
    MembershipView,
)
from starter.auth import Actor, ActorRole
from starter.commands import Commands
from starter.problems import validation_detail
from starter.services import Services
from workflows.invitation import InvitationWorkflow

log = logging.getLogger(__name__)

BATCH_LIMIT = 50
# Invitations of one batch under way at once: each holds the partner's row lock briefly.
_BATCH_CONCURRENCY = 4


def _operator_asks(actor: Actor, email: str) -> str:
    if actor.role is not ActorRole.OPERATOR:
        raise Refused(ErrorCode.FORBIDDEN, "Only an operator exports or erases a person's data.")
    try:  # the stored form of every address (an IDN domain in punycode)
        return normalize_email(email).address
    except ValueError as err:
        raise Refused(ErrorCode.INVALID_INPUT, f"An e-mail address is expected: {err}") from None


class People:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._commands = Commands(services)
        self._stores = services.stores

    # --- members -------------------------------------------------------------------------

    async def members(self, actor: Actor, partner_id: UUID) -> MemberList:
        await self._commands.authorize.seen_by(actor, partner_id)
        return MemberList(members=await self._stores.memberships.members(partner_id))

    async def remove(self, actor: Actor, partner_id: UUID, email: str) -> MembershipView:
        """R13: by the account holder or the partner's Admin."""
        await self._commands.authorize.held_partner(actor, partner_id, or_admin=True)
        try:
            address = normalize_email(email).address
        except ValueError:
            raise Refused(ErrorCode.NOT_A_MEMBER, "This person is not an active member of the partner.") from None
        return await self._end(actor, partner_id, address, "removed")

    async def leave(self, actor: Actor, partner_id: UUID) -> MembershipView:
        """R13: a member ends their own membership; the Admin is replaced, never leaves."""
        _, viewer = await self._commands.authorize.seen_by(actor, partner_id)
        if viewer not in ("admin", "member"):
            raise Refused(ErrorCode.FORBIDDEN, "Only a member of the partner may leave it.")
        return await self._end(actor, partner_id, actor.email, "left")

    async def _end(self, actor: Actor, partner_id: UUID, email: str, reason: Any) -> MembershipView:
        ended, cancelled = await self._stores.memberships.end(partner_id, email, actor=actor.email, reason=reason)
        await self.tell_closed(cancelled, f"membership {reason}")
        return ended

    async def tell_closed(self, invitations: list[InvitationWorkflowRef], reason: str) -> None:
        """Tells the workflows of invitations a committed transaction closed. Their links
        stopped with the commit; a workflow not told now (Temporal unreachable) finds the
        stored state at its next reminder or expiry."""
        client = self._services.client
        for invitation in invitations:
            try:
                await self._services.temporal(
                    client.get_workflow_handle(invitation.workflow_id).signal(
                        InvitationWorkflow.closed_elsewhere, ClosedElsewhere(reason=reason)
                    )
                )
            except (RPCError, Refused) as err:
                if not (isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND):
                    log.warning("invitation %s closed; its workflow was not told (%s)", invitation.invitation_id, err)

    # --- a person's data (R16, LGPD art. 18): operators only ------------------------------

    async def export_person(self, actor: Actor, email: str) -> dict[str, Any]:
        return await self._stores.persons.export(_operator_asks(actor, email))

    async def erase_person(self, actor: Actor, email: str) -> dict[str, Any]:
        """Ends the memberships, cancels the pending invitations (their workflows are
        told), and puts one pseudonym in place of the name and address everywhere."""
        done, cancelled = await self._stores.persons.erase(_operator_asks(actor, email), actor.email)
        await self.tell_closed(cancelled, "person erased")
        return done

    # --- invitations ---------------------------------------------------------------------

    async def partner_invitations(
        self, actor: Actor, partner_id: UUID, *, state: InvitationState | None, limit: int, cursor: str | None
    ) -> InvitationList:
        await self._commands.authorize.held_partner(actor, partner_id, or_admin=True)
        return await self._stores.reads.invitations(partner_id=partner_id, state=state, limit=limit, cursor=cursor)

    async def enterprise_invitations(
        self, actor: Actor, enterprise_id: str, *, state: InvitationState | None, limit: int, cursor: str | None
    ) -> InvitationList:
        actor.require_account_holder_of(enterprise_id)
        return await self._stores.reads.invitations(
            enterprise_id=enterprise_id, state=state, limit=limit, cursor=cursor
        )

    async def invite_batch(self, actor: Actor, partner_id: UUID, people: list[dict[str, Any]]) -> BatchResult:
        """One invitation per person, in order; a refused person does not stop the others."""
        partner = await self._commands.authorize.inviting_partner(actor, partner_id)
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
                    created = await self._commands.invite_into(partner, actor, body)
                except Refused as err:
                    return BatchRowResult(
                        email=body.email, status=err.code.http_status, code=err.code.value, detail=err.detail
                    )
            return BatchRowResult(email=body.email, status=201, invitation=created)

        return BatchResult(results=list(await asyncio.gather(*(one(row) for row in people))))

    # --- signed-in acceptance ------------------------------------------------------------

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
        detail = await self._stores.reads.get_invitation(page.invitation_id)
        assert detail is not None
        return detail

    async def link(self, token: str) -> InvitationLinkView | None:
        """The invitation behind a link's token, or None for any token that is not one."""
        if not TOKEN_PATTERN.fullmatch(token):
            return None
        return await self._stores.reads.invitation_page(token_hash(token))

    async def accept_link(self, page: InvitationLinkView, token: str) -> AcceptResult:
        """The `accept` update to the workflow that runs the invitation; where it closed
        meanwhile, the database has the answer."""
        services = self._services
        handle = services.client.get_workflow_handle(page.workflow_id)
        try:
            result: AcceptResult = await services.temporal(
                handle.execute_update(
                    InvitationWorkflow.accept,
                    AcceptRequest(token_hash=token_hash(token).hex(), clicked_at=datetime.now(UTC)),
                )
            )
        except (WorkflowUpdateFailedError, RPCError) as err:
            if isinstance(err, RPCError) and err.status is not RPCStatusCode.NOT_FOUND:
                raise
            fresh = await self.link(token)
            if fresh is None or fresh.state is InvitationState.PENDING:
                raise
            return AcceptResult(state=fresh.state, newly_accepted=False)
        return result

    # --- access (R14) --------------------------------------------------------------------

    async def access(self, actor: Actor) -> Access:
        return await self._stores.access.access(actor.email)

    async def check(self, actor: Actor, kind: GrantKind, ref: str) -> AccessCheck:
        return await self._stores.access.check(actor.email, kind, ref)
