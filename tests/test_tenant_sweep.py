"""R21, swept over the whole API: every operation of the OpenAPI document, called by
people who have no business with enterprise A, with the ids of A's partner, invitation,
grant, webhook and delivery, answers what a missing thing gets (404, or the 403 the
contract names for an actor outside the enterprise), and changes nothing in the database.

The operations come from the document itself: a route added later is swept without
anyone writing its test. Its request body is filled from its schema; a body the sweep
cannot fill, or an operation that names none of A's ids and is not one of the
actor's own (below), fails the test until it is said here what it is."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg

from tests.helpers.images import image
from tests.helpers.receiver import receiving
from tests.helpers.stack import ActivePartner, Stack, api_client, holder, partner_user, unique_domain
from tests.helpers.waiting import eventually

# Operations about the acting person only, with no id of anyone else's: checked apart.
_OWN = {
    ("GET", "/v1/access"),
    ("GET", "/v1/access/check"),
    ("POST", "/v1/console/sessions"),
    ("DELETE", "/v1/console/sessions"),
    ("POST", "/v1/invitations/accept"),
}
# What an outsider may be answered: the thing does not exist for them, or they are not
# allowed (an account holder of another enterprise naming A in the path).
_REFUSED = {403, 404}


def _fill(schema: dict[str, Any], document: dict[str, Any], name: str, values: dict[str, Any]) -> Any:
    """A valid instance of `schema`; a field whose name `values` knows gets that value."""
    if "$ref" in schema:
        return _fill(document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], document, name, values)
    if name in values:
        return values[name]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _fill(options[0], document, name, values)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        required = schema.get("required", [])
        return {k: _fill(s, document, k, values) for k, s in schema.get("properties", {}).items() if k in required}
    if kind == "array":
        return [_fill(schema["items"], document, name, values)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        return "Sweep"
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    raise AssertionError(f"the sweep cannot fill {name}: {schema}")


async def _snapshot(pool: asyncpg.Pool) -> dict[str, str]:
    """Every table's rows, as one digest each."""
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
    )
    digests = {}
    for row in tables:
        name = row["tablename"]
        digests[name] = await pool.fetchval(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{name}\" t"  # noqa: S608
        )
    return digests


async def _quiet(stack: Stack, enterprise: str) -> None:
    """Until enterprise A's webhook endpoint has delivered everything and sleeps, and its
    mails are sent: nothing of A's moves on its own while the sweep runs."""
    async with asyncio.timeout(30):
        while await stack.pool.fetchval(
            "SELECT count(*) FROM webhook_endpoints w WHERE enterprise_id = $1 AND (NOT sleeping OR EXISTS"
            " (SELECT 1 FROM events e WHERE e.enterprise_id = w.enterprise_id AND e.seq > w.delivered_through))",
            enterprise,
        ) or await stack.pool.fetchval(
            "SELECT count(*) FROM invitations i JOIN partners p ON p.id = i.partner_id WHERE p.enterprise_id = $1"
            " AND i.state = 'pending' AND NOT EXISTS (SELECT 1 FROM invitation_sends s WHERE s.invitation_id = i.id"
            " AND s.status = 'sent')",
            enterprise,
        ):
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)


