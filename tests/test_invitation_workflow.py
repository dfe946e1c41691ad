"""The invitation loop on the time-skipping server: days of TTL pass in seconds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from partners.ids import onboarding_workflow_id
from partners.models import InvitationState, OnboardingPhase
from tests.helpers.stack import Stack, holder, new_enterprise, unique_domain
from workflows.onboarding import PartnerOnboardingWorkflow

TTL = timedelta(seconds=3 * 24 * 3600)  # the default INVITATION_TTL


async def _register(stack: Stack) -> tuple[str, dict[str, Any], str]:
    enterprise, domain = new_enterprise(), unique_domain()
    created = await stack.register(enterprise, domain)
    assert created.status_code == 201, created.text
    partner = created.json()
    return enterprise, partner, f"ada@{domain}"


async def test_accepted_on_the_first_send(time_stack: Stack) -> None:
    enterprise, partner, admin = await _register(time_stack)
    [mail] = await time_stack.mail.wait_for(admin)

    accepted = await time_stack.http.post(f"{mail.link}/accept")

    assert 'data-outcome="accepted"' in accepted.text
    # The first admin's invitation runs inside the onboarding: one workflow per partner.
    onboarding = time_stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(partner["id"])
    )
    result = await time_stack.result(onboarding)
    assert (result.phase, result.invitation_state) == (OnboardingPhase.ACTIVE, InvitationState.ACCEPTED)
    status = await onboarding.query(PartnerOnboardingWorkflow.status)
    assert (status.state, status.sends) == (InvitationState.ACCEPTED, 1)
    view = (await time_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert view["status"] == "active"
    assert len(time_stack.mail.mails_to(admin)) == 1


async def test_no_click_resends_at_each_ttl_then_expires(time_stack: Stack) -> None:
    enterprise, partner, admin = await _register(time_stack)
    handle = time_stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(partner["id"])
    )
    started = await handle.describe()

    result = await time_stack.result(handle)  # the test server skips the TTLs while we wait

    assert (result.phase, result.invitation_state) == (OnboardingPhase.ADMIN_NOT_ACCEPTED, InvitationState.EXPIRED)
    assert (await handle.query(PartnerOnboardingWorkflow.status)).sends == 3
    mails = time_stack.mail.mails_to(admin)
    assert len(mails) == 3
    assert len({m.link for m in mails}) == 3, "every send carries a new link"
    assert [m.subject.startswith("Lembrete:") for m in mails] == [False, True, True]  # pt-BR: the default
    closed = await time_stack.client.get_workflow_handle(handle.id).describe()
    assert closed.close_time is not None
    # The last send's TTL ends the invitation: three TTLs after the first send.
    assert closed.close_time - started.start_time >= 3 * TTL

    view = (await time_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert view["status"] == "pending"
    [invitation] = await time_stack.invitations(partner["id"], holder(enterprise))
    assert (invitation["state"], invitation["sends"]) == ("expired", 3)
    sent = await time_stack.pool.fetch(
        "SELECT send_number, status, attempts FROM invitation_sends WHERE invitation_id = $1::uuid"
        " ORDER BY send_number",
        invitation["id"],
    )
    assert [tuple(r) for r in sent] == [(1, "sent", 1), (2, "sent", 1), (3, "sent", 1)]
    for mail in mails:  # every link of an expired invitation says so, and accepts nothing
        page = await time_stack.http.post(f"{mail.link}/accept")
        assert 'data-outcome="expired"' in page.text
    assert (
        await time_stack.pool.fetchval("SELECT count(*) FROM members WHERE partner_id = $1::uuid", partner["id"]) == 0
    )


async def test_link_of_an_earlier_send_accepts_while_pending(time_stack: Stack) -> None:
    _, partner, admin = await _register(time_stack)
    [first] = await time_stack.mail.wait_for(admin)
    # One TTL passes: the reminder arrives with a new link.
    await time_stack.env.sleep(TTL + timedelta(minutes=1))
    await time_stack.mail.wait_for(admin, count=2)

    page = await time_stack.http.post(f"{first.link}/accept")

    assert 'data-outcome="accepted"' in page.text
    handle = time_stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(partner["id"])
    )
    assert (await time_stack.result(handle)).invitation_state is InvitationState.ACCEPTED
    audit = await time_stack.pool.fetchval(
        "SELECT details->>'send_number' FROM audit_log WHERE partner_id = $1::uuid AND action = 'invitation_accepted'",
        partner["id"],
    )
    assert audit == "1"
