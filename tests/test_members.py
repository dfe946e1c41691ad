"""Members: the partner's Admin invites people of the same company (R5, R6, R7)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tests.helpers.stack import Stack, holder, new_enterprise, partner_user, unique_domain

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


async def _member_rows(stack: Stack, partner_id: str) -> tuple[int, int]:
    row = await stack.pool.fetchrow(
        "SELECT (SELECT count(*) FROM invitations WHERE partner_id = $1::uuid),"
        " (SELECT count(*) FROM members WHERE partner_id = $1::uuid)",
        partner_id,
    )
    assert row is not None
    return (row[0], row[1])


async def test_admin_invites_a_member_who_accepts(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"mel+portal@{partner.domain}"

    invited = await dev_stack.invite(partner, member.upper(), locale="en")

    assert invited.status_code == 201, invited.text
    invitation = invited.json()
    assert (invitation["email"], invitation["role"], invitation["state"]) == (member, "member", "pending")
    assert (invitation["purpose"], invitation["locale"], invitation["invited_by"]) == ("member", "en", partner.admin)
    [mail] = await dev_stack.delivered(member)
    stored = (
        await dev_stack.http.get(f"/v1/invitations/{invitation['id']}", headers=partner_user(partner.admin))
    ).json()
    expires = datetime.fromisoformat(stored["expires_at"]).strftime("%Y-%m-%d %H:%M UTC")
    # The mail names the enterprise, the partner, the role, the inviter and the expiry.
    assert f"{partner.enterprise} invites you to join Partner {partner.domain}" in mail.text
    assert "as Member" in mail.text and f"Invited by {partner.admin}." in mail.text
    assert f"valid until {expires}." in mail.text
    assert mail.message["To"] == f"Mel Member <{member}>"
    page = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="accepted"' in page.text
    view = (await dev_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
    assert [(m["email"], m["role"]) for m in view["members"]] == [(partner.admin, "admin"), (member, "member")]
    assert view["admin"]["email"] == partner.admin
    detail = await dev_stack.http.get(f"/v1/invitations/{invitation['id']}", headers=partner_user(partner.admin))
    assert detail.json()["state"] == "accepted"


async def test_member_invitation_refusals_change_nothing(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    first = await dev_stack.invite(partner, f"bob@{partner.domain}")
    assert first.status_code == 201
    before = await _member_rows(dev_stack, partner.id)
    url = f"/v1/partners/{partner.id}/invitations"
    body = {"first_name": "Eve", "last_name": "E", "email": f"eve@{partner.domain}"}

    cases = {
        "account holder": (
            await dev_stack.http.post(url, json=body, headers=holder(partner.enterprise)),
            403,
            "forbidden",
        ),
        # Invited, not a member: to them the partner does not exist (R12).
        "not a member": (
            await dev_stack.http.post(url, json=body, headers=partner_user(f"bob@{partner.domain}")),
            404,
            "not_found",
        ),
        "suffix trick": (
            await dev_stack.invite(partner, f"eve@{partner.domain}.evil.example"),
            422,
            "domain_not_registered",
        ),
        "subdomain": (await dev_stack.invite(partner, f"eve@sub.{partner.domain}"), 422, "domain_not_registered"),
        "twice": (await dev_stack.invite(partner, f"BOB@{partner.domain}"), 409, "already_invited"),
        "the admin": (await dev_stack.invite(partner, partner.admin), 409, "already_member"),
        "crlf": (
            await dev_stack.invite(partner, f"eve@{partner.domain}", last_name="E\r\nBcc: x"),
            422,
            "invalid_input",
        ),
        "unknown partner": (
            await dev_stack.http.post(
                "/v1/partners/00000000-0000-4000-8000-000000000000/invitations",
                json=body,
                headers=partner_user(partner.admin),
            ),
            404,
            "not_found",
        ),
    }

    for name, (response, status, code) in cases.items():
        assert (response.status_code, response.json()["code"]) == (status, code), name
        assert response.headers["content-type"] == "application/problem+json"
    assert cases["twice"][0].json()["invitation_id"] == first.json()["id"]
    assert await _member_rows(dev_stack, partner.id) == before


async def test_no_member_invitation_before_the_partner_is_active(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    created = (await dev_stack.register(enterprise, domain)).json()

    response = await dev_stack.http.post(
        f"/v1/partners/{created['id']}/invitations",
        json={"first_name": "Mel", "last_name": "M", "email": f"mel@{domain}"},
        headers=partner_user(f"ada@{domain}"),
    )

    # Nobody is the Admin yet, so nobody may invite: the invited admin is no member yet,
    # and to a non-member the partner does not exist (R12).
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert (
        await dev_stack.pool.fetchval("SELECT count(*) FROM invitations WHERE partner_id = $1::uuid", created["id"])
        == 1
    )


async def test_concurrent_invitations_of_one_address_keep_one(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()

    async with asyncio.timeout(30):
        responses = await asyncio.gather(*(dev_stack.invite(partner, f"zoe@{partner.domain}") for _ in range(8)))

    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert (
        await dev_stack.pool.fetchval(
            "SELECT count(*) FROM invitations WHERE partner_id = $1::uuid AND email = $2",
            partner.id,
            f"zoe@{partner.domain}",
        )
        == 1
    )


@pytest.mark.parametrize("who", ["holder", "admin"])
async def test_cancel_by_hand_stops_every_link(dev_stack: Stack, who: str) -> None:
    partner = await dev_stack.active_partner()
    invited = (await dev_stack.invite(partner, f"cy@{partner.domain}")).json()
    [mail] = await dev_stack.delivered(f"cy@{partner.domain}")
    headers = holder(partner.enterprise) if who == "holder" else partner_user(partner.admin)

    cancelled = await dev_stack.http.post(f"/v1/invitations/{invited['id']}/cancel", headers=headers)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["live"]["state"] == "cancelled"
    page = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="cancelled"' in page.text
    again = await dev_stack.http.post(f"/v1/invitations/{invited['id']}/cancel", headers=headers)
    resend = await dev_stack.http.post(f"/v1/invitations/{invited['id']}/resend", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "invitation_cancelled")
    assert (resend.status_code, resend.json()["code"]) == (409, "invitation_cancelled")
    assert (
        await dev_stack.pool.fetchval(
            "SELECT actor FROM audit_log WHERE partner_id = $1::uuid AND action = 'invitation_cancelled'", partner.id
        )
        == headers["X-Actor-Email"]
    )
    assert (
        await dev_stack.pool.fetchval(
            "SELECT count(*) FROM members WHERE partner_id = $1::uuid AND email = $2",
            partner.id,
            f"cy@{partner.domain}",
        )
        == 0
    )


async def test_resend_and_cancel_of_an_accepted_invitation_are_refused(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    view = (await dev_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
    invitation_id = view["admin_invitation"]["id"]

    for action in ("resend", "cancel"):
        response = await dev_stack.http.post(
            f"/v1/invitations/{invitation_id}/{action}", headers=holder(partner.enterprise)
        )
        assert (response.status_code, response.json()["code"]) == (409, "invitation_accepted")
    # The admin may not manage the invitation that made them Admin (an account holder's).
    by_admin = await dev_stack.http.post(f"/v1/invitations/{invitation_id}/cancel", headers=partner_user(partner.admin))
    assert by_admin.status_code == 403
