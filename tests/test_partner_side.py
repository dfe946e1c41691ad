"""The partner's side (R12, R13) and the portal's access question (R14), against real servers."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.models import Role
from partners.views import PartnerSummary, PartnerView
from store.reads import ReadModel
from tests.helpers.stack import ActivePartner, Stack, holder, partner_user, running_stack, unique_domain

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


async def _member(stack: Stack, partner: ActivePartner, email: str, *, mails_before: int = 0) -> None:
    """`email` invited by the Admin and accepted: an active Member."""
    invited = await stack.invite(partner, email)
    assert invited.status_code == 201, invited.text
    *_, mail = await stack.delivered(email, mails_before + 1)
    assert 'data-outcome="accepted"' in (await stack.http.post(f"{mail.link}/accept")).text


async def _get(stack: Stack, path: str, headers: dict[str, str]) -> httpx.Response:
    return await stack.http.get(path, headers=headers)


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def _grant(stack: Stack, partner: ActivePartner, kind: str, ref: str) -> str:
    granted = await stack.http.post(
        f"/v1/partners/{partner.id}/grants",
        json={"kind": kind, "ref": ref, "name": ref.title()},
        headers=holder(partner.enterprise),
    )
    assert granted.status_code == 201, granted.text
    return str(granted.json()["id"])


async def test_the_admin_and_a_member_see_their_partner_and_nobody_else_does(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"mel@{partner.domain}"
    await _member(dev_stack, partner, member)
    await _grant(dev_stack, partner, "product", "maps")
    other = await dev_stack.active_partner()
    path = f"/v1/partners/{partner.id}"

    admin_view = (await _get(dev_stack, path, partner_user(partner.admin))).json()
    member_view = (await _get(dev_stack, path, partner_user(member.upper()))).json()
    holder_view = (await _get(dev_stack, path, holder(partner.enterprise))).json()

    assert (admin_view["viewer_role"], member_view["viewer_role"]) == ("admin", "member")
    assert holder_view["viewer_role"] == "account_holder"
    for view in (admin_view, member_view, holder_view):
        assert view["name"] == f"Partner {partner.domain}" and view["domains"] == [partner.domain]
        assert view["status"] == "active" and view["admin"]["email"] == partner.admin
        assert [(m["email"], m["role"]) for m in view["members"]] == [(partner.admin, "admin"), (member, "member")]
        assert all(m["joined_at"] for m in view["members"])
        assert [g["ref"] for g in view["grants"]] == ["maps"]
    # R12: the Admin sees the invitations with their state; a Member does not.
    every = await dev_stack.invitations(partner.id, partner_user(partner.admin))
    assert {(i["email"], i["state"]) for i in every} == {
        (partner.admin, "accepted"),
        (member, "accepted"),
    }
    assert admin_view["invitations"] == holder_view["invitations"]
    assert member_view["invitations"] is None and member_view["admin_invitation"] is None
    for headers in (partner_user(partner.admin), partner_user(member), holder(partner.enterprise)):
        listed = await _get(dev_stack, f"{path}/members", headers)
        assert [m["email"] for m in listed.json()["members"]] == [partner.admin, member]
    # Anyone else: the answer a partner that does not exist gets.
    missing = _problem(
        await _get(dev_stack, "/v1/partners/00000000-0000-4000-8000-000000000000", partner_user(other.admin)),
        404,
        "not_found",
    )
    for headers in (partner_user(other.admin), holder(other.enterprise), partner_user(f"eve@{partner.domain}")):
        for suffix in ("", "/members", "/invitations", "/logo"):
            refused = _problem(await _get(dev_stack, f"{path}{suffix}", headers), 404, "not_found")
            assert refused["detail"] == missing["detail"]
    # A Member is no Admin: the invitations and the audit are not theirs.
    _problem(await _get(dev_stack, f"{path}/invitations", partner_user(member)), 403, "forbidden")
    _problem(await _get(dev_stack, f"{path}/audit", partner_user(member)), 403, "forbidden")


async def test_the_holders_removal_ends_access_and_cancels_a_pending_admin_replacement(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"mel@{partner.domain}"
    await _member(dev_stack, partner, member)
    await _grant(dev_stack, partner, "product", "maps")
    replaced = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/admin",
        json={"first_name": "Mel", "last_name": "Member", "email": member},
        headers=holder(partner.enterprise),
    )
    assert replaced.status_code == 202, replaced.text
    [_, replacement_mail] = await dev_stack.delivered(member, 2)
    assert [
        m["partner_id"] for m in (await _get(dev_stack, "/v1/access", partner_user(member))).json()["memberships"]
    ] == [partner.id]

    # Who the next Admin is belongs to the account holder (R8): the partner's Admin may not
    # remove the person named, and nothing changes.
    vetoed = await dev_stack.http.delete(
        f"/v1/partners/{partner.id}/members/{member.upper()}", headers=partner_user(partner.admin)
    )
    _problem(vetoed, 409, "successor_pending")
    assert (
        await dev_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", replaced.json()["id"])
        == "pending"
    )
    assert await dev_stack.pool.fetchval(
        "SELECT active FROM members WHERE partner_id = $1::uuid AND email = $2", partner.id, member
    )
    # The account holder's own removal ends the membership and the replacement with it (R13).
    removed = await dev_stack.http.delete(
        f"/v1/partners/{partner.id}/members/{member.upper()}", headers=holder(partner.enterprise)
    )

    assert removed.status_code == 200, removed.text
    ended = removed.json()
    assert (ended["email"], ended["role"], ended["end_reason"]) == (member, "member", "removed")
    assert ended["ended_by"] == holder(partner.enterprise)["X-Actor-Email"] and ended["ended_at"] is not None
    # Access ends at once.
    assert (await _get(dev_stack, "/v1/access", partner_user(member))).json()["memberships"] == []
    check = await _get(
        dev_stack, f"/v1/access/check?enterprise_id={partner.enterprise}&kind=product&ref=maps", partner_user(member)
    )
    assert check.json() == {"allowed": False, "partner_id": None, "role": None}
    _problem(await _get(dev_stack, f"/v1/partners/{partner.id}", partner_user(member)), 404, "not_found")
    # The pending replacement was cancelled in the same transaction: its link is dead,
    # its workflow ended, and the Admin is still the Admin.
    replacement = await dev_stack.pool.fetchrow(
        "SELECT state, workflow_id FROM invitations WHERE id = $1::uuid", replaced.json()["id"]
    )
    assert replacement is not None and replacement["state"] == "cancelled"
    page = await dev_stack.http.post(f"{replacement_mail.link}/accept")
    assert 'data-outcome="cancelled"' in page.text
    result = await dev_stack.result(dev_stack.client.get_workflow_handle(replacement["workflow_id"]), timeout=20)
    assert result["state"] == "cancelled"
    view = (await _get(dev_stack, f"/v1/partners/{partner.id}", holder(partner.enterprise))).json()
    assert [(m["email"], m["role"]) for m in view["members"]] == [(partner.admin, "admin")]
    audit = await dev_stack.pool.fetchrow(
        "SELECT actor, details FROM audit_log WHERE partner_id = $1::uuid AND action = 'member_removed'", partner.id
    )
    assert audit is not None and audit["actor"] == holder(partner.enterprise)["X-Actor-Email"]
    assert audit["details"] == {"email": member, "reason": "removed", "cancelled_invitations": [replaced.json()["id"]]}
    # Removed, not banned: invited again, a new membership; the ended one is kept.
    await _member(dev_stack, partner, member, mails_before=2)
    rows = await dev_stack.pool.fetch(
        "SELECT active, end_reason FROM members WHERE partner_id = $1::uuid AND email = $2 ORDER BY joined_at",
        partner.id,
        member,
    )
    assert [(r["active"], r["end_reason"]) for r in rows] == [(False, "removed"), (True, None)]


async def test_the_admin_is_never_removed_and_a_member_may_leave(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    mel, max_ = f"mel@{partner.domain}", f"max@{partner.domain}"
    await _member(dev_stack, partner, mel)
    await _member(dev_stack, partner, max_)
    pending = f"pia@{partner.domain}"
    assert (await dev_stack.invite(partner, pending)).status_code == 201
    await dev_stack.delivered(pending)  # its "invitation sent" is in the audit log
    members = f"/v1/partners/{partner.id}/members"
    before = await dev_stack.pool.fetchval("SELECT count(*) FROM audit_log WHERE partner_id = $1::uuid", partner.id)

    refusals = [
        (await dev_stack.http.delete(f"{members}/{partner.admin}", headers=holder(partner.enterprise)), 409,
         "cannot_remove_admin"),
        (await dev_stack.http.post(f"/v1/partners/{partner.id}/leave", headers=partner_user(partner.admin)), 409,
         "cannot_remove_admin"),
        (await dev_stack.http.delete(f"{members}/{max_}", headers=partner_user(mel)), 403, "forbidden"),
        (await dev_stack.http.delete(f"{members}/{pending}", headers=partner_user(partner.admin)), 404,
         "not_a_member"),
        (await dev_stack.http.delete(f"{members}/not-an-address", headers=partner_user(partner.admin)), 404,
         "not_a_member"),
        (await dev_stack.http.post(f"/v1/partners/{partner.id}/leave", headers=holder(partner.enterprise)), 403,
         "forbidden"),
        (await dev_stack.http.post(f"/v1/partners/{partner.id}/leave", headers=partner_user(pending)), 404,
         "not_found"),
    ]  # fmt: skip
    for response, status, code in refusals:
        _problem(response, status, code)
    after = await dev_stack.pool.fetchval("SELECT count(*) FROM audit_log WHERE partner_id = $1::uuid", partner.id)
    assert after == before, "a refusal changes nothing"

    left = await dev_stack.http.post(f"/v1/partners/{partner.id}/leave", headers=partner_user(mel))
    assert left.status_code == 200, left.text
    assert (left.json()["end_reason"], left.json()["ended_by"]) == ("left", mel)
    by_holder = await dev_stack.http.delete(f"{members}/{max_}", headers=holder(partner.enterprise))
    assert by_holder.status_code == 200 and by_holder.json()["ended_by"] == "holder@enterprise.example"
    listed = (await _get(dev_stack, members, partner_user(partner.admin))).json()["members"]
    assert [m["email"] for m in listed] == [partner.admin]
    actions = await dev_stack.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE partner_id = $1::uuid"
        " AND action IN ('member_left', 'member_removed') ORDER BY id",
        partner.id,
    )
    assert [(a["action"], a["actor"]) for a in actions] == [
        ("member_left", mel),
        ("member_removed", "holder@enterprise.example"),
    ]
    # Leaving twice: no longer a member, so no longer anything to them.
    again = await dev_stack.http.post(f"/v1/partners/{partner.id}/leave", headers=partner_user(mel))
    _problem(again, 404, "not_found")


async def test_access_follows_grants_revocations_removals_and_deactivation(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner(name="Globex")
    member = f"mel@{partner.domain}"
    await _member(dev_stack, partner, member)
    as_member = partner_user(member)

    async def access() -> list[dict[str, Any]]:
        response = await _get(dev_stack, "/v1/access", as_member)
        assert response.status_code == 200 and response.json()["email"] == member
        memberships: list[dict[str, Any]] = response.json()["memberships"]
        return memberships

    async def check(kind: str, ref: str, headers: dict[str, str] = as_member) -> dict[str, Any]:
        response = await _get(
            dev_stack, f"/v1/access/check?enterprise_id={partner.enterprise}&kind={kind}&ref={ref}", headers
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert await access() == [
        {
            "partner_id": partner.id,
            "partner_name": "Globex",
            "enterprise_id": partner.enterprise,
            "role": "member",
            "products": [],
            "apis": [],
        }
    ]
    assert (await check("product", "maps"))["allowed"] is False
    maps = await _grant(dev_stack, partner, "product", "maps")
    await _grant(dev_stack, partner, "api", "payments-v2")
    [membership] = await access()
    assert membership["products"] == [{"ref": "maps", "name": "Maps"}]
    assert membership["apis"] == [{"ref": "payments-v2", "name": "Payments-V2"}]
    assert await check("api", "payments-v2") == {"allowed": True, "partner_id": partner.id, "role": "member"}
    assert (await check("api", "payments-v2", partner_user(partner.admin)))["role"] == "admin"
    assert (await check("product", "payments-v2"))["allowed"] is False, "a product is not an API"
    # Revoked: gone at once.
    revoked = await dev_stack.http.delete(
        f"/v1/partners/{partner.id}/grants/{maps}", headers=holder(partner.enterprise)
    )
    assert revoked.status_code == 200
    assert (await access())[0]["products"] == [] and (await check("product", "maps"))["allowed"] is False
    # Nobody outside: a person of the same company who is no member, and bad input.
    assert (await check("api", "payments-v2", partner_user(f"eve@{partner.domain}")))["allowed"] is False
    _problem(
        await _get(dev_stack, f"/v1/access/check?enterprise_id={partner.enterprise}&kind=team&ref=x", as_member),
        422,
        "invalid_input",
    )
    _problem(
        await _get(dev_stack, f"/v1/access/check?enterprise_id={partner.enterprise}&kind=api", as_member),
        422,
        "invalid_input",
    )
    # Deactivated (its APIs revoked first, R10): nobody has access through it any more.
    api = next(g["id"] for g in (await _get(dev_stack, f"/v1/partners/{partner.id}", as_member)).json()["grants"])
    await dev_stack.http.delete(f"/v1/partners/{partner.id}/grants/{api}", headers=holder(partner.enterprise))
    await _grant(dev_stack, partner, "product", "maps")
    assert (await check("product", "maps"))["allowed"] is True
    deactivated = await dev_stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(partner.enterprise))
    assert deactivated.status_code == 200, deactivated.text
    assert await access() == []
    assert (await check("product", "maps"))["allowed"] is False
    assert (await check("product", "maps", partner_user(partner.admin)))["allowed"] is False
    ended = await dev_stack.pool.fetch(
        "SELECT end_reason FROM members WHERE partner_id = $1::uuid ORDER BY joined_at", partner.id
    )
    assert [r["end_reason"] for r in ended] == ["partner_deactivated", "partner_deactivated"]


async def test_a_pending_partner_grants_nothing_yet(dev_stack: Stack) -> None:
    domain = unique_domain()
    enterprise = f"ent-{domain.split('.')[0]}"
    assert (await dev_stack.register(enterprise, domain)).status_code == 201
    answer = await _get(dev_stack, "/v1/access", partner_user(f"ada@{domain}"))
    assert answer.json() == {"email": f"ada@{domain}", "memberships": []}


async def test_a_batch_invites_each_person_on_their_own(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"mel@{partner.domain}"
    await _member(dev_stack, partner, member)
    person = {"first_name": "Ann", "last_name": "A"}
    people = [
        {**person, "email": f"ann@{partner.domain}", "locale": "en"},
        {**person, "email": "ann@gmail.com"},
        {**person, "email": f"ANN@{partner.domain}"},
        {**person, "email": "not an address"},
        {**person, "email": member},
        {"first_name": "Bo", "email": f"bo@{partner.domain}"},
        {**person, "email": f"cy@{partner.domain}", "role": "admin"},
        {**person, "email": f"dee@{partner.domain}"},
    ]
    url = f"/v1/partners/{partner.id}/invitations/batch"

    response = await dev_stack.http.post(url, json={"people": people}, headers=partner_user(partner.admin))

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["status"], r["code"]) for r in results] == [
        (201, None),
        (422, "domain_not_registered"),
        (409, "already_invited"),
        (422, "invalid_input"),
        (409, "already_member"),
        (422, "invalid_input"),
        (422, "invalid_input"),  # no field beyond the documented ones
        (201, None),
    ]
    assert "last_name" in results[5]["detail"] and "role" in results[6]["detail"]
    created = [r["invitation"] for r in results if r["status"] == 201]
    assert [(i["email"], i["state"], i["locale"]) for i in created] == [
        (f"ann@{partner.domain}", "pending", "en"),
        (f"dee@{partner.domain}", "pending", "pt-BR"),
    ]
    await dev_stack.delivered(f"ann@{partner.domain}")
    await dev_stack.delivered(f"dee@{partner.domain}")
    stored = await dev_stack.pool.fetch(
        "SELECT email FROM invitations WHERE partner_id = $1::uuid AND purpose = 'member' ORDER BY email", partner.id
    )
    assert [r["email"] for r in stored] == [f"ann@{partner.domain}", f"dee@{partner.domain}", member]
    # Only the Admin, at most 50 at once.
    _problem(await dev_stack.http.post(url, json={"people": people}, headers=partner_user(member)), 403, "forbidden")
    _problem(
        await dev_stack.http.post(url, json={"people": people}, headers=holder(partner.enterprise)), 403, "forbidden"
    )
    too_many = [{**person, "email": f"p{n}@{partner.domain}"} for n in range(51)]
    _problem(
        await dev_stack.http.post(url, json={"people": too_many}, headers=partner_user(partner.admin)),
        422,
        "invalid_input",
    )
    _problem(
        await dev_stack.http.post(url, json={"people": []}, headers=partner_user(partner.admin)), 422, "invalid_input"
    )


async def test_invitations_page_newest_first_without_repeats_or_gaps(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    people = [{"first_name": "P", "last_name": str(n), "email": f"p{n}@{partner.domain}"} for n in range(7)]
    batch = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/invitations/batch", json={"people": people}, headers=partner_user(partner.admin)
    )
    assert [r["status"] for r in batch.json()["results"]] == [201] * 7
    second = await dev_stack.register(partner.enterprise, unique_domain())
    assert second.status_code == 201

    async def every_page(path: str, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(20):
            page = await _get(dev_stack, f"{path}?limit=3{query}" + (f"&cursor={cursor}" if cursor else ""), headers)
            assert page.status_code == 200, page.text
            assert len(page.json()["invitations"]) <= 3
            seen += page.json()["invitations"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("the pages never ended")

    by_partner = await every_page(f"/v1/partners/{partner.id}/invitations", partner_user(partner.admin))
    stored = await dev_stack.pool.fetch(
        "SELECT id::text FROM invitations WHERE partner_id = $1::uuid ORDER BY created_at DESC, id DESC", partner.id
    )
    assert [i["id"] for i in by_partner] == [r["id"] for r in stored] and len(stored) == 8
    pending = await every_page(f"/v1/partners/{partner.id}/invitations", holder(partner.enterprise), "&state=pending")
    assert len(pending) == 7 and {i["state"] for i in pending} == {"pending"}
    by_enterprise = await every_page(f"/v1/enterprises/{partner.enterprise}/invitations", holder(partner.enterprise))
    assert len(by_enterprise) == 9 and by_enterprise[0]["partner_id"] == second.json()["id"]
    assert by_enterprise[1:] == by_partner
    refused = [
        (await _get(dev_stack, f"/v1/partners/{partner.id}/invitations?cursor=bm9wZQ", holder(partner.enterprise)),
         422, "invalid_input"),
        (await _get(dev_stack, f"/v1/partners/{partner.id}/invitations?state=lost", holder(partner.enterprise)),
         422, "invalid_input"),
        (await _get(dev_stack, f"/v1/partners/{partner.id}/invitations?limit=0", holder(partner.enterprise)),
         422, "invalid_input"),
        (await _get(dev_stack, f"/v1/enterprises/{partner.enterprise}/invitations", partner_user(partner.admin)),
         403, "forbidden"),
    ]  # fmt: skip
    for response, status, code in refused:
        _problem(response, status, code)


async def test_the_partner_view_is_bounded_whatever_its_past(dev_stack: Stack) -> None:
    """A partner with years of invitations: the view shows the 50 newest pending ones and
    a count per state; the paged list holds every one. (Rows are written straight to the
    database: the view reads nothing else, and 75 invitations by the API would only be slower.)"""
    partner = await dev_stack.active_partner()
    await dev_stack.pool.execute(
        "INSERT INTO invitations (id, partner_id, email, first_name, last_name, role, purpose, state, max_sends,"
        " invited_by, workflow_id, created_at)"
        " SELECT gen_random_uuid(), $1::uuid, 'p' || n || '@' || $2, 'P', 'N' || n, 'member', 'member',"
        " CASE WHEN n <= 20 THEN 'cancelled' ELSE 'pending' END, 3, $3, 'invitation-x' || n,"
        " now() - make_interval(mins => 100 - n)"
        " FROM generate_series(1, 75) AS n",
        partner.id,
        partner.domain,
        partner.admin,
    )

    view = (await dev_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()

    shown = view["invitations"]
    assert len(shown) == 50 and {i["state"] for i in shown} == {"pending"}
    assert [i["email"] for i in shown[:2]] == [f"p75@{partner.domain}", f"p74@{partner.domain}"], "newest first"
    assert view["invitation_counts"] == {"accepted": 1, "cancelled": 20, "pending": 55}
    assert view["admin_invitation"]["email"] == partner.admin, "the admin's, though not pending"
    assert len(await dev_stack.invitations(partner.id, holder(partner.enterprise))) == 76


class CountingReads(ReadModel):
    """The real read model, counting what authorisation asks of it."""

    calls: ClassVar[list[str]] = []

    async def standing(self, partner_id: UUID, email: str | None) -> tuple[PartnerSummary, Role | None] | None:
        self.calls.append("standing")
        return await super().standing(partner_id, email)

    async def get_partner(self, partner_id: UUID) -> PartnerView | None:
        self.calls.append("get_partner")
        return await super().get_partner(partner_id)


async def test_who_the_actor_is_to_a_partner_is_one_query_not_the_view(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, stores={"reads": CountingReads}) as stack:
        partner = await stack.active_partner()
        path = f"/v1/partners/{partner.id}"
        for headers in (partner_user(partner.admin), holder(partner.enterprise)):
            for route in ("/members", "/invitations", "/audit"):
                CountingReads.calls.clear()
                answered = await stack.http.get(path + route, headers=headers)
                assert answered.status_code in (200, 403), answered.text
                assert CountingReads.calls == ["standing"], (route, CountingReads.calls)
        CountingReads.calls.clear()
        assert (await stack.http.get(path, headers=holder(partner.enterprise))).status_code == 200
        assert CountingReads.calls == ["standing", "get_partner"], "the view is read where it is shown"


async def test_the_access_question_is_answered_for_the_catalog_that_asks(dev_stack: Stack) -> None:
    """A ref is text each enterprise chooses: enterprise B granting its partner the ref of
    enterprise A's API opens nothing in A's catalog (R21)."""
    owner, other = await dev_stack.active_partner(), await dev_stack.active_partner()
    await _grant(dev_stack, other, "api", "acme-payments")
    as_other = partner_user(other.admin)

    async def check(enterprise: str, headers: dict[str, str]) -> dict[str, Any]:
        response = await _get(
            dev_stack, f"/v1/access/check?enterprise_id={enterprise}&kind=api&ref=acme-payments", headers
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    assert await check(owner.enterprise, as_other) == {"allowed": False, "partner_id": None, "role": None}
    assert await check(other.enterprise, as_other) == {"allowed": True, "partner_id": other.id, "role": "admin"}
    # Without the catalog's owner, the question is incomplete: refused, not answered.
    _problem(await _get(dev_stack, "/v1/access/check?kind=api&ref=acme-payments", as_other), 422, "invalid_input")
    # A ref no grant can have (a NUL byte, which PostgreSQL refuses in text): refused too.
    nul = f"/v1/access/check?enterprise_id={owner.enterprise}&kind=api&ref=%C3%BC%00"
    _problem(await _get(dev_stack, nul, as_other), 422, "invalid_input")
    # The owner's own grant answers for the owner's catalog only.
    await _grant(dev_stack, owner, "api", "acme-payments")
    as_owner = partner_user(owner.admin)
    assert (await check(owner.enterprise, as_owner))["partner_id"] == owner.id
    assert (await check(other.enterprise, as_owner))["allowed"] is False
    # /v1/access still lists each membership with its enterprise.
    listed = (await _get(dev_stack, "/v1/access", as_other)).json()["memberships"]
    assert [(m["enterprise_id"], [a["ref"] for a in m["apis"]]) for m in listed] == [
        (other.enterprise, ["acme-payments"])
    ]


async def test_the_person_named_next_admin_may_leave_and_the_replacement_ends_with_them(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"mel@{partner.domain}"
    await _member(dev_stack, partner, member)
    replaced = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/admin",
        json={"first_name": "Mel", "last_name": "Member", "email": member},
        headers=holder(partner.enterprise),
    )
    assert replaced.status_code == 202, replaced.text
    left = await dev_stack.http.post(f"/v1/partners/{partner.id}/leave", headers=partner_user(member))
    assert left.status_code == 200, left.text
    assert (
        await dev_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", replaced.json()["id"])
        == "cancelled"
    )
