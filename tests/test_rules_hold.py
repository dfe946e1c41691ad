"""The rules hold on the paths a new user found around them (R6, R7, R8), and Temporal
is no back door: each test here failed before its fix."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.errors import Refused
from partners.ids import invitation_workflow_id, onboarding_workflow_id, replacement_workflow_id
from partners.models import AcceptRequest, InvitationState, Invitee, ReplaceAdminRequest
from tests.helpers.cli import temporal
from tests.helpers.stack import Stack, holder, new_enterprise, partner_user, running_stack, unique_domain
from tests.helpers.waiting import eventually
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.replacement import AdminReplacementWorkflow

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


TTL = timedelta(days=3)


async def _replace_admin(stack: Stack, partner_id: str, enterprise: str, email: str) -> dict[str, Any]:
    answer = await stack.http.post(
        f"/v1/partners/{partner_id}/admin",
        json={"first_name": "New", "last_name": "Admin", "email": email},
        headers=holder(enterprise),
    )
    assert answer.status_code == 202, answer.text
    invitation: dict[str, Any] = answer.json()
    return invitation


async def _expire(stack: Stack, workflow_id: str) -> None:
    handle = stack.client.get_workflow_handle_for(InvitationWorkflow.run, workflow_id)
    assert (await stack.result(handle)).state is InvitationState.EXPIRED


# --- R7: a revived invitation is a new invitation in every rule -------------------------


async def test_reviving_a_member_invitation_of_the_admin_is_refused_and_lowers_nobody(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    bob = f"bob@{partner.domain}"
    member = (await time_stack.invite(partner, bob)).json()
    await _expire(time_stack, invitation_workflow_id(member["id"]))
    # Bob becomes the Admin through a replacement, accepted.
    replacement = await _replace_admin(time_stack, partner.id, partner.enterprise, bob)
    [*_, admin_mail] = await time_stack.mail.wait_for(bob, 4)
    assert 'data-outcome="accepted"' in (await time_stack.http.post(f"{admin_mail.link}/accept")).text
    await time_stack.result(time_stack.client.get_workflow_handle(replacement_workflow_id(partner.id)))

    # Someone resends Bob's old member invitation.
    revived = await time_stack.http.post(f"/v1/invitations/{member['id']}/resend", headers=holder(partner.enterprise))

    assert (revived.status_code, revived.json()["code"]) == (409, "already_member")
    view = (await time_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
    assert view["admin"]["email"] == bob
    assert {m["email"]: m["role"] for m in view["members"]}[bob] == "admin"
    stored = await time_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", member["id"])
    assert stored == "expired", "a refused revival changes nothing"
    assert replacement["state"] == "pending"


async def test_a_revived_admin_invitation_supersedes_the_pending_one(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    first, second = f"first@{partner.domain}", f"second@{partner.domain}"
    old = await _replace_admin(time_stack, partner.id, partner.enterprise, first)
    await _expire(time_stack, invitation_workflow_id(old["id"]))
    newer = await _replace_admin(time_stack, partner.id, partner.enterprise, second)
    [second_mail] = await time_stack.delivered(second)

    revived = await time_stack.http.post(f"/v1/invitations/{old['id']}/resend", headers=holder(partner.enterprise))

    assert revived.status_code == 200, revived.text
    assert revived.json()["state"] == "pending"
    # R8: one live admin invitation, the newest request's.
    pending = await time_stack.pool.fetch(
        "SELECT id::text FROM invitations WHERE partner_id = $1::uuid AND role = 'admin' AND state = 'pending'",
        partner.id,
    )
    assert [r["id"] for r in pending] == [old["id"]]
    newer_handle = time_stack.client.get_workflow_handle_for(
        InvitationWorkflow.run, invitation_workflow_id(newer["id"])
    )
    newer_result = await time_stack.result(newer_handle)
    assert newer_result.state is InvitationState.SUPERSEDED
    assert 'data-outcome="accepted"' not in (await time_stack.http.post(f"{second_mail.link}/accept")).text
    view = (await time_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()
    assert view["admin"]["email"] == partner.admin


# --- R7: expiry where the link is used -----------------------------------------------------


async def test_a_link_past_its_expiry_is_refused_before_the_timer_fires(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    email = f"late@{partner.domain}"
    invited = (await dev_stack.invite(partner, email)).json()
    [mail] = await dev_stack.delivered(email)
    # The timer has not fired (its worker could be down); the stored expiry has passed.
    await dev_stack.pool.execute(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid", invited["id"]
    )

    shown = await dev_stack.http.get(mail.link)
    clicked = await dev_stack.http.post(f"{mail.link}/accept")

    assert 'data-outcome="expired"' in shown.text and 'data-outcome="expired"' in clicked.text
    assert (
        await dev_stack.pool.fetchval(
            "SELECT count(*) FROM members WHERE partner_id = $1::uuid AND email = $2", partner.id, email
        )
        == 0
    )
    # Straight to the workflow, with the right proof of the link: the transaction refuses too.
    handle = dev_stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invited["id"]))
    token_hash = await dev_stack.pool.fetchval(
        "SELECT encode(token_hash, 'hex') FROM invitation_tokens WHERE invitation_id = $1::uuid", invited["id"]
    )
    result = await handle.execute_update(
        InvitationWorkflow.accept, AcceptRequest(token_hash=token_hash, clicked_at=datetime.now(UTC))
    )
    assert (result.state, result.newly_accepted) == (InvitationState.EXPIRED, False)
    assert await dev_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", invited["id"]) == (
        "expired"
    )


async def test_a_mail_failing_for_days_does_not_keep_the_invitation_past_its_expiry(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(time_env, pool, mail, invitation_ttl=3600, invitation_max_sends=1) as stack:
        partner = await stack.active_partner()
        email = f"never@{partner.domain}"
        mail.fail_next(10_000)  # 421 at every attempt
        try:
            invited = (await stack.invite(partner, email)).json()
            handle = stack.client.get_workflow_handle_for(InvitationWorkflow.run, invitation_workflow_id(invited["id"]))
            result = await stack.result(handle, timeout=120)
        finally:
            mail.fail_next(0)

        assert result.state is InvitationState.EXPIRED
        stored = await stack.pool.fetchrow(
            "SELECT state, last_error FROM invitations WHERE id = $1::uuid", invited["id"]
        )
        assert stored is not None and stored["state"] == "expired"
        assert "expired before its mail could be sent" in stored["last_error"]
        assert mail.mails_to(email) == []


# --- cancel where the workflow is gone ------------------------------------------------------


async def test_cancel_takes_over_an_invitation_whose_workflow_was_terminated(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    partner = (await dev_stack.register(enterprise, domain)).json()
    [mail] = await dev_stack.delivered(f"ada@{domain}")
    await dev_stack.client.get_workflow_handle(onboarding_workflow_id(partner["id"])).terminate("operator")

    cancelled = await dev_stack.http.post(
        f"/v1/invitations/{partner['admin_invitation']['id']}/cancel", headers=holder(enterprise)
    )

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert 'data-outcome="cancelled"' in (await dev_stack.http.post(f"{mail.link}/accept")).text


# --- R6: public mail providers --------------------------------------------------------------


async def test_public_mail_domains_are_never_a_partners(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, blocked_mail_domains="mailbox.example") as stack:
        enterprise = new_enterprise()
        for domains in (["gmail.com"], ["yahoo.com.br"], [unique_domain(), "outlook.com"], ["mailbox.example"]):
            answer = await stack.http.post(
                f"/v1/enterprises/{enterprise}/partners",
                json={
                    "name": "Free mail",
                    "domains": domains,
                    "admin": {"first_name": "A", "last_name": "B", "email": f"a@{domains[0]}"},
                },
                headers=holder(enterprise),
            )
            assert (answer.status_code, answer.json()["code"]) == (422, "domain_not_allowed"), domains
            assert answer.json()["domains"] == [d for d in domains if not d.endswith(".example") or "mailbox" in d]
        assert await stack.pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 0


# --- R7: resends by hand are rate-limited ---------------------------------------------------


async def test_resends_by_hand_are_limited_and_say_when_to_retry(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    # The per-invitation limit is the one under test: the per-address one (which counts
    # the first mail too, in real time the test server's clock does not move) is raised.
    async with running_stack(time_env, pool, mail, recipient_daily_limit=10) as time_stack:
        await _resends_by_hand_are_limited(time_stack)


async def _resends_by_hand_are_limited(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    email = f"often@{partner.domain}"
    invited = (await time_stack.invite(partner, email)).json()
    await time_stack.delivered(email)
    resend = f"/v1/invitations/{invited['id']}/resend"
    admin = partner_user(partner.admin)

    too_soon = await time_stack.http.post(resend, headers=admin)

    assert (too_soon.status_code, too_soon.json()["code"]) == (429, "resend_too_soon")
    assert 0 < int(too_soon.headers["retry-after"]) <= 60
    statuses = []
    for _ in range(6):
        await time_stack.env.sleep(timedelta(seconds=61))
        statuses.append((await time_stack.http.post(resend, headers=admin)).status_code)
    assert statuses == [200, 200, 200, 200, 200, 429], "five sends by hand per 24 h"
    assert len(await time_stack.delivered(email, 6)) == 6


async def test_reviving_an_expired_invitation_is_not_held_by_the_cooldown(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    email = f"revive@{partner.domain}"
    invited = (await time_stack.invite(partner, email)).json()
    await _expire(time_stack, invitation_workflow_id(invited["id"]))

    revived = await time_stack.http.post(f"/v1/invitations/{invited['id']}/resend", headers=holder(partner.enterprise))

    assert revived.status_code == 200, revived.text
    assert len(await time_stack.delivered(email, 4)) == 4


# --- Temporal is no back door ---------------------------------------------------------------


async def _temporal(stack: Stack, *args: str) -> tuple[int, str]:
    """The CLI as an operator runs it, reading through the codec (failures are encrypted)."""
    address = stack.client.service_client.config.target_host
    code, out, err = await temporal(address, *args, codec=f"{stack.operator_url}/codec")
    return code, out + err


async def _markers(handle: Any) -> int:
    """Local activities run so far (each leaves a marker in the history)."""
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.HasField("marker_recorded_event_attributes"))


async def test_an_accept_made_up_in_temporal_activates_nothing(dev_stack: Stack, dev_env: WorkflowEnvironment) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    partner = (await dev_stack.register(enterprise, domain)).json()
    await dev_stack.delivered(f"ada@{domain}")
    workflow_id = onboarding_workflow_id(partner["id"])
    made_up = {"token_hash": "0" * 64, "clicked_at": datetime.now(UTC).isoformat()}

    code, out = await _temporal(
        dev_stack, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "accept",
        "--input", json.dumps(made_up),
    )  # fmt: skip
    malformed, said = await _temporal(
        dev_stack, "workflow", "update", "execute", "--workflow-id", workflow_id, "--name", "accept",
        "--input", json.dumps({"token_hash": "not a hash", "clicked_at": made_up["clicked_at"]}),
    )  # fmt: skip
    handle = dev_stack.client.get_workflow_handle_for(PartnerOnboardingWorkflow.run, workflow_id)
    markers = await _markers(handle)
    forged, _ = await _temporal(
        dev_stack, "workflow", "signal", "--workflow-id", workflow_id, "--name", "closed_elsewhere",
        "--input", json.dumps({"reason": "made up"}),
    )  # fmt: skip
    # The signal was handled: it read the stored state.
    await eventually(lambda: _markers(handle), lambda now: now != markers, timeout=10, interval=0.1)

    assert code != 0 and "invalid_link" in out
    assert malformed != 0 and "token_hash" in said, "the validator rejects it before the history records it"
    assert forged == 0  # a signal is always delivered; what matters is that it changes nothing
    view = (await dev_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert view["status"] == "pending"
    assert (await handle.query(PartnerOnboardingWorkflow.status)).state is InvitationState.PENDING
    invitation = await dev_stack.pool.fetchval(
        "SELECT state FROM invitations WHERE id = $1::uuid", partner["admin_invitation"]["id"]
    )
    assert invitation == "pending"


async def test_a_replacement_with_made_up_input_is_rejected(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    await _replace_admin(dev_stack, partner.id, partner.enterprise, f"next@{partner.domain}")
    handle = dev_stack.client.get_workflow_handle(replacement_workflow_id(partner.id))

    try:
        await handle.execute_update(
            AdminReplacementWorkflow.replace,
            ReplaceAdminRequest(
                invitee=Invitee(first_name="No", last_name="One", email="no-at-sign"), actor="holder@enterprise.example"
            ),
        )
    except WorkflowUpdateFailedError as err:
        assert Refused.found_in(err) is None
        assert "email" in str(err.cause)
    else:
        raise AssertionError("a replacement of no one was accepted")
    pending = await dev_stack.pool.fetchval(
        "SELECT count(*) FROM invitations WHERE partner_id = $1::uuid AND email = 'no-at-sign'", partner.id
    )
    assert pending == 0


async def test_a_resend_refused_by_the_cooldown_leaves_no_trace_in_the_history(dev_stack: Stack) -> None:
    """Refused in the update's validator: a client hammering resend grows no history."""
    partner = await dev_stack.active_partner()
    email = f"hammer@{partner.domain}"
    invited = (await dev_stack.invite(partner, email)).json()
    await dev_stack.delivered(email)

    for _ in range(3):
        too_soon = await dev_stack.http.post(
            f"/v1/invitations/{invited['id']}/resend", headers=partner_user(partner.admin)
        )
        assert (too_soon.status_code, too_soon.json()["code"]) == (429, "resend_too_soon")

    history = await dev_stack.client.get_workflow_handle(invitation_workflow_id(invited["id"])).fetch_history()
    updates = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert updates == ["ready"], "no resend was recorded"
