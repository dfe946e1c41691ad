"""End to end on the Temporal dev server: what the portal, the invitee and the operator see."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from temporalio.service import RPCError

from partners import search
from partners.ids import invitation_workflow_id, onboarding_workflow_id
from partners.models import (
    InvitationState,
    InvitationStatus,
    InvitationTiming,
    OnboardingInput,
    OnboardingPhase,
    OnboardingState,
)
from partners.requests import RegisterPartnerRequest
from store.idempotency import idempotent_partner_id
from tests.helpers.stack import Stack, holder, new_enterprise, partner_body, unique_domain
from workflows.onboarding import PartnerOnboardingWorkflow

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


async def test_register_mail_page_accept_active(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    admin = f"ada@{domain}"

    created = await dev_stack.register(enterprise, domain)

    assert created.status_code == 201, created.text
    partner = created.json()
    assert partner["status"] == "pending"
    assert partner["domains"] == [domain]
    assert partner["admin"] == {
        "first_name": "Ada",
        "last_name": "Admin",
        "email": admin,
        "status": "invited",
    }
    assert partner["admin_invitation"]["state"] == "pending"
    # The answer comes after the partner is stored: the database has it already.
    status = await dev_stack.pool.fetchval("SELECT status FROM partners WHERE id = $1::uuid", partner["id"])
    assert status == "pending"

    [mail] = await dev_stack.mail.wait_for(admin)
    assert mail.link.startswith(f"{dev_stack.base_url}/invitations/")
    assert partner["name"] in mail.subject
    assert mail.link in mail.html and "Admin" in mail.text

    page = await dev_stack.http.get(mail.link)
    assert page.status_code == 200
    assert partner["name"] in page.text and 'id="accept"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    # Opening the link changed nothing.
    assert (await dev_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()[
        "status"
    ] == "pending"

    accepted = await dev_stack.http.post(f"{mail.link}/accept")
    assert accepted.status_code == 200
    assert 'data-outcome="accepted"' in accepted.text

    view = (await dev_stack.http.get(f"/v1/partners/{partner['id']}", headers=holder(enterprise))).json()
    assert view["status"] == "active"
    assert view["admin"]["status"] == "active" and view["admin"]["email"] == admin
    assert [(m["email"], m["role"]) for m in view["members"]] == [(admin, "admin")]
    assert [i["state"] for i in await dev_stack.invitations(partner["id"], holder(enterprise))] == ["accepted"]

    again = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="already_accepted"' in again.text

    # The operator's view: the onboarding, which ran the invitation too, completed with
    # the state the portal shows.
    onboarding = dev_stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(partner["id"])
    )
    result = await dev_stack.result(onboarding)
    assert result.phase is OnboardingPhase.ACTIVE
    state = await onboarding.query(PartnerOnboardingWorkflow.state)
    assert isinstance(state, OnboardingState) and state.invitation_state is InvitationState.ACCEPTED
    status_ = await onboarding.query(PartnerOnboardingWorkflow.status)
    assert isinstance(status_, InvitationStatus)
    assert (status_.state, status_.sends) == (InvitationState.ACCEPTED, 1)
    with pytest.raises(RPCError):  # one workflow per onboarding: no second one to pay for
        await dev_stack.client.get_workflow_handle(invitation_workflow_id(partner["admin_invitation"]["id"])).describe()
    assert len(dev_stack.mail.mails_to(admin)) == 1


async def test_names_beyond_ascii_reach_the_invitee_as_written(dev_stack: Stack) -> None:
    """The mail is composed with email's legacy classes (cheaper): accented names and a
    subject longer than a header line are encoded (RFC 2047) and read back as written."""
    enterprise, domain = new_enterprise(), unique_domain()
    body = partner_body(
        domain,
        name="Ação & Cia — Soluções em Tecnologia Ltda",
        enterprise_name="Companhia Brasileira de Distribuição e Comércio Eletrônico S.A.",
    )
    body["admin"].update(first_name="Conceição", last_name="Araújo Brandão")
    created = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=holder(enterprise))
    assert created.status_code == 201, created.text

    [mail] = await dev_stack.mail.wait_for(f"ada@{domain}")
    assert mail.subject == (
        "Companhia Brasileira de Distribuição e Comércio Eletrônico S.A. convida você para"
        " Ação & Cia — Soluções em Tecnologia Ltda"
    )
    assert str(mail.message["To"]) == f"Conceição Araújo Brandão <ada@{domain}>"
    assert "Olá, Conceição" in mail.text and "Conceição" in mail.html
    accepted = await dev_stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="accepted"' in accepted.text


async def test_partner_list_and_audit_of_registration(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    domains = [unique_domain(), unique_domain()]
    for domain in domains:
        assert (await dev_stack.register(enterprise, domain)).status_code == 201

    listed = await dev_stack.http.get(f"/v1/enterprises/{enterprise}/partners", headers=holder(enterprise))

    assert listed.status_code == 200
    assert [p["domains"] for p in listed.json()["partners"]] == [[d] for d in domains]
    actions = await dev_stack.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE enterprise_id = $1 ORDER BY id", enterprise
    )
    assert [r["action"] for r in actions].count("partner_registered") == 2
    assert {r["actor"] for r in actions if r["action"] == "partner_registered"} == {"holder@enterprise.example"}


async def test_idempotency_key_answers_with_the_same_partner(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    headers = {**holder(enterprise), "Idempotency-Key": "portal-request-42"}
    body = {
        "name": "Initech",
        "domains": [domain],
        "admin": {"first_name": "Bill", "last_name": "L", "email": f"bill@{domain}"},
    }

    first = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=headers)
    second = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert await dev_stack.pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 1
    await dev_stack.mail.wait_for(f"bill@{domain}")
    await asyncio.sleep(0.5)
    assert len(dev_stack.mail.mails_to(f"bill@{domain}")) == 1


async def test_idempotency_key_after_the_onboarding_finished(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    headers = {**holder(enterprise), "Idempotency-Key": "portal-request-finished"}
    body = {
        "name": "Hooli",
        "domains": [domain],
        "admin": {"first_name": "G", "last_name": "B", "email": f"g@{domain}"},
    }
    first = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=headers)
    [mail] = await dev_stack.delivered(f"g@{domain}")
    await dev_stack.http.post(f"{mail.link}/accept")
    onboarding = dev_stack.client.get_workflow_handle_for(
        PartnerOnboardingWorkflow.run, onboarding_workflow_id(first.json()["id"])
    )
    await dev_stack.result(onboarding)

    again = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=headers)

    assert again.status_code == 201, again.text
    assert (again.json()["id"], again.json()["status"]) == (first.json()["id"], "active")
    assert again.json()["invitation_counts"] == {"accepted": 1}
    await asyncio.sleep(1)
    assert len(dev_stack.mail.mails_to(f"g@{domain}")) == 1, "no new invitation"
    runs = [w async for w in dev_stack.client.list_workflows(f'WorkflowId="{onboarding.id}"')]
    assert len(runs) == 1, "no second run of the onboarding"


async def test_idempotency_key_of_a_refused_registration_is_spent(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    await dev_stack.pool.execute("INSERT INTO enterprises (id, partner_limit) VALUES ($1, 0)", enterprise)
    headers = {**holder(enterprise), "Idempotency-Key": "portal-request-refused"}
    body = {"name": "Late", "domains": [domain], "admin": {"first_name": "L", "last_name": "L", "email": f"l@{domain}"}}

    first = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=headers)
    await dev_stack.pool.execute("UPDATE enterprises SET partner_limit = 5 WHERE id = $1", enterprise)
    onboarding = dev_stack.client.get_workflow_handle(
        onboarding_workflow_id(await _key_id(dev_stack.pool, enterprise, "portal-request-refused"))
    )
    await dev_stack.result(onboarding)
    again = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=headers)

    assert (first.status_code, first.json()["code"]) == (409, "partner_limit_reached")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert await dev_stack.pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 0


async def test_the_same_idempotency_key_with_another_body_is_refused(dev_stack: Stack) -> None:
    enterprise, domain, other_domain = new_enterprise(), unique_domain(), unique_domain()
    headers = {**holder(enterprise), "Idempotency-Key": "portal-request-7"}
    url = f"/v1/enterprises/{enterprise}/partners"

    first = await dev_stack.http.post(url, json=partner_body(domain), headers=headers)
    other = await dev_stack.http.post(url, json=partner_body(other_domain), headers=headers)

    assert first.status_code == 201, first.text
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    names = await dev_stack.pool.fetch("SELECT name FROM partners WHERE enterprise_id = $1", enterprise)
    assert [r["name"] for r in names] == [f"Partner {domain}"], "nothing of the second body was stored"
    await dev_stack.delivered(f"ada@{domain}")
    await asyncio.sleep(0.5)
    assert dev_stack.mail.mails_to(f"ada@{other_domain}") == []


async def test_an_idempotency_key_is_remembered_in_postgres_for_24_hours(dev_stack: Stack) -> None:
    """Past its day the key is free again: it registers a partner of its own (a retry
    after a day is a new request), and the first partner stays as it was."""
    enterprise, domain, later_domain = new_enterprise(), unique_domain(), unique_domain()
    headers = {**holder(enterprise), "Idempotency-Key": "portal-request-8"}
    url = f"/v1/enterprises/{enterprise}/partners"
    first = await dev_stack.http.post(url, json=partner_body(domain), headers=headers)
    assert first.status_code == 201, first.text
    stored = await dev_stack.pool.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE enterprise_id = $1 AND key = 'portal-request-8'", enterprise
    )
    assert stored == 1
    await dev_stack.pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE enterprise_id = $1", enterprise
    )

    later = await dev_stack.http.post(url, json=partner_body(later_domain), headers=headers)

    assert later.status_code == 201, later.text
    assert later.json()["id"] != first.json()["id"]
    assert await dev_stack.pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 2
    await dev_stack.delivered(f"ada@{later_domain}")


async def _key_id(pool: asyncpg.Pool, enterprise: str, key: str) -> str:
    """The partner a key registers (or tried to): its id derives from the key's use."""
    generation = await pool.fetchval(
        "SELECT generation FROM idempotency_keys WHERE enterprise_id = $1 AND key = $2", enterprise, key
    )
    return str(idempotent_partner_id(enterprise, key, generation))


