"""R9, R10, R11: grants, irreversible deactivation, the audit log of a whole partner life."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.helpers.images import image
from tests.helpers.stack import ActivePartner, Stack, holder, partner_user, unique_domain

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


async def _grant(stack: Stack, partner: ActivePartner, kind: str, ref: str) -> httpx.Response:
    return await stack.http.post(
        f"/v1/partners/{partner.id}/grants",
        json={"kind": kind, "ref": ref, "name": f"The {ref}"},
        headers=holder(partner.enterprise),
    )


async def _deactivate(stack: Stack, partner: ActivePartner) -> httpx.Response:
    return await stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(partner.enterprise))


async def _view(stack: Stack, partner: ActivePartner) -> dict[str, Any]:
    view: dict[str, Any] = (
        await stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))
    ).json()
    return view


async def test_grant_list_revoke(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()

    product = await _grant(dev_stack, partner, "product", "payments")
    api = await _grant(dev_stack, partner, "api", "payments-api/v2")
    twice = await _grant(dev_stack, partner, "api", "payments-api/v2")

    assert (product.status_code, api.status_code) == (201, 201)
    assert (twice.status_code, twice.json()["code"]) == (409, "already_granted")
    assert [(g["kind"], g["ref"]) for g in (await _view(dev_stack, partner))["grants"]] == [
        ("product", "payments"),
        ("api", "payments-api/v2"),
    ]
    revoked = await dev_stack.http.delete(
        f"/v1/partners/{partner.id}/grants/{api.json()['id']}", headers=holder(partner.enterprise, "rev@ent.example")
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_by"] == "rev@ent.example" and revoked.json()["revoked_at"] is not None
    assert [g["ref"] for g in (await _view(dev_stack, partner))["grants"]] == ["payments"]
    kept = await dev_stack.pool.fetchrow("SELECT revoked_by FROM partner_grants WHERE id = $1::uuid", api.json()["id"])
    assert kept is not None and kept["revoked_by"] == "rev@ent.example", "a revoked grant is kept"
    again = await _grant(dev_stack, partner, "api", "payments-api/v2")
    assert again.status_code == 201, "granting again after a revoke is a new grant"
    bad = await dev_stack.http.post(
        f"/v1/partners/{partner.id}/grants",
        json={"kind": "database", "ref": "x", "name": "x"},
        headers=holder(partner.enterprise),
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")


async def test_deactivation_refused_while_apis_are_granted_then_irreversible(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    apis = [(await _grant(dev_stack, partner, "api", ref)).json() for ref in ("orders-api", "billing-api")]
    await _grant(dev_stack, partner, "product", "catalog")
    pending = (await dev_stack.invite(partner, f"pat@{partner.domain}")).json()
    [pending_mail] = await dev_stack.delivered(f"pat@{partner.domain}")

    refused = await _deactivate(dev_stack, partner)

    assert (refused.status_code, refused.json()["code"]) == (409, "api_access_granted")
    assert [a["ref"] for a in refused.json()["apis"]] == ["billing-api", "orders-api"]
    assert (await _view(dev_stack, partner))["status"] == "active", "nothing changed"
    for api in apis:
        await dev_stack.http.delete(f"/v1/partners/{partner.id}/grants/{api['id']}", headers=holder(partner.enterprise))

    done = await _deactivate(dev_stack, partner)

    assert done.status_code == 200, done.text
    view = done.json()
    assert view["status"] == "deactivated" and view["deactivated_at"] is not None
    assert view["members"] == [] and view["grants"] == [], "members lose access; grants end"
    every = await dev_stack.invitations(partner.id, holder(partner.enterprise))
    assert {i["id"]: i["state"] for i in every}[pending["id"]] == "cancelled"
    page = await dev_stack.http.post(f"{pending_mail.link}/accept")
    assert page.status_code == 409 and 'data-outcome="partner_deactivated"' in page.text
    # Irreversible: every later operation is refused, and says why.
    later = {
        "grant": await _grant(dev_stack, partner, "product", "other"),
        "replace admin": await dev_stack.http.post(
            f"/v1/partners/{partner.id}/admin",
            json={"first_name": "N", "last_name": "N", "email": f"nn@{partner.domain}"},
            headers=holder(partner.enterprise),
        ),
        "resend": await dev_stack.http.post(
            f"/v1/invitations/{pending['id']}/resend", headers=holder(partner.enterprise)
        ),
        "cancel": await dev_stack.http.post(
            f"/v1/invitations/{pending['id']}/cancel", headers=holder(partner.enterprise)
        ),
        "logo": await dev_stack.http.put(
            f"/v1/partners/{partner.id}/logo", content=PNG, headers=holder(partner.enterprise)
        ),
    }
    for name, response in later.items():
        assert (response.status_code, response.json()["code"]) == (409, "partner_deactivated"), name
    # Its former Admin lost access with it: to them the partner does not exist any more.
    invite = await dev_stack.invite(partner, f"late@{partner.domain}")
    assert (invite.status_code, invite.json()["code"]) == (404, "not_found")
    again = await _deactivate(dev_stack, partner)
    assert again.status_code == 200 and again.json()["status"] == "deactivated"
    assert again.json()["deactivated_at"] == view["deactivated_at"]


async def test_deactivation_frees_the_slot_and_the_domains(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    await dev_stack.pool.execute("UPDATE enterprises SET partner_limit = 1 WHERE id = $1", partner.enterprise)
    full = await dev_stack.register(partner.enterprise, unique_domain())
    assert (full.status_code, full.json()["code"]) == (409, "partner_limit_reached")

    assert (await _deactivate(dev_stack, partner)).status_code == 200

    reborn = await dev_stack.register(partner.enterprise, partner.domain, admin=f"new@{partner.domain}")
    assert reborn.status_code == 201, reborn.text
    assert reborn.json()["domains"] == [partner.domain]


@pytest.mark.parametrize("round_", range(3))
async def test_grants_racing_deactivation_end_consistent(dev_stack: Stack, round_: int) -> None:
    """20 concurrent requests, half grants of APIs, half deactivations: one world wins whole."""
    partner = await dev_stack.active_partner()

    async with asyncio.timeout(60):
        responses = await asyncio.gather(
            *(
                _grant(dev_stack, partner, "api", f"api-{i}") if i % 2 else _deactivate(dev_stack, partner)
                for i in range(20)
            )
        )

    grants = [r for i, r in enumerate(responses) if i % 2]
    deactivations = [r for i, r in enumerate(responses) if not i % 2]
    outcome = Counter((r.status_code, r.json().get("code")) for r in responses)
    status = await dev_stack.pool.fetchval("SELECT status FROM partners WHERE id = $1::uuid", partner.id)
    live_apis = await dev_stack.pool.fetchval(
        "SELECT count(*) FROM partner_grants WHERE partner_id = $1::uuid AND kind = 'api' AND revoked_at IS NULL",
        partner.id,
    )
    granted = sum(r.status_code == 201 for r in grants)
    assert all(r.status_code in (201, 409) for r in grants), outcome
    assert all(r.status_code in (200, 409) for r in deactivations), outcome
    if status == "deactivated":
        # Deactivation won: no grant got in before it, none after.
        assert live_apis == 0 and granted == 0, outcome
        assert {r.json()["code"] for r in grants} == {"partner_deactivated"}
    else:
        assert status == "active" and live_apis == granted > 0, outcome
        assert {r.json()["code"] for r in deactivations} == {"api_access_granted"}


async def test_audit_log_of_a_whole_partner_life(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    member = f"m@{partner.domain}"
    await dev_stack.invite(partner, member)
    [mail] = await dev_stack.mail.wait_for(member)
    await dev_stack.http.post(f"{mail.link}/accept")
    api = (await _grant(dev_stack, partner, "api", "ledger-api")).json()
    await dev_stack.http.delete(f"/v1/partners/{partner.id}/grants/{api['id']}", headers=holder(partner.enterprise))
    await dev_stack.http.put(f"/v1/partners/{partner.id}/logo", content=PNG, headers=holder(partner.enterprise))
    await _deactivate(dev_stack, partner)

    first = await dev_stack.http.get(f"/v1/partners/{partner.id}/audit?limit=5", headers=holder(partner.enterprise))
    entries = first.json()["entries"]
    before = first.json()["next_before"]
    while before is not None:
        page = await dev_stack.http.get(
            f"/v1/partners/{partner.id}/audit?limit=5&before={before}", headers=holder(partner.enterprise)
        )
        entries += page.json()["entries"]
        before = page.json()["next_before"]

    actions = [e["action"] for e in reversed(entries)]  # oldest first
    assert actions == [
        "partner_registered",
        "invitation_sent",
        "invitation_accepted",
        "member_added",
        "partner_activated",
        "invitation_created",
        "invitation_sent",
        "invitation_accepted",
        "member_added",
        "grant",
        "revoke",
        "logo_set",
        "partner_deactivated",
    ]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), "newest first, no repeats"
    assert all(e["actor"] and e["at"] for e in entries)
    token = mail.link.rsplit("/", 1)[1]
    assert token not in first.text and all(token not in str(e["details"]) for e in entries), "no token, ever"
    # Its former Admin lost access with the deactivation: to them it no longer exists (R12).
    former = await dev_stack.http.get(f"/v1/partners/{partner.id}/audit", headers=partner_user(partner.admin))
    assert (former.status_code, former.json()["code"]) == (404, "not_found")


PNG, JPEG, WEBP = image("PNG"), image("JPEG"), image("WEBP")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


async def test_logo_by_content_shown_on_the_page_and_in_the_mail(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    url = f"/v1/partners/{partner.id}/logo"
    headers = holder(partner.enterprise)

    for data, kind in ((JPEG, "image/jpeg"), (WEBP, "image/webp"), (PNG, "image/png")):
        put = await dev_stack.http.put(
            url, content=data, headers={**headers, "Content-Type": "application/octet-stream"}
        )
        assert (put.status_code, put.json()["content_type"]) == (200, kind), put.text
    svg = await dev_stack.http.put(url, content=SVG, headers={**headers, "Content-Type": "image/png"})
    huge = await dev_stack.http.put(url, content=PNG + b"\x00" * 512 * 1024, headers=headers)

    assert (svg.status_code, svg.json()["code"]) == (415, "unsupported_logo")
    assert (huge.status_code, huge.json()["code"]) == (413, "logo_too_large")
    served = await dev_stack.http.get(url, headers=headers)
    assert (served.status_code, served.headers["content-type"], served.content) == (200, "image/png", PNG)
    assert served.headers["x-content-type-options"] == "nosniff"
    assert (await _view(dev_stack, partner))["has_logo"] is True
    await dev_stack.invite(partner, f"logo@{partner.domain}")
    [mail] = await dev_stack.mail.wait_for(f"logo@{partner.domain}")
    public = f"{dev_stack.base_url}/partners/{partner.id}/logo"
    assert f'src="{public}"' in mail.html
    page = await dev_stack.http.get(mail.link)
    assert f'src="/partners/{partner.id}/logo"' in page.text
    assert (await dev_stack.http.get(public)).content == PNG


def _declared(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares a `width` x `height` canvas."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


async def test_a_logo_is_decoded_whole_and_a_huge_canvas_is_refused(dev_stack: Stack) -> None:
    """The first bytes are not enough: an image that does not decode, or a small file that
    declares a canvas able to fill a viewer's memory, is refused and nothing is kept."""
    partner = await dev_stack.active_partner()
    url, headers = f"/v1/partners/{partner.id}/logo", holder(partner.enterprise)
    kept = await dev_stack.http.put(url, content=image("PNG", 2048, 2048), headers=headers)
    assert kept.status_code == 200, kept.text
    for data, status, code in (
        (_declared(20_000, 20_000), 422, "logo_dimensions"),
        (image("PNG", 2049, 16), 422, "logo_dimensions"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 415, "unsupported_logo"),
        (image("JPEG")[:40], 415, "unsupported_logo"),
    ):
        refused = await dev_stack.http.put(url, content=data, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
    served = await dev_stack.http.get(url, headers=headers)
    assert served.content == image("PNG", 2048, 2048), "a refusal changes nothing"
