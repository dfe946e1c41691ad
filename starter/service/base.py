"""What every service shares: the process's connections, the one authorisation, and the
one way a call to a workflow is bounded and its refusal found."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar
from uuid import UUID

from temporalio.client import WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import MethodAsyncSingleParam

from partners.errors import ErrorCode, Refused
from partners.models import ClosedElsewhere, InvitationTiming, InvitationWorkflowRef
from partners.views import InvitationDetail, PartnerView
from starter.authorization import Authorization
from starter.wiring import Wiring
from workflows.invitation import InvitationWorkflow

log = logging.getLogger(__name__)
R = TypeVar("R")
W = TypeVar("W")  # a workflow class
In = TypeVar("In")  # its input


class Service:
    def __init__(self, services: Wiring) -> None:
        self._services = services
        self._settings = services.settings
        self._client = services.client
        self._stores = services.stores
        self._reads = services.stores.reads
        self.authorize = Authorization(services.stores.reads)

    @property
    def _timing(self) -> InvitationTiming:
        return InvitationTiming.of(self._settings)

    def _start_operation(
        self,
        run: MethodAsyncSingleParam[W, In, object],
        input: In,
        *,
        id: str,
        attributes: TypedSearchAttributes,
        summary: str,
        conflict: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.USE_EXISTING,
        reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    ) -> WithStartWorkflowOperation[W, object]:
        """How the API starts a workflow: with the update that answers (update-with-start),
        so the workflow that decides answers, refusals included. By default a workflow per
        business id: joined while it runs, started anew after."""
        return WithStartWorkflowOperation(
            run,
            input,
            id=id,
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=conflict,
            id_reuse_policy=reuse,
            search_attributes=attributes,
            static_summary=summary,
        )

    async def _decided(self, call: Awaitable[R]) -> R:
        """An update's answer, bounded (`Wiring.temporal`); a refusal the workflow
        raised comes back as the same `Refused`."""
        try:
            return await self._services.temporal(call)
        except WorkflowUpdateFailedError as err:
            raise Refused.found_in(err) or err from None

    async def _partner(self, partner_id: UUID) -> PartnerView:
        view = await self._reads.get_partner(partner_id)
        if view is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such partner.")
        return view

    async def _invitation(self, invitation_id: UUID) -> InvitationDetail:
        detail = await self._reads.get_invitation(invitation_id)
        if detail is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
        return detail

    async def _tell_closed(self, invitations: list[InvitationWorkflowRef], reason: str) -> None:
        """Tells the workflows of invitations a committed transaction closed. Their links
        stopped with the commit; a workflow not told now (Temporal unreachable) finds the
        stored state at its next reminder or expiry."""
        await self._tell(invitations, InvitationWorkflow.closed_elsewhere, "closed", ClosedElsewhere(reason=reason))

    async def _tell(self, invitations: list[InvitationWorkflowRef], signal: Any, what: str, *args: Any) -> None:
        """One signal to each invitation's workflow after a commit changed them; the
        commit is the truth, so one that cannot be told now is logged, not refused."""
        for invitation in invitations:
            handle = self._client.get_workflow_handle(invitation.workflow_id)
            try:
                await self._services.temporal(handle.signal(signal, *args))
            except (RPCError, Refused) as err:
                if not (isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND):
                    log.warning("invitation %s %s; its workflow was not told (%s)", invitation.invitation_id, what, err)
