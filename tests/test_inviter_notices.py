"""R24: the person who asked for an invitation is told how it ended, in the language it was
asked in, once per outcome, counted like any mail; NOTIFY_INVITERS turns it off."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher, ReceivedMail
from partners.ids import invitation_workflow_id, onboarding_workflow_id
from tests.helpers.stack import Stack, holder, new_enterprise, running_stack, unique_domain

TTL = timedelta(days=3)
HOLDER = holder("x")["X-Actor-Email"]


async def test_the_admin_hears_that_a_member_invitation_expired_in_its_language(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    invited = await time_stack.invite(partner, f"slow@{partner.domain}", locale="en")
    assert invited.status_code == 201, invited.text
    handle = time_stack.client.get_workflow_handle(invitation_workflow_id(invited.json()["id"]))

    result = await time_stack.result(handle)

    assert result["state"] == "expired"
    notices = [m for m in time_stack.mail.mails_to(partner.admin) if "expired" in m.subject]
    [notice] = notices
    assert notice.subject == f"The invitation of Mel Member to Partner {partner.domain} expired"
    assert f"Mel Member (slow@{partner.domain}) did not answer" in notice.text
    assert "If the address is right, resend the invitation; if not, correct it and invite again." in notice.text
    assert "/invitations/" not in notice.text, "a notice carries no invitation link"
    stored = await time_stack.pool.fetchrow(
        "SELECT outcome, status FROM inviter_notices WHERE invitation_id = $1::uuid", invited.json()["id"]
    )
    assert stored is not None and (stored["outcome"], stored["status"]) == ("expired", "sent")
    counted = await time_stack.pool.fetchval(
        "SELECT count(*) FROM mail_quota WHERE partner_id = $1::uuid AND domain = $2", partner.id, partner.domain
    )
    assert counted >= 3, "the invitee's mails and the Admin's notices count against the partner's quota"


async def test_the_account_holder_hears_the_first_admin_accepted_with_the_next_step(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, portal_url="https://portal.example/signin") as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        created = await stack.register(enterprise, domain, name="Pied Piper")
        [invitation] = await stack.mail.wait_for(f"ada@{domain}")
        await stack.http.post(f"{invitation.link}/accept")
        await stack.result(stack.client.get_workflow_handle(onboarding_workflow_id(created.json()["id"])), timeout=30)

        notices = await _notices(stack, HOLDER, "Pied Piper está ativo")
        [notice] = [m for m in notices if domain in m.text]
        assert notice.subject == "Pied Piper está ativo: Ada Admin aceitou o convite"
        next_step = "Próximo passo: em Parceiros, abra Pied Piper e libere os Produtos e APIs que ele vai usar."
        assert next_step in notice.text
        assert "https://portal.example/signin" in notice.text
        assert 'href="https://portal.example/signin"' in notice.html


async def test_nobody_is_told_when_notify_inviters_is_off(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, notify_inviters=False) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        created = await stack.register(enterprise, domain, name="Quiet Co")
        [invitation] = await stack.mail.wait_for(f"ada@{domain}")
        await stack.http.post(f"{invitation.link}/accept")
        await stack.result(stack.client.get_workflow_handle(onboarding_workflow_id(created.json()["id"])), timeout=30)
        await asyncio.sleep(1)  # a notice would have been mailed within the workflow's run, before its result

        assert not [m for m in stack.mail.mails_to(HOLDER) if "Quiet Co" in m.subject]
        assert (
            await stack.pool.fetchval(
                "SELECT count(*) FROM inviter_notices n JOIN invitations i ON i.id = n.invitation_id"
                " WHERE i.partner_id = $1::uuid",
                created.json()["id"],
            )
            == 0
        )


async def _notices(stack: Stack, address: str, subject: str) -> list[ReceivedMail]:
    async with asyncio.timeout(20):
        while not (found := [m for m in stack.mail.mails_to(address) if subject in m.subject]):
            await asyncio.sleep(0.05)
    return found


async def test_the_account_holder_hears_the_new_admin_accepted(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    replaced = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/admin",
        json={"first_name": "Nia", "last_name": "New", "email": f"nia@{partner.domain}"},
        headers=holder(partner.enterprise, "rita@enterprise.example"),
    )
    assert replaced.status_code == 202, replaced.text
    [invitation] = await dev_stack.delivered(f"nia@{partner.domain}")
    await dev_stack.http.post(f"{invitation.link}/accept")

    [notice] = await _notices(dev_stack, "rita@enterprise.example", "Nia New é Admin de")
    assert notice.subject == f"Nia New é Admin de Partner {partner.domain}"
    assert "quem era Admin passou a Membro" in notice.text
