"""Acceptance racing the expiry timer ends in one deterministic state (R7)."""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.activity_io import AcceptInvitationInput, AcceptInvitationOutput
from partners.ids import invitation_workflow_id
from partners.models import InvitationState
from store.invitations import InvitationStore
from tests.helpers.stack import holder, running_stack
from workflows.invitation import InvitationWorkflow

SLOW = 3.0


class SlowAcceptStore(InvitationStore):
    """The real acceptance, made slow: the expiry timer fires while it is under way."""

    async def accept_invitation(self, input: AcceptInvitationInput) -> AcceptInvitationOutput:
        await asyncio.sleep(SLOW)
        return await super().accept_invitation(input)


async def test_acceptance_under_way_when_the_timer_fires_wins(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(
        dev_env, pool, mail, stores={"invitations": SlowAcceptStore}, invitation_ttl=2, invitation_max_sends=1
    ) as stack:
        partner = await stack.active_partner()  # its admin accepts slowly, before the 2 s TTL
        email = f"late@{partner.domain}"
        invited = (await stack.invite(partner, email)).json()
        [mail_] = await stack.mail.wait_for(email)
        handle = stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invited["id"]))

        # Clicked just before the TTL ends; the acceptance takes longer than what is left.
        page = await stack.http.post(f"{mail_.link}/accept")

        assert 'data-outcome="accepted"' in page.text
        assert (await stack.result(handle)).state is InvitationState.ACCEPTED
        stored = await stack.stores.reads.get_invitation(invited["id"])
        assert stored is not None and stored.state is InvitationState.ACCEPTED
        view = (await stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
        assert email in [m["email"] for m in view["members"]]
        actions = await stack.pool.fetch(
            "SELECT action FROM audit_log WHERE details->>'invitation_id' = $1", invited["id"]
        )
        assert "invitation_expired" not in [a["action"] for a in actions]


async def test_acceptance_after_the_expiry_is_refused(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, invitation_ttl=1, invitation_max_sends=1) as stack:
        partner = await stack.active_partner()
        email = f"later@{partner.domain}"
        invited = (await stack.invite(partner, email)).json()
        [mail_] = await stack.mail.wait_for(email)
        handle = stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invited["id"]))
        assert (await stack.result(handle)).state is InvitationState.EXPIRED

        page = await stack.http.post(f"{mail_.link}/accept")

        assert 'data-outcome="expired"' in page.text
        assert email not in [
            r["email"]
            for r in await stack.pool.fetch("SELECT email FROM members WHERE partner_id = $1::uuid", partner.id)
        ]
