"""R25: a link works whatever happened to its workflow. An operator terminates the
workflow of a pending invitation (or a namespace is lost); the invitee's mailed link still
accepts: a new run of `invitation-{id}` takes the invitation over, as resend and cancel do."""

from __future__ import annotations

from partners.ids import invitation_workflow_id, onboarding_workflow_id
from tests.helpers.stack import ActivePartner, Stack, holder, new_enterprise, unique_domain


async def _view(stack: Stack, partner_id: str, enterprise: str) -> dict:  # type: ignore[type-arg]
    answer = await stack.http.get(f"/v1/partners/{partner_id}", headers=holder(enterprise))
    assert answer.status_code == 200, answer.text
    view: dict = answer.json()  # type: ignore[type-arg]
    return view


async def test_a_terminated_onboardings_first_admin_still_accepts(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    created = await dev_stack.register(enterprise, domain)
    partner_id = created.json()["id"]
    [mail] = await dev_stack.delivered(f"ada@{domain}")
    await dev_stack.client.get_workflow_handle(onboarding_workflow_id(partner_id)).terminate("an operator's mistake")

    accepted = await dev_stack.http.post(f"{mail.link}/accept")

    assert accepted.status_code == 200 and 'data-outcome="accepted"' in accepted.text, accepted.text[:300]
    view = await _view(dev_stack, partner_id, enterprise)
    assert view["status"] == "active" and view["admin"]["email"] == f"ada@{domain}"
    row = await dev_stack.pool.fetchrow(
        "SELECT state, workflow_id FROM invitations WHERE partner_id = $1::uuid AND role = 'admin'", partner_id
    )
    assert row is not None and row["state"] == "accepted"
    assert row["workflow_id"] == invitation_workflow_id(str(view["admin_invitation"]["id"])), "taken over"
    again = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="already_accepted"' in again.text


async def test_a_terminated_member_invitation_and_replacement_still_accept(dev_stack: Stack) -> None:
    partner: ActivePartner = await dev_stack.active_partner()
    member = f"mo@{partner.domain}"
    invitation = (await dev_stack.invite(partner, member)).json()
    [member_mail] = await dev_stack.delivered(member)
    replacement = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/admin",
        json={"first_name": "Nia", "last_name": "New", "email": f"nia@{partner.domain}"},
        headers=holder(partner.enterprise),
    )
    [replacement_mail] = await dev_stack.delivered(f"nia@{partner.domain}")
    for invitation_id in (invitation["id"], replacement.json()["id"]):
        handle = dev_stack.client.get_workflow_handle(invitation_workflow_id(invitation_id))
        await handle.terminate("a lost namespace, as far as this invitation knows")

    for link in (member_mail.link, replacement_mail.link):
        accepted = await dev_stack.http.post(f"{link}/accept")
        assert 'data-outcome="accepted"' in accepted.text, accepted.text[:300]

    view = await _view(dev_stack, partner.id, partner.enterprise)
    roles = {m["email"]: m["role"] for m in view["members"]}
    assert roles == {member: "member", f"nia@{partner.domain}": "admin", partner.admin: "member"}
