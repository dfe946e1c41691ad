"""R23: a partner suspended during an incident and resumed exactly as it was, through the
API against real servers: access, links, invitations, mails, events and the races."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from partners.ids import invitation_workflow_id
from partners.models import InvitationState
from tests.helpers.stack import ActivePartner, Stack, holder, new_enterprise, partner_user, unique_domain
from tests.helpers.waiting import eventually
from workflows.invitation import InvitationWorkflow

TTL = timedelta(days=3)


async def _suspend(stack: Stack, partner: ActivePartner, reason: str | None = "incident 42") -> httpx.Response:
    body = {"reason": reason} if reason is not None else None
    return await stack.http.post(f"/v1/partners/{partner.id}/suspend", json=body, headers=holder(partner.enterprise))


async def _resume(stack: Stack, partner: ActivePartner) -> httpx.Response:
    return await stack.http.post(f"/v1/partners/{partner.id}/resume", headers=holder(partner.enterprise))


async def _allowed(stack: Stack, partner: ActivePartner, email: str, ref: str = "maps") -> bool:
    check = await stack.http.get(
        "/v1/access/check",
        params={"enterprise_id": partner.enterprise, "kind": "product", "ref": ref},
        headers=partner_user(email),
    )
    assert check.status_code == 200, check.text
    allowed: bool = check.json()["allowed"]
    return allowed


async def _events(stack: Stack, partner: ActivePartner) -> list[tuple[str, dict[str, Any]]]:
    rows = await stack.pool.fetch(
        "SELECT type, data FROM events WHERE partner_id = $1::uuid AND type LIKE 'partner.%' ORDER BY seq", partner.id
    )
    return [(r["type"], r["data"]) for r in rows]


async def test_a_suspended_partner_grants_nothing_admits_no_one_and_resumes_as_it_was(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner(name="Umbrella")
    granted = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/grants",
        json={"kind": "product", "ref": "maps", "name": "Maps"},
        headers=holder(partner.enterprise),
    )
    assert granted.status_code == 201
    invitee = f"iris@{partner.domain}"
    invitation = (await dev_stack.invite(partner, invitee)).json()
    [mail] = await dev_stack.delivered(invitee)
    assert await _allowed(dev_stack, partner, partner.admin)

    suspended = await _suspend(dev_stack, partner)

    assert suspended.status_code == 200, suspended.text
    view = suspended.json()
    assert (view["status"], view["suspension_reason"]) == ("suspended", "incident 42")
    assert view["suspended_at"] is not None
    # Nothing grants access through it, from the answer on.
    assert not await _allowed(dev_stack, partner, partner.admin)
    access = await dev_stack.http.get("/v1/access", headers=partner_user(partner.admin))
    assert access.json()["memberships"] == []
    # Its link accepts no one; the page says the access is paused and whom to ask.
    page = await dev_stack.http.get(mail.link)
    assert page.status_code == 409 and 'data-outcome="partner_suspended"' in page.text
    accepted = await dev_stack.http.post(f"{mail.link}/accept")
    assert accepted.status_code == 409 and 'data-outcome="partner_suspended"' in accepted.text
    assert "Umbrella" in accepted.text
    # Its Admin cannot invite, and no one resends.
    refused = await dev_stack.invite(partner, f"otto@{partner.domain}")
    assert (refused.status_code, refused.json()["code"]) == (409, "partner_suspended")
    resent = await dev_stack.http.post(f"/v1/invitations/{invitation['id']}/resend", headers=holder(partner.enterprise))
    assert (resent.status_code, resent.json()["code"]) == (409, "partner_suspended")
    # Grants, members and the pending invitation stay as they were.
    stored = await dev_stack.pool.fetchrow("SELECT state, sends FROM invitations WHERE id = $1::uuid", invitation["id"])
    assert stored is not None and (stored["state"], stored["sends"]) == ("pending", 1)
    assert [g["ref"] for g in view["grants"]] == ["maps"]
    assert [m["email"] for m in view["members"]] == [partner.admin]
    # Suspending again changes nothing (no second event).
    again = await _suspend(dev_stack, partner, reason=None)
    assert again.status_code == 200 and again.json()["suspension_reason"] == "incident 42"

    resumed = await _resume(dev_stack, partner)

    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["suspended_at"]) == ("active", None)
    assert await _allowed(dev_stack, partner, partner.admin)
    accepted = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="accepted"' in accepted.text, "the link mailed before works again"
    assert await _allowed(dev_stack, partner, invitee)
    twice = await _resume(dev_stack, partner)
    assert (twice.status_code, twice.json()["code"]) == (409, "partner_not_suspended")
    assert await _events(dev_stack, partner) == [
        ("partner.registered", {"invitation_id": view["admin_invitation"]["id"]}),
        ("partner.activated", {}),
        ("partner.suspended", {"reason": "incident 42"}),
        ("partner.resumed", {"status": "active"}),
    ]
    actors = await dev_stack.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE partner_id = $1::uuid AND action LIKE 'partner_%' ORDER BY id",
        partner.id,
    )
    assert [(r["action"], r["actor"]) for r in actors][-2:] == [
        ("partner_suspended", holder(partner.enterprise)["X-Actor-Email"]),
        ("partner_resumed", holder(partner.enterprise)["X-Actor-Email"]),
    ]


async def test_a_pending_partner_resumes_pending_and_a_suspended_one_can_be_deactivated(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    created = await dev_stack.register(enterprise, domain)
    admin = f"ada@{domain}"
    [mail] = await dev_stack.mail.wait_for(admin)
    partner = ActivePartner(enterprise, created.json()["id"], domain, admin)

    assert (await _suspend(dev_stack, partner, reason=None)).json()["suspension_reason"] is None
    refused = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="partner_suspended"' in refused.text
    assert (await _resume(dev_stack, partner)).json()["status"] == "pending"
    assert 'data-outcome="accepted"' in (await dev_stack.http.post(f"{mail.link}/accept")).text
    api = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/grants",
        json={"kind": "api", "ref": "orders-api", "name": "Orders"},
        headers=holder(enterprise),
    )
    await _suspend(dev_stack, partner)

    # Deactivation from suspended, under the same rule: no API granted.
    blocked = await dev_stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(enterprise))
    assert (blocked.status_code, blocked.json()["code"]) == (409, "api_access_granted")
    await dev_stack.http.delete(f"/v1/partners/{partner.id}/grants/{api.json()['id']}", headers=holder(enterprise))
    ended = await dev_stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(enterprise))
    assert ended.status_code == 200, ended.text
    assert (ended.json()["status"], ended.json()["suspended_at"]) == ("deactivated", None)
    after = await _resume(dev_stack, partner)
    assert (after.status_code, after.json()["code"]) == (409, "partner_deactivated")
    outsider = await dev_stack.http.post(f"/v1/partners/{partner.id}/suspend", headers=holder(new_enterprise()))
    assert outsider.status_code == 404, "another enterprise's holder learns nothing"
    by_admin = await dev_stack.http.post(f"/v1/partners/{partner.id}/resume", headers=partner_user(admin))
    assert by_admin.status_code in (403, 404)
    bad = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/suspend", json={"reason": "x" * 501}, headers=holder(enterprise)
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")


async def test_a_suspend_racing_acceptances_never_leaves_access_open(dev_stack: Stack) -> None:
    """Each round: a suspend and an acceptance at once. Whichever commits first, once
    both answered a suspended partner grants its new member nothing."""
    partner = await dev_stack.active_partner()
    await dev_stack.http.post(
        f"/v1/partners/{partner.id}/grants",
        json={"kind": "product", "ref": "maps", "name": "Maps"},
        headers=holder(partner.enterprise),
    )
    for round_ in range(6):
        invitee = f"r{round_}@{partner.domain}"
        await dev_stack.invite(partner, invitee)
        [mail] = await dev_stack.delivered(invitee)

        page, suspended = await asyncio.gather(dev_stack.http.post(f"{mail.link}/accept"), _suspend(dev_stack, partner))

        assert suspended.status_code == 200
        assert not await _allowed(dev_stack, partner, invitee), f"round {round_}: access open while suspended"
        assert not await _allowed(dev_stack, partner, partner.admin)
        # A grant made while suspended opens nothing either.
        await dev_stack.http.post(
            f"/v1/partners/{partner.id}/grants",
            json={"kind": "product", "ref": f"extra-{round_}", "name": "Extra"},
            headers=holder(partner.enterprise),
        )
        assert not await _allowed(dev_stack, partner, partner.admin, ref=f"extra-{round_}")
        assert (await _resume(dev_stack, partner)).status_code == 200
        if 'data-outcome="accepted"' not in page.text:
            assert 'data-outcome="partner_suspended"' in page.text, page.text
            assert 'data-outcome="accepted"' in (await dev_stack.http.post(f"{mail.link}/accept")).text
        assert await _allowed(dev_stack, partner, invitee), "after the resume, as if nothing happened"


async def test_reminders_wait_while_suspended_and_go_out_after_the_resume(time_stack: Stack) -> None:
    """On the time-skipping server: suspended for nine and a half days, longer than the
    invitation's whole life. No reminder goes out and it does not expire; after the resume
    the held reminder goes out and the link accepts."""
    partner = await time_stack.active_partner()
    invitee = f"held@{partner.domain}"
    invitation = (await time_stack.invite(partner, invitee)).json()
    await time_stack.delivered(invitee)
    handle = time_stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation["id"]))
    await _suspend(time_stack, partner)

    # Half a day past a whole number of days: the held invitation looks again once a day
    # from its reminder's time, and a resume landing as that timer fires meets the
    # time-skipping server's race (it fires the timer under the task that cancels it and
    # then refuses the completion: 'invalid history builder state for action'; a real
    # server answers with the new event and the task runs again).
    await time_stack.env.sleep(3 * TTL + timedelta(hours=12))

    assert len(time_stack.mail.mails_to(invitee)) == 1, "no reminder while suspended"
    status = await handle.query(InvitationWorkflow.status)
    assert (status.state, status.sends) == (InvitationState.PENDING, 1)
    stored = await time_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", invitation["id"])
    assert stored == "pending", "it did not expire while suspended"

    await _resume(time_stack, partner)

    [_, reminder] = await time_stack.delivered(invitee, 2)
    status = await eventually(lambda: handle.query(InvitationWorkflow.status), lambda s: s.sends == 2)
    assert status.state is InvitationState.PENDING
    accepted = await time_stack.http.post(f"{reminder.link}/accept")
    assert 'data-outcome="accepted"' in accepted.text


async def test_an_expiry_due_while_suspended_waits_for_the_resume(time_stack: Stack) -> None:
    """Its last send's time ran out while the partner was suspended: it stays pending and
    its link keeps its place; the resume gives back the time that was left (none here), so
    it expires then, not before."""
    partner = await time_stack.active_partner()
    invitee = f"last@{partner.domain}"
    invitation = (await time_stack.invite(partner, invitee)).json()
    handle = time_stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation["id"]))
    await time_stack.env.sleep(2 * TTL + TTL / 2)  # its third and last mail went out
    await time_stack.delivered(invitee, 3)
    await _suspend(time_stack, partner)

    await time_stack.env.sleep(2 * TTL)

    status = await handle.query(InvitationWorkflow.status)
    assert (status.state, status.sends) == (InvitationState.PENDING, 3)
    stored = await time_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", invitation["id"])
    assert stored == "pending"

    await _resume(time_stack, partner)

    ended = await eventually(
        lambda: handle.query(InvitationWorkflow.status), lambda s: s.state is not InvitationState.PENDING
    )
    assert (ended.state, ended.sends) == (InvitationState.EXPIRED, 3)
    assert len(time_stack.mail.mails_to(invitee)) == 3, "nothing more was mailed"