async def test_no_operation_lets_an_outsider_read_or_change_another_enterprises_data(dev_stack: Stack) -> None:
    stack = dev_stack
    async with receiving() as receiver:
        a = await stack.active_partner()
        member, pending = f"mel@{a.domain}", f"pia@{a.domain}"
        invited = await stack.invite(a, member)
        assert invited.status_code == 201, invited.text
        [member_mail] = await stack.delivered(member)
        assert 'data-outcome="accepted"' in (await stack.http.post(f"{member_mail.link}/accept")).text
        invitation = (await stack.invite(a, pending)).json()["id"]
        [pending_mail] = await stack.delivered(pending)
        grant = (
            await stack.http.post(
                f"/v1/partners/{a.id}/grants",
                json={"kind": "api", "ref": "acme-payments", "name": "Payments"},
                headers=holder(a.enterprise),
            )
        ).json()["id"]
        logo = await stack.http.put(f"/v1/partners/{a.id}/logo", content=image("PNG"), headers=holder(a.enterprise))
        assert logo.status_code == 200
        hooks = f"/v1/enterprises/{a.enterprise}/webhooks"
        webhook = (await stack.http.post(hooks, json={"url": receiver.url}, headers=holder(a.enterprise))).json()["id"]
        await stack.http.post(f"/v1/partners/{a.id}/grants", json={"kind": "product", "ref": "maps", "name": "Maps"},
                              headers=holder(a.enterprise))  # fmt: skip
        await receiver.wait_for(1)

        async def deliveries() -> list[dict[str, Any]]:  # recorded a moment after the receiver answered
            listed: list[dict[str, Any]] = (
                await stack.http.get(f"{hooks}/{webhook}/deliveries", headers=holder(a.enterprise))
            ).json()["deliveries"]
            return listed

        delivery = (await eventually(deliveries))[0]["id"]
        b: ActivePartner = await stack.active_partner()
        # B grants its own partner the ref A's API has: it must open nothing in A's catalog.
        granted = await stack.http.post(
            f"/v1/partners/{b.id}/grants",
            json={"kind": "api", "ref": "acme-payments", "name": "B's own"},
            headers=holder(b.enterprise),
        )
        assert granted.status_code == 201, granted.text
        outsiders = {
            "holder of another enterprise": holder(b.enterprise, f"holder@{b.domain}"),
            "partner user of another partner": partner_user(b.admin),
            "person of no partner": partner_user(f"nobody@{unique_domain()}"),
        }
        ids = {
            "enterprise_id": a.enterprise,
            "partner_id": a.id,
            "invitation_id": invitation,
            "grant_id": grant,
            "webhook_id": webhook,
            "delivery_id": str(delivery),
            "email": member,
        }
        values = {
            "email": f"new@{a.domain}",
            "domains": [unique_domain()],
            "url": receiver.url,
            "token": pending_mail.token,
            "ref": "acme-payments",
            "kind": "api",
            "events": ["*"],
        }
        document = (await stack.http.get("/openapi.json")).json()
        await _quiet(stack, a.enterprise)
        before = await _snapshot(stack.pool)

        swept: list[str] = []
        async with api_client(stack.base_url) as http:
            for path, operations in document["paths"].items():
                if not path.startswith("/v1/"):
                    continue  # the public pages and probes hold no tenant's data by id
                for method, operation in operations.items():
                    key = (method.upper(), path)
                    named = re.findall(r"{(\w+)}", path)
                    if key in _OWN:
                        continue
                    assert named, f"{key} names no id and is not the actor's own: say which it is in _OWN"
                    url = path.format(**{n: ids[n] for n in named})
                    body = None
                    if "requestBody" in operation:
                        content = operation["requestBody"]["content"]
                        if "application/json" in content:
                            body = {"json": _fill(content["application/json"]["schema"], document, "", values)}
                        else:
                            body = {"content": image("PNG")}
                    for who, headers in outsiders.items():
                        answer = await http.request(key[0], url, headers=headers, **(body or {}))
                        assert answer.status_code in _REFUSED, (who, key, answer.status_code, answer.text)
                        assert answer.headers["content-type"].startswith("application/problem+json"), (who, key)
                        for secret in (member, pending, a.domain):
                            assert secret not in answer.text or secret in url, (who, key, secret)
                    swept.append(f"{key[0]} {path}")

            # The actor's own operations, with A's ids where they take one: A's grant opens
            # nothing to them, and A's invitation link is not theirs to accept.
            for who, headers in outsiders.items():
                check = await http.get(
                    "/v1/access/check",
                    params={"enterprise_id": a.enterprise, "kind": "api", "ref": "acme-payments"},
                    headers=headers,
                )
                assert check.json() == {"allowed": False, "partner_id": None, "role": None}, who
                listed = (await http.get("/v1/access", headers=headers)).json()["memberships"]
                assert a.id not in [m["partner_id"] for m in listed], who
                accepted = await http.post(
                    "/v1/invitations/accept", json={"token": pending_mail.token}, headers=headers
                )
                assert accepted.status_code in (403, 404), (who, accepted.text)

        assert len(swept) >= 25, swept
        assert await _snapshot(stack.pool) == before, "an outsider's request changed the database"
        refused_audit = await stack.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE enterprise_id = $1 AND actor = ANY($2::text[])",
            a.enterprise,
            [h["X-Actor-Email"] for h in outsiders.values()],
        )
        assert refused_audit == 0