async def test_the_index_says_each_phase_with_one_upsert_per_change(dev_stack: Stack) -> None:
    """What an operator's `workflow list --query` finds: the attributes given at the start
    say what a registration becomes (free), and each later change is one upsert (each
    upsert is a billed Action)."""
    enterprise, domain = new_enterprise(), unique_domain()
    partner = (await dev_stack.register(enterprise, domain)).json()
    handle = dev_stack.client.get_workflow_handle(onboarding_workflow_id(partner["id"]))
    [mail] = await dev_stack.mail.wait_for(f"ada@{domain}")

    async def indexed() -> dict[str, str | None]:
        attributes = (await handle.describe()).typed_search_attributes
        return {key.name: attributes.get(key) for key in search.ALL if key is not search.WEBHOOK_ENDPOINT_ID}

    assert await indexed() == {"EnterpriseId": enterprise, "PartnerId": partner["id"], "InvitationState": "pending",
                               "InviteeDomain": domain, "OnboardingPhase": "awaiting_admin"}  # fmt: skip
    await dev_stack.http.post(f"{mail.link}/accept")
    await dev_stack.result(handle)
    assert await indexed() == {"EnterpriseId": enterprise, "PartnerId": partner["id"], "InvitationState": "accepted",
                               "InviteeDomain": domain, "OnboardingPhase": "active"}  # fmt: skip
    history = (await handle.fetch_history()).events
    assert sum(1 for e in history if e.HasField("upsert_workflow_search_attributes_event_attributes")) == 1

    # Refused (the domain is the first partner's): the index says so, the state is gone.
    other, key = enterprise, str(uuid.uuid4())
    taken = await dev_stack.http.post(
        f"/v1/enterprises/{other}/partners",
        json=partner_body(domain),
        headers={**holder(other), "Idempotency-Key": key},
    )
    assert taken.json()["code"] == "domain_taken"
    refused = dev_stack.client.get_workflow_handle(onboarding_workflow_id(await _key_id(dev_stack.pool, other, key)))
    await dev_stack.result(refused)
    attributes = (await refused.describe()).typed_search_attributes
    assert (attributes.get(search.ONBOARDING_PHASE), attributes.get(search.INVITATION_STATE)) == ("refused", None)


async def test_an_onboarding_started_without_attributes_indexes_itself(dev_stack: Stack) -> None:
    """The workflow reads what its start indexed instead of assuming the API's: a start
    that indexed nothing (an operator's, say) still ends up findable."""
    enterprise, domain, partner_id = new_enterprise(), unique_domain(), uuid.uuid4()
    body = RegisterPartnerRequest.model_validate(partner_body(domain))
    handle = await dev_stack.client.start_workflow(
        PartnerOnboardingWorkflow.run,
        OnboardingInput(
            partner_id=partner_id,
            enterprise_id=enterprise,
            actor="holder@enterprise.example",
            partner=body.new_partner(),
            timing=InvitationTiming(ttl_seconds=3600, max_sends=3, resend_cooldown_seconds=60, resend_daily_limit=5),
        ),
        id=onboarding_workflow_id(partner_id),
        task_queue=dev_stack.settings.temporal_task_queue,
    )
    await dev_stack.mail.wait_for(f"ada@{domain}")
    attributes = (await handle.describe()).typed_search_attributes
    indexed = [attributes.get(k) for k in (search.ONBOARDING_PHASE, search.INVITATION_STATE, search.INVITEE_DOMAIN)]
    assert indexed == ["awaiting_admin", "pending", domain]
