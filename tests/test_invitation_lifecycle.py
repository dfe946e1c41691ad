"""R7 by hand and by failure, on the time-skipping server: resend, revive, SMTP 4xx and 5xx."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from partners.ids import invitation_workflow_id, onboarding_workflow_id
from partners.models import InvitationState, InvitationStatus, OnboardingPhase, OnboardingResult
from tests.helpers.stack import ActivePartner, Stack, holder, new_enterprise, partner_user, unique_domain
from tests.helpers.waiting import eventually
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow

TTL = timedelta(days=3)


async def _member_invitation(stack: Stack, partner: ActivePartner, email: str) -> str:
    invited = await stack.invite(partner, email)
    assert invited.status_code == 201, invited.text
    invitation_id: str = invited.json()["id"]
    return invitation_id


async def _status(stack: Stack, invitation_id: str) -> InvitationStatus:
    handle = stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation_id))
    return await handle.query(InvitationWorkflow.status)


async def test_query_and_partner_view_agree(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    invitation_id = await _member_invitation(time_stack, partner, f"q@{partner.domain}")
    await time_stack.delivered(f"q@{partner.domain}")

    live = await _status(time_stack, invitation_id)
    stored = (await time_stack.http.get(f"/v1/invitations/{invitation_id}", headers=holder(partner.enterprise))).json()

    assert (live.state, live.sends, live.max_sends) == (InvitationState.PENDING, 1, 3)
    assert live.next_send_at is not None and live.expires_at is not None
    assert live.expires_at - live.next_send_at == 2 * TTL
    assert (stored["state"], stored["sends"]) == ("pending", 1)
    assert stored["next_send_at"] == live.next_send_at.isoformat().replace("+00:00", "Z")
    assert stored["expires_at"] == live.expires_at.isoformat().replace("+00:00", "Z")
    assert stored["live"] is None, "the stored row agrees with the workflow: the portal's read asks none"


async def test_resend_by_hand_sends_now_and_restarts_the_ttl(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    email = f"r@{partner.domain}"
    invitation_id = await _member_invitation(time_stack, partner, email)
    await time_stack.delivered(email)
    await time_stack.env.sleep(TTL + TTL / 2)  # one automatic reminder, then half a TTL
    await time_stack.delivered(email, 2)
    before = await _status(time_stack, invitation_id)

    resent = await time_stack.http.post(f"/v1/invitations/{invitation_id}/resend", headers=partner_user(partner.admin))

    assert resent.status_code == 200, resent.text
    mails = await time_stack.delivered(email, 3)
    live = await _status(time_stack, invitation_id)
    assert live.sends == 3 and resent.json()["live"]["sends"] == 3
    assert live.next_send_at is not None and before.next_send_at is not None
    assert live.next_send_at > before.next_send_at, "the TTL restarted from the resend"
    assert live.expires_at is not None and live.expires_at - live.next_send_at == 2 * TTL, "a fresh budget"
    assert len({m.link for m in mails}) == 3
    for mail in mails:  # every link works while pending; the first one accepts
        page = await time_stack.http.get(mail.link)
        assert 'id="accept"' in page.text
    assert (
        await time_stack.pool.fetchval(
            "SELECT actor FROM audit_log WHERE action = 'invitation_resent' AND details->>'invitation_id' = $1",
            invitation_id,
        )
        == partner.admin
    )


async def test_resend_revives_an_expired_invitation(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    email = f"x@{partner.domain}"
    invitation_id = await _member_invitation(time_stack, partner, email)
    handle = time_stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation_id))
    assert (await time_stack.result(handle)).state is InvitationState.EXPIRED
    old = await time_stack.delivered(email, 3)

    revived = await time_stack.http.post(f"/v1/invitations/{invitation_id}/resend", headers=holder(partner.enterprise))

    assert revived.status_code == 200, revived.text
    assert revived.json()["state"] == "pending"
    assert (revived.json()["live"]["sends"], revived.json()["live"]["state"]) == (4, "pending")
    mails = await time_stack.delivered(email, 4)
    # R7: a revived invitation is a new one with new links; the expired period's stay dead.
    for mail in old:
        assert 'data-outcome="expired"' in (await time_stack.http.get(mail.link)).text
    assert 'data-outcome="expired"' in (await time_stack.http.post(f"{old[0].link}/accept")).text
    page = await time_stack.http.post(f"{mails[-1].link}/accept")
    assert 'data-outcome="accepted"' in page.text
    view = (await time_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
    assert email in [m["email"] for m in view["members"]]
    actions = [
        r["action"]
        for r in await time_stack.pool.fetch(
            "SELECT action FROM audit_log WHERE details->>'invitation_id' = $1 ORDER BY id", invitation_id
        )
    ]
    assert actions[-4:] == ["invitation_expired", "invitation_revived", "invitation_resent", "invitation_accepted"]


async def test_temporary_smtp_failure_is_retried_and_delivered_once(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    email = f"t@{partner.domain}"
    time_stack.mail.fail_next(2)  # 421 twice, then the server takes it

    invitation_id = await _member_invitation(time_stack, partner, email)
    await time_stack.env.sleep(timedelta(minutes=2))  # the activity's retry backoff

    mails = await time_stack.delivered(email)
    live = await _status(time_stack, invitation_id)
    assert len(mails) == 1 and len(time_stack.mail.mails_to(email)) == 1
    assert (live.state, live.sends) == (InvitationState.PENDING, 1)
    stored = await time_stack.pool.fetchrow(
        "SELECT i.last_error, s.attempts FROM invitations i JOIN invitation_sends s ON s.invitation_id = i.id"
        " WHERE i.id = $1::uuid",
        invitation_id,
    )
    assert stored is not None and (stored["last_error"], stored["attempts"]) == (None, 3)


async def test_permanent_smtp_refusal_makes_it_undeliverable(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    email = f"gone@{partner.domain}"
    time_stack.mail.refuse_recipient(email, "550 5.1.1 <gone>: mailbox does not exist")

    invitation_id = await _member_invitation(time_stack, partner, email)
    handle = time_stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invitation_id))
    result = await time_stack.result(handle)

    assert result.state is InvitationState.UNDELIVERABLE
    live = await handle.query(InvitationWorkflow.status)
    assert live.last_error is not None and "mailbox does not exist" in live.last_error
    view = (await time_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
    assert view["invitations"] == [] and view["invitation_counts"]["undeliverable"] == 1
    every = await time_stack.invitations(partner.id, holder(partner.enterprise))
    [invitation] = [i for i in every if i["id"] == invitation_id]
    assert invitation["state"] == "undeliverable"
    assert invitation["last_error"].startswith("550") and "mailbox does not exist" in invitation["last_error"]
    assert time_stack.mail.mails_to(email) == []
    # The mailbox comes back: the account holder resends, and the mail goes out.
    time_stack.mail.accept_recipient(email)
    resend = await time_stack.http.post(f"/v1/invitations/{invitation_id}/resend", headers=holder(partner.enterprise))
    assert resend.status_code == 200, resend.text
    assert resend.json()["state"] == "pending"
    [mail] = await time_stack.delivered(email)
    assert 'data-outcome="accepted"' in (await time_stack.http.post(f"{mail.link}/accept")).text


async def test_permanent_smtp_error_not_about_the_recipient_is_retried(time_stack: Stack) -> None:
    """A 5xx at MAIL FROM is our relay configuration, not the invitee's mailbox: retried
    with backoff, shown meanwhile, and the mail goes out once the relay takes it."""
    partner = await time_stack.active_partner()
    email = f"cfg@{partner.domain}"
    time_stack.mail.refuse_next_senders(1_000)
    try:
        invitation_id = await _member_invitation(time_stack, partner, email)
        ready = (  # the first attempt fails: readiness says why
            await eventually(lambda: time_stack.operator.get("/readyz"), lambda r: r.json()["mail"] != "ok")
        ).json()
        assert ready["mail"].startswith("degraded") and "553" in ready["mail"]
        stored = await time_stack.pool.fetchval("SELECT last_error FROM invitations WHERE id = $1::uuid", invitation_id)
        assert stored.startswith("553")
    finally:
        time_stack.mail.refuse_next_senders(0)  # the relay is fixed
    await time_stack.env.sleep(timedelta(minutes=30))  # the activity's retry backoff

    [mail] = await time_stack.delivered(email)
    live = await _status(time_stack, invitation_id)
    assert (live.state, live.sends) == (InvitationState.PENDING, 1)
    attempts = await time_stack.pool.fetchval(
        "SELECT (details->>'attempts')::int FROM audit_log WHERE action = 'invitation_sent'"
        " AND details->>'invitation_id' = $1",
        invitation_id,
    )
    assert attempts >= 2, "retried, then sent once"
    assert len(time_stack.mail.mails_to(email)) == 1 and mail.link
    assert (await time_stack.operator.get("/readyz")).json()["mail"] == "ok"


# --- the first admin's invitation, which its partner's onboarding runs ---------------------


async def _pending_partner(stack: Stack) -> tuple[str, dict[str, Any], str, WorkflowHandle[Any, OnboardingResult]]:
    enterprise, domain = new_enterprise(), unique_domain()
    created = await stack.register(enterprise, domain)
    assert created.status_code == 201, created.text
    partner = created.json()
    onboarding = stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(partner["id"])
    )
    return enterprise, partner, f"ada@{domain}", onboarding


async def test_first_admin_invitation_resent_and_cancelled_through_its_onboarding(time_stack: Stack) -> None:
    enterprise, partner, admin, onboarding = await _pending_partner(time_stack)
    invitation_id = partner["admin_invitation"]["id"]
    await time_stack.delivered(admin)

    shown = await time_stack.http.get(f"/v1/invitations/{invitation_id}", headers=holder(enterprise))
    await time_stack.env.sleep(timedelta(seconds=61))  # past the resend cooldown
    resent = await time_stack.http.post(f"/v1/invitations/{invitation_id}/resend", headers=holder(enterprise))

    assert (shown.json()["state"], shown.json()["sends"]) == ("pending", 1)
    assert resent.status_code == 200, resent.text
    assert resent.json()["live"]["sends"] == 2
    mails = await time_stack.delivered(admin, 2)
    cancelled = await time_stack.http.post(f"/v1/invitations/{invitation_id}/cancel", headers=holder(enterprise))
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
    result = await time_stack.result(onboarding)
    assert (result.phase, result.invitation_state) == (OnboardingPhase.ADMIN_NOT_ACCEPTED, InvitationState.CANCELLED)
    for mail in mails:
        assert 'data-outcome="cancelled"' in (await time_stack.http.post(f"{mail.link}/accept")).text
    view = (await time_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert (view["status"], view["members"]) == ("pending", [])


async def test_expired_first_admin_invitation_is_revived_in_its_own_workflow(time_stack: Stack) -> None:
    enterprise, partner, admin, onboarding = await _pending_partner(time_stack)
    invitation_id = partner["admin_invitation"]["id"]
    assert (await time_stack.result(onboarding)).invitation_state is InvitationState.EXPIRED
    await time_stack.delivered(admin, 3)

    revived = await time_stack.http.post(f"/v1/invitations/{invitation_id}/resend", headers=holder(enterprise))

    assert revived.status_code == 200, revived.text
    assert (revived.json()["state"], revived.json()["live"]["sends"]) == ("pending", 4)
    owner = await time_stack.pool.fetchval("SELECT workflow_id FROM invitations WHERE id = $1::uuid", invitation_id)
    assert owner == invitation_workflow_id(invitation_id)
    mails = await time_stack.delivered(admin, 4)
    assert 'data-outcome="accepted"' in (await time_stack.http.post(f"{mails[-1].link}/accept")).text
    revival = time_stack.client.get_workflow_handle_for(InvitationWorkflow.run, owner)
    assert (await time_stack.result(revival)).state is InvitationState.ACCEPTED
    view = (await time_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert (view["status"], view["admin"]["email"]) == ("active", admin)


async def test_deactivating_a_pending_partner_ends_its_onboarding(time_stack: Stack) -> None:
    enterprise, partner, admin, onboarding = await _pending_partner(time_stack)
    [mail] = await time_stack.delivered(admin)

    done = await time_stack.http.post(f"/v1/partners/{partner['id']}/deactivate", headers=holder(enterprise))

    assert (done.status_code, done.json()["status"]) == (200, "deactivated")
    result = await time_stack.result(onboarding, timeout=30)
    assert (result.phase, result.invitation_state) == (OnboardingPhase.ADMIN_NOT_ACCEPTED, InvitationState.CANCELLED)
    assert 'data-outcome="accepted"' not in (await time_stack.http.post(f"{mail.link}/accept")).text
    assert len(time_stack.mail.mails_to(admin)) == 1, "no reminder after the deactivation"


async def test_invitation_of_a_terminated_onboarding_is_taken_over_by_a_resend(time_stack: Stack) -> None:
    """An operator terminated the onboarding: its first admin's invitation, still pending,
    has no workflow. A resend moves it to its own, and the new link activates the partner."""
    enterprise, partner, admin, onboarding = await _pending_partner(time_stack)
    invitation_id = partner["admin_invitation"]["id"]
    await time_stack.delivered(admin)
    await onboarding.terminate(reason="operator: stuck")

    resent = await time_stack.http.post(f"/v1/invitations/{invitation_id}/resend", headers=holder(enterprise))

    assert resent.status_code == 200, resent.text
    assert (resent.json()["state"], resent.json()["live"]["sends"]) == ("pending", 2)
    owner = await time_stack.pool.fetchval("SELECT workflow_id FROM invitations WHERE id = $1::uuid", invitation_id)
    assert owner == invitation_workflow_id(invitation_id)
    mails = await time_stack.delivered(admin, 2)
    assert 'data-outcome="accepted"' in (await time_stack.http.post(f"{mails[-1].link}/accept")).text
    view = (await time_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert (view["status"], view["admin"]["email"]) == ("active", admin)
