"""Acceptance bound to the person: the portal's own page (ACCEPT_URL) and POST /v1/invitations/accept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.settings import Settings
from tests.helpers.stack import Stack, holder, new_enterprise, partner_user, running_stack, unique_domain

PORTAL_PAGE = "https://portal.example/partners/accept?token={token}"


@pytest.fixture
async def portal_stack(dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher) -> AsyncIterator[Stack]:
    """The service with the portal's own accept page (ACCEPT_URL) set."""
    async with running_stack(dev_env, pool, mail, accept_url=PORTAL_PAGE) as stack:
        yield stack


async def test_only_the_signed_in_invitee_accepts(portal_stack: Stack, pool: asyncpg.Pool) -> None:
    stack = portal_stack  # the name the steps below use
    enterprise, domain = new_enterprise(), unique_domain()
    created = (await stack.register(enterprise, domain)).json()
    admin = f"ada@{domain}"
    [invitation_mail] = await stack.delivered(admin)
    # The mail links to the portal's page, with the token; not to ours.
    token = invitation_mail.token
    assert f"https://portal.example/partners/accept?token={token}" in invitation_mail.text
    assert "/invitations/" not in invitation_mail.text

    async def accept(email: str, token: str = token, role: str = "partner_user") -> tuple[int, dict[str, str]]:
        headers = {**partner_user(email), "X-Actor-Role": role, "X-Actor-Enterprise": enterprise}
        response = await stack.http.post("/v1/invitations/accept", json={"token": token}, headers=headers)
        return response.status_code, response.json()

    async def footprint() -> tuple[str, str, int]:
        row = await pool.fetchrow(
            "SELECT p.status, i.state, (SELECT count(*) FROM members m WHERE m.partner_id = p.id) AS members"
            " FROM partners p JOIN invitations i ON i.partner_id = p.id WHERE p.id = $1::uuid",
            created["id"],
        )
        assert row is not None
        return row["status"], row["state"], row["members"]

    wrong_person = await accept(f"bob@{domain}")
    assert (wrong_person[0], wrong_person[1]["code"]) == (403, "invitee_mismatch")
    as_holder = await accept(admin, role="account_holder")
    assert (as_holder[0], as_holder[1]["code"]) == (403, "forbidden")
    bad = [await accept(admin, t) for t in ("A" * 43, "short", token[:-1] + ("A" if token[-1] != "A" else "B"))]
    assert {(status, body["code"], body["detail"]) for status, body in bad} == {
        (404, "invalid_link", "Not a valid invitation link.")
    }, "every bad token gets the same answer"
    assert await footprint() == ("pending", "pending", 0), "nothing changed"

    status, accepted = await accept(admin.upper())

    assert status == 200, accepted
    assert (accepted["email"], accepted["state"], accepted["partner_status"]) == (admin, "accepted", "active")
    assert await footprint() == ("active", "accepted", 1)
    # A retry (the portal timed out, say) answers the same, and changes nothing.
    again = await accept(admin)
    assert (again[0], again[1]["state"]) == (200, "accepted")
    assert await footprint() == ("active", "accepted", 1)
    view = await stack.http.get(f"/v1/partners/{created['id']}", headers=holder(enterprise))
    assert view.json()["admin"] == {"first_name": "Ada", "last_name": "Admin", "email": admin, "status": "active"}


@pytest.mark.parametrize("url", ["https://portal.example/accept", "ftp://x/{token}", "https://x/{token}/{token}"])
def test_an_accept_url_without_one_token_place_is_refused_at_start(url: str) -> None:
    with pytest.raises(ValidationError, match="ACCEPT_URL"):
        Settings(accept_url=url)


async def test_with_an_accept_url_our_page_only_points_to_the_portal(portal_stack: Stack, pool: asyncpg.Pool) -> None:
    """This page cannot tell who clicks: with the portal's page set, it never accepts."""
    stack = portal_stack
    enterprise, domain = new_enterprise(), unique_domain()
    created = (await stack.register(enterprise, domain)).json()
    [invitation_mail] = await stack.delivered(f"ada@{domain}")
    token = invitation_mail.token

    shown = await stack.http.get(f"/invitations/{token}")
    assert shown.status_code == 200
    assert f'href="https://portal.example/partners/accept?token={token}"' in shown.text
    assert 'id="accept"' not in shown.text and "<form" not in shown.text, "no button here"
    tried = await stack.http.post(f"/invitations/{token}/accept")
    assert tried.status_code == 403
    assert f"https://portal.example/partners/accept?token={token}" in tried.text
    row = await pool.fetchrow(
        "SELECT p.status, i.state FROM partners p JOIN invitations i ON i.partner_id = p.id WHERE p.id = $1::uuid",
        created["id"],
    )
    assert row is not None and (row["status"], row["state"]) == ("pending", "pending"), "nothing accepted"
