"""No one can be mail-bombed through the service: a repeated replacement is refused, and
an address gets at most RECIPIENT_DAILY_LIMIT invitations or resends from one partner a
day (a partner at most PARTNER_DAILY_INVITATION_LIMIT), however they were asked for,
counted in PostgreSQL. What is checked is what the invitee would see: the mails received."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from store.mail_quota import address_hash
from tests.helpers.stack import (
    ActivePartner,
    Stack,
    holder,
    new_enterprise,
    partner_user,
    running_stack,
    unique_domain,
)


async def _mails_to(stack: Stack, address: str) -> int:
    """The mails the address received, once every send the ledger holds for it is one:
    a refused request starts nothing, so no send of it can still be under way."""
    sends = await stack.pool.fetchval(
        "SELECT count(*) FROM invitation_sends s JOIN invitations i ON i.id = s.invitation_id WHERE i.email = $1",
        address,
    )
    await stack.delivered(address, sends) if sends else None
    return len(stack.mail.mails_to(address))


def _refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_repeating_a_replacement_does_not_mail_the_new_admin_again(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    nia = f"nia@{partner.domain}"

    async def replace() -> httpx.Response:
        return await dev_stack.http.post(
            f"/v1/partners/{partner.id}/admin",
            json={"first_name": "Nia", "last_name": "New", "email": nia},
            headers=holder(partner.enterprise),
        )

    first = await replace()
    assert first.status_code == 202, first.text
    await dev_stack.delivered(nia)
    for _ in range(3):
        again = _refused(await replace(), 409, "already_invited")
        assert again["invitation_id"] == first.json()["id"]
    assert await _mails_to(dev_stack, nia) == 1
    kept = await dev_stack.pool.fetch(
        "SELECT state FROM invitations WHERE partner_id = $1::uuid AND email = $2", partner.id, nia
    )
    assert [r["state"] for r in kept] == ["pending"], "the first invitation stands, not superseded"


async def test_invite_then_cancel_cycles_stop_at_the_daily_limit(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, recipient_daily_limit=3) as stack:
        partner = await stack.active_partner()
        mel = f"mel@{partner.domain}"
        for n in range(1, 4):
            invited = await stack.invite(partner, mel)
            assert invited.status_code == 201, invited.text
            await stack.delivered(mel, n)
            cancelled = await stack.http.post(
                f"/v1/invitations/{invited.json()['id']}/cancel", headers=partner_user(partner.admin)
            )
            assert cancelled.status_code == 200, cancelled.text
        # Another API process (its own settings, the same database and task queue) counts the same.
        queue = stack.settings.temporal_task_queue
        async with running_stack(
            dev_env, pool, mail, with_worker=False, recipient_daily_limit=3, temporal_task_queue=queue
        ) as other:
            refused = await other.invite(partner, mel)
        _refused(refused, 429, "too_many_invitations")
        assert 23 * 3600 < int(refused.headers["Retry-After"]) <= 24 * 3600
        assert await _mails_to(stack, mel) == 3
        # Another address of the same partner is not held by this one's limit.
        assert (await stack.invite(partner, f"max@{partner.domain}")).status_code == 201


async def test_resends_and_revivals_count_and_a_refused_request_costs_nothing(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, recipient_daily_limit=3, resend_cooldown=0) as stack:
        partner = await stack.active_partner()
        mel = f"mel@{partner.domain}"
        invited = await stack.invite(partner, mel)
        assert invited.status_code == 201, invited.text
        resend_url = f"/v1/invitations/{invited.json()['id']}/resend"
        # Refused for another reason before any mail: a domain outside the partner's.
        _refused(await stack.invite(partner, "mel@elsewhere.example"), 422, "domain_not_registered")
        for n in (2, 3):
            await stack.delivered(mel, n - 1)
            resent = await stack.http.post(resend_url, headers=partner_user(partner.admin))
            assert resent.status_code == 200, resent.text
        await stack.delivered(mel, 3)
        refused = _refused(
            await stack.http.post(resend_url, headers=holder(partner.enterprise)), 429, "too_many_invitations"
        )
        assert refused["limit"] == 3
        assert await _mails_to(stack, mel) == 3
        counted = await pool.fetchval(
            "SELECT count(*) FROM mail_quota WHERE partner_id = $1::uuid AND email_hash = $2",
            partner.id,
            address_hash(mel),
        )
        assert counted == 3, "the refusals were given back"


async def test_a_partner_sends_a_bounded_number_of_invitations_a_day(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    # The first admin's invitation is one of the partner's three.
    async with running_stack(dev_env, pool, mail, partner_daily_invitation_limit=3) as stack:
        partner: ActivePartner = await stack.active_partner()
        people = [{"first_name": "P", "last_name": str(n), "email": f"p{n}@{partner.domain}"} for n in range(4)]
        batch = await stack.http.post(
            f"/v1/partners/{partner.id}/invitations/batch",
            json={"people": people},
            headers=partner_user(partner.admin),
        )
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        # The batch's rows run side by side: any two are the two the day allows.
        statuses = sorted((r["status"], r.get("code") or "") for r in results)
        assert statuses == [(201, ""), (201, ""), (429, "too_many_invitations"), (429, "too_many_invitations")]
        for person, result in zip(people, results, strict=True):
            if result["status"] == 201:
                await stack.delivered(person["email"])
            assert await _mails_to(stack, person["email"]) == (1 if result["status"] == 201 else 0)


async def test_a_mailbox_is_counted_whatever_its_tag_and_through_every_partner_of_the_enterprise(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """Register, deactivate, register again with `ceo+1@`, `CEO+2@`: each registration
    mails the first admin, and the mailbox's count holds across the partners."""
    async with running_stack(dev_env, pool, mail, recipient_daily_limit=2) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        for n, admin in enumerate((f"ceo@{domain}", f"ceo+1@{domain}")):
            created = await stack.register(enterprise, domain, admin=admin)
            assert created.status_code == 201, created.text
            await stack.delivered(admin)
            gone = await stack.http.post(f"/v1/partners/{created.json()['id']}/deactivate", headers=holder(enterprise))
            assert gone.status_code == 200, (n, gone.text)
        refused = _refused(
            await stack.register(enterprise, domain, admin=f"CEO+2@{domain}"), 429, "too_many_invitations"
        )
        assert refused["limit"] == 2
        assert await pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 2
        assert len(stack.mail.mails_to(f"ceo@{domain}")) + len(stack.mail.mails_to(f"ceo+1@{domain}")) == 2


