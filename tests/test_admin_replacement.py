"""R8: replacing a partner's Admin, end to end and across TTLs."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from partners import search
from partners.ids import onboarding_workflow_id, replacement_workflow_id
from partners.models import (
    InvitationState,
    InvitationTiming,
    Invitee,
    OnboardingPhase,
    ReplaceAdminRequest,
    ReplacementInput,
)
from tests.helpers.stack import ActivePartner, Stack, holder, new_enterprise, unique_domain
from workflows.onboarding import PartnerOnboardingWorkflow
from workflows.replacement import AdminReplacementWorkflow

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


async def _replace(stack: Stack, partner_id: str, enterprise: str, email: str) -> Any:
    return await stack.http.post(
        f"/v1/partners/{partner_id}/admin",
        json={"first_name": "Nia", "last_name": "New", "email": email},
        headers=holder(enterprise),
    )


async def _view(stack: Stack, partner: ActivePartner) -> dict[str, Any]:
    response = await stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))
    view: dict[str, Any] = response.json()
    return view


async def test_replacement_accepted_swaps_admin_and_member(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    new_admin = f"nia@{partner.domain}"

    started = await _replace(dev_stack, partner.id, partner.enterprise, new_admin)

    assert started.status_code == 202, started.text
    assert (started.json()["purpose"], started.json()["role"]) == ("admin_replacement", "admin")
    [mail] = await dev_stack.mail.wait_for(new_admin)
    before = await _view(dev_stack, partner)
    assert before["admin"]["email"] == partner.admin, "the old Admin stays until the new one accepts"
    assert before["admin_replacement"]["state"] == "pending"
    accepted = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="accepted"' in accepted.text
    after = await _view(dev_stack, partner)
    assert after["admin"]["email"] == new_admin
    roles = {m["email"]: m["role"] for m in after["members"]}
    assert roles == {new_admin: "admin", partner.admin: "member"}
    assert (
        await dev_stack.pool.fetchval(
            "SELECT count(*) FROM members WHERE partner_id = $1::uuid AND role = 'admin' AND active", partner.id
        )
        == 1
    )
    replaced = await dev_stack.pool.fetchrow(
        "SELECT actor, details FROM audit_log WHERE partner_id = $1::uuid AND action = 'admin_replaced'", partner.id
    )
    assert replaced is not None and replaced["details"]["previous_admin"] == partner.admin
    handle = dev_stack.client.get_workflow_handle_for(AdminReplacementWorkflow.run, replacement_workflow_id(partner.id))
    assert (await dev_stack.result(handle)).state is InvitationState.ACCEPTED


async def test_a_member_can_become_admin(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"mo@{partner.domain}"
    await dev_stack.invite(partner, member)
    [invite] = await dev_stack.mail.wait_for(member)
    await dev_stack.http.post(f"{invite.link}/accept")

    started = await _replace(dev_stack, partner.id, partner.enterprise, member)
    mails = await dev_stack.mail.wait_for(member, 2)
    await dev_stack.http.post(f"{mails[-1].link}/accept")

    assert started.status_code == 202
    roles = {m["email"]: m["role"] for m in (await _view(dev_stack, partner))["members"]}
    assert roles == {member: "admin", partner.admin: "member"}


async def test_newer_replacement_supersedes_the_pending_one(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    first, second = f"first@{partner.domain}", f"second@{partner.domain}"
    assert (await _replace(dev_stack, partner.id, partner.enterprise, first)).status_code == 202
    [first_mail] = await dev_stack.mail.wait_for(first)

    assert (await _replace(dev_stack, partner.id, partner.enterprise, second)).status_code == 202
    [second_mail] = await dev_stack.mail.wait_for(second)

    refused = await dev_stack.http.post(f"{first_mail.link}/accept")
    assert 'data-outcome="superseded"' in refused.text
    accepted = await dev_stack.http.post(f"{second_mail.link}/accept")
    assert 'data-outcome="accepted"' in accepted.text
    view = await _view(dev_stack, partner)
    assert view["admin"]["email"] == second
    states = {i["email"]: i["state"] for i in await dev_stack.invitations(partner.id, holder(partner.enterprise))}
    assert (states[first], states[second]) == ("superseded", "accepted")
    assert first not in {m["email"] for m in view["members"]}


async def test_replacement_refusals(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()

    current = await _replace(dev_stack, partner.id, partner.enterprise, partner.admin)
    outside = await _replace(dev_stack, partner.id, partner.enterprise, "nia@elsewhere.example")
    other = await _replace(dev_stack, partner.id, new_enterprise(), f"nia@{partner.domain}")

    assert (current.status_code, current.json()["code"]) == (409, "already_admin")
    assert (outside.status_code, outside.json()["code"]) == (422, "domain_not_registered")
    assert (other.status_code, other.json()["code"]) == (404, "not_found")
    assert (await _view(dev_stack, partner))["admin_replacement"] is None


async def test_replacing_the_admin_of_a_pending_partner_retargets_its_invitation(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    created = (await dev_stack.register(enterprise, domain)).json()
    [old_mail] = await dev_stack.mail.wait_for(f"ada@{domain}")
    new_admin = f"nia@{domain}"

    started = await _replace(dev_stack, created["id"], enterprise, new_admin)

    assert started.status_code == 202, started.text
    assert started.json()["purpose"] == "first_admin"
    assert 'data-outcome="superseded"' in (await dev_stack.http.post(f"{old_mail.link}/accept")).text
    [mail] = await dev_stack.mail.wait_for(new_admin)
    assert 'data-outcome="accepted"' in (await dev_stack.http.post(f"{mail.link}/accept")).text
    view = (await dev_stack.http.get(f"/v1/partners/{created['id']}", headers=holder(enterprise))).json()
    assert (view["status"], view["admin"]["email"]) == ("active", new_admin)
    assert [m["email"] for m in view["members"]] == [new_admin]
    onboarding = dev_stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(created["id"])
    )
    assert (await dev_stack.result(onboarding)).phase is OnboardingPhase.RETARGETED


async def test_replacement_expired_changes_nothing(time_stack: Stack) -> None:
    partner = await time_stack.active_partner()
    new_admin = f"late@{partner.domain}"
    assert (await _replace(time_stack, partner.id, partner.enterprise, new_admin)).status_code == 202
    handle = time_stack.client.get_workflow_handle_for(
        AdminReplacementWorkflow.run, replacement_workflow_id(partner.id)
    )

    result = await time_stack.result(handle)

    assert result.state is InvitationState.EXPIRED
    view = await _view(time_stack, partner)
    assert view["admin"]["email"] == partner.admin
    assert [(m["email"], m["role"]) for m in view["members"]] == [(partner.admin, "admin")]
    assert view["admin_replacement"]["state"] == "expired", "the partner view says the replacement expired"
    assert len(time_stack.mail.mails_to(new_admin)) == 3


async def test_a_long_replacement_history_continues_as_new_and_still_ends_with_the_acceptance(
    dev_stack: Stack,
) -> None:
    """Requests superseding one another grow the history; past its limit the run hands
    over to a new one that waits for the same invitation."""
    partner = await dev_stack.active_partner()
    workflow_id = replacement_workflow_id(partner.id)
    # Started as the API starts it, with a history limit small enough to cross.
    timing = InvitationTiming(ttl_seconds=3600, max_sends=3, resend_cooldown_seconds=60, resend_daily_limit=5)
    start = WithStartWorkflowOperation(
        AdminReplacementWorkflow.run,
        ReplacementInput(
            partner_id=uuid.UUID(partner.id), enterprise_id=partner.enterprise, timing=timing, history_limit=30
        ),
        id=workflow_id,
        task_queue=dev_stack.settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search.attributes(partner.enterprise, uuid.UUID(partner.id)),
    )
    first = Invitee(first_name="Nia", last_name="New", email=f"n0@{partner.domain}")
    await dev_stack.client.execute_update_with_start_workflow(
        AdminReplacementWorkflow.replace,
        ReplaceAdminRequest(invitee=first, actor="holder@enterprise.example"),
        start_workflow_operation=start,
    )
    first_run = (await dev_stack.client.get_workflow_handle(workflow_id).describe()).run_id
    for n in range(1, 5):  # through the API, which joins the running workflow
        started = await _replace(dev_stack, partner.id, partner.enterprise, f"n{n}@{partner.domain}")
        assert started.status_code == 202, started.text

    [mail] = await dev_stack.delivered(f"n4@{partner.domain}")
    assert 'data-outcome="accepted"' in (await dev_stack.http.post(f"{mail.link}/accept")).text
    latest = dev_stack.client.get_workflow_handle_for(AdminReplacementWorkflow.run, workflow_id)
    result = await dev_stack.result(latest, timeout=30)
    assert result.state is InvitationState.ACCEPTED
    assert str(result.invitation_id) == started.json()["id"]
    assert (await latest.describe()).run_id != first_run, "continued as new"
    history = await dev_stack.client.get_workflow_handle(workflow_id, run_id=first_run).fetch_history()
    assert history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    assert len(history.events) < 60, "the history stayed bounded"
    assert (await _view(dev_stack, partner))["admin"]["email"] == f"n4@{partner.domain}"