async def test_an_enterprise_registers_a_bounded_number_of_partners_a_day(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, enterprise_daily_registration_limit=2) as stack:
        enterprise = new_enterprise()
        for _ in range(2):
            created = await stack.register(enterprise, unique_domain())
            assert created.status_code == 201, created.text
            gone = await stack.http.post(f"/v1/partners/{created.json()['id']}/deactivate", headers=holder(enterprise))
            assert gone.status_code == 200, gone.text
        third = unique_domain()
        refused = await stack.register(enterprise, third)
        _refused(refused, 429, "too_many_registrations")
        assert 23 * 3600 < int(refused.headers["Retry-After"]) <= 24 * 3600
        assert await pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 2
        assert stack.mail.mails_to(f"ada@{third}") == []
        # Another enterprise is not held by this one's count.
        assert (await stack.register(new_enterprise(), unique_domain())).status_code == 201


async def test_one_enterprise_mails_a_domain_a_bounded_number_of_times_a_day(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, domain_daily_invitation_limit=3) as stack:
        partner = await stack.active_partner()  # its first admin: one mail to the domain
        for name in ("bea", "cai"):
            invited = await stack.invite(partner, f"{name}@{partner.domain}")
            assert invited.status_code == 201, invited.text
        refused = _refused(await stack.invite(partner, f"dan@{partner.domain}"), 429, "too_many_invitations")
        assert partner.domain in refused["detail"]
        assert stack.mail.mails_to(f"dan@{partner.domain}") == []
