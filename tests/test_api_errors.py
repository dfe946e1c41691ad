"""Every error the portal can meet: problem+json, a stable code, and nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from tests.helpers.stack import (
    API_TOKEN,
    Stack,
    holder,
    new_enterprise,
    partner_body,
    running_stack,
    unique_domain,
)
from tests.helpers.waiting import eventually

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


async def _footprint(pool: asyncpg.Pool, enterprise: str) -> tuple[int, ...]:
    """Rows an enterprise has anywhere: a refused request must leave this as it was."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM partners WHERE enterprise_id = $1),"
        " (SELECT count(*) FROM partner_domains WHERE enterprise_id = $1),"
        " (SELECT count(*) FROM invitations i JOIN partners p ON p.id = i.partner_id"
        "  WHERE p.enterprise_id = $1),"
        " (SELECT count(*) FROM audit_log WHERE enterprise_id = $1)",
        enterprise,
    )
    assert row is not None
    return tuple(row)


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["title"] and body["detail"] and body["type"].endswith(f"/{code}")
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": f"Bearer {API_TOKEN}x"},
    ],
    ids=["none", "wrong", "not-bearer", "longer"],
)
async def test_unauthorized_without_the_portal_token(dev_stack: Stack, headers: dict[str, str]) -> None:
    enterprise = new_enterprise()
    actor = {k: v for k, v in holder(enterprise).items() if k != "Authorization"}

    response = await dev_stack.http.post(
        f"/v1/enterprises/{enterprise}/partners",
        json=partner_body(unique_domain()),
        headers={**actor, **headers},
    )

    _problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await _footprint(dev_stack.pool, enterprise) == (0, 0, 0, 0)


async def test_refused_to_other_enterprises_and_outsiders(dev_stack: Stack) -> None:
    enterprise, other, domain = new_enterprise(), new_enterprise(), unique_domain()
    created = (await dev_stack.register(enterprise, domain)).json()
    await dev_stack.delivered(f"ada@{domain}")  # its "invitation sent" is in the audit log
    partner_user = {**holder(enterprise), "X-Actor-Role": "partner_user"}
    del partner_user["X-Actor-Enterprise"]
    before = await _footprint(dev_stack.pool, enterprise)

    calls = [
        dev_stack.http.post(
            f"/v1/enterprises/{enterprise}/partners",
            json=partner_body(unique_domain()),
            headers=holder(other),
        ),
        dev_stack.http.post(
            f"/v1/enterprises/{enterprise}/partners", json=partner_body(unique_domain()), headers=partner_user
        ),
        dev_stack.http.get(f"/v1/enterprises/{enterprise}/partners", headers=holder(other)),
    ]
    for call in calls:
        _problem(await call, 403, "forbidden")
    # R12: to anyone neither its account holder nor its member, the partner does not exist.
    for headers in (holder(other), partner_user):
        _problem(await dev_stack.http.get(f"/v1/partners/{created['id']}", headers=headers), 404, "not_found")
    assert await _footprint(dev_stack.pool, enterprise) == before


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda b: b.pop("name"), "name"),
        (lambda b: b.update(name="   "), "name"),
        (lambda b: b.update(name="Evil\r\nBcc: x@y.example"), "name"),
        (lambda b: b.update(name="x" * 121), "name"),
        (lambda b: b.update(domains=[]), "domains"),
        (lambda b: b.update(domains=["not a domain"]), "domains"),
        (lambda b: b.update(domains=["a@b.example"]), "domains"),
        (lambda b: b.update(domains=[f"d{i}.example" for i in range(21)]), "domains"),
        (lambda b: b["admin"].update(email="not-an-address"), "email"),
        (lambda b: b["admin"].update(email='"ada"@x.example'), "email"),
        (lambda b: b["admin"].update(email="ada@x.example@y.example"), "email"),
        (lambda b: b["admin"].update(first_name="Ada\x00"), "first_name"),
        (lambda b: b["admin"].update(last_name="L\nX"), "last_name"),
        (lambda b: b["admin"].pop("last_name"), "last_name"),
        (lambda b: b.update(unexpected=1), "unexpected"),
    ],
    ids=[
        "no-name", "blank-name", "crlf-name", "long-name", "no-domains", "bad-domain", "address-as-domain",
        "21-domains", "bad-email", "quoted-email", "double-at", "nul-first-name", "lf-last-name",
        "no-last-name", "extra-field",
    ],
)  # fmt: skip
async def test_invalid_input(dev_stack: Stack, change: Any, where: str) -> None:
    enterprise = new_enterprise()
    body = partner_body(unique_domain())
    change(body)

    response = await dev_stack.http.post(
        f"/v1/enterprises/{enterprise}/partners", json=body, headers=holder(enterprise)
    )

    problem = _problem(response, 422, "invalid_input")
    assert any(where in error["loc"] for error in problem["errors"]), problem
    assert await _footprint(dev_stack.pool, enterprise) == (0, 0, 0, 0)


async def test_invalid_input_for_malformed_requests(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    url = f"/v1/enterprises/{enterprise}/partners"

    not_json = await dev_stack.http.post(
        url, content=b"{not json", headers={**holder(enterprise), "Content-Type": "application/json"}
    )
    bad_enterprise = await dev_stack.http.post(
        "/v1/enterprises/bad%20id!/partners", json=partner_body(unique_domain()), headers=holder("bad id!")
    )
    bad_role = await dev_stack.http.get(url, headers={**holder(enterprise), "X-Actor-Role": "root"})
    no_actor = await dev_stack.http.get(url, headers={"Authorization": f"Bearer {API_TOKEN}"})
    bad_partner_id = await dev_stack.http.get("/v1/partners/not-a-uuid", headers=holder(enterprise))

    for response in (not_json, bad_enterprise, bad_role, no_actor, bad_partner_id):
        _problem(response, 422, "invalid_input")
    assert await _footprint(dev_stack.pool, enterprise) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "admin",
    ["ada@other.example", "ada@{d}.evil.example", "ada@sub.{d}", "ada@evil{d}"],
    ids=["other-domain", "suffix-trick", "subdomain", "prefix-trick"],
)
async def test_domain_not_registered_for_the_admin(dev_stack: Stack, admin: str) -> None:
    enterprise, domain = new_enterprise(), unique_domain()

    response = await dev_stack.register(enterprise, domain, admin=admin.format(d=domain))

    problem = _problem(response, 422, "domain_not_registered")
    assert problem["domains"] == [domain]
    assert await _footprint(dev_stack.pool, enterprise) == (0, 0, 0, 0)


async def test_admin_address_is_normalised_before_the_domain_check(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()

    response = await dev_stack.register(enterprise, domain.upper() + ".", admin=f"Ada+Partners@{domain.upper()}")

    assert response.status_code == 201, response.text
    assert response.json()["domains"] == [domain]
    assert response.json()["admin"]["email"] == f"ada+partners@{domain}"


async def test_domain_taken_within_an_enterprise_only(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    assert (await dev_stack.register(enterprise, domain)).status_code == 201
    await dev_stack.delivered(f"ada@{domain}")  # its "invitation sent" is in the audit log
    before = await _footprint(dev_stack.pool, enterprise)

    taken = await dev_stack.register(enterprise, domain, admin=f"bob@{domain}")
    elsewhere = await dev_stack.register(new_enterprise(), domain)

    problem = _problem(taken, 409, "domain_taken")
    assert problem["domains"] == [domain]
    assert await _footprint(dev_stack.pool, enterprise) == before
    assert elsewhere.status_code == 201


async def test_partner_limit_reached_per_enterprise_value(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    await dev_stack.pool.execute("INSERT INTO enterprises (id, partner_limit) VALUES ($1, 2)", enterprise)
    for domain in (unique_domain(), unique_domain()):
        assert (await dev_stack.register(enterprise, domain)).status_code == 201
        await dev_stack.delivered(f"ada@{domain}")
    before = await _footprint(dev_stack.pool, enterprise)

    refused = await dev_stack.register(enterprise, unique_domain())

    problem = _problem(refused, 409, "partner_limit_reached")
    assert problem["limit"] == 2
    assert await _footprint(dev_stack.pool, enterprise) == before


async def test_not_found(dev_stack: Stack) -> None:
    enterprise = new_enterprise()

    missing_partner = await dev_stack.http.get(
        "/v1/partners/00000000-0000-4000-8000-000000000000", headers=holder(enterprise)
    )
    missing_route = await dev_stack.http.get("/v1/nothing-here", headers=holder(enterprise))
    wrong_method = await dev_stack.http.delete(f"/v1/enterprises/{enterprise}/partners", headers=holder(enterprise))

    _problem(missing_partner, 404, "not_found")
    _problem(missing_route, 404, "not_found")
    _problem(wrong_method, 405, "method_not_allowed")


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


async def test_every_reference_of_the_openapi_document_resolves(dev_stack: Stack) -> None:
    """A client generator follows every $ref: one that points nowhere breaks it."""
    openapi = (await dev_stack.http.get("/openapi.json")).json()
    schemas = openapi["components"]["schemas"]

    refs = _refs(openapi)

    assert "#/components/schemas/ErrorCode" in refs
    missing = {r for r in refs if r.removeprefix("#/components/schemas/") not in schemas}
    assert missing == set()
    assert "invitation_expired" in schemas["ErrorCode"]["enum"]


async def test_openapi_and_health(dev_stack: Stack) -> None:
    openapi = (await dev_stack.http.get("/openapi.json")).json()
    health = await dev_stack.http.get("/healthz")
    # Ready once the server lists the worker's poll, as an orchestrator's probe finds it: a
    # versioned worker's first poll waits for its build to be registered (a fraction of a second).
    ready = await eventually(
        lambda: dev_stack.operator.get("/readyz"), lambda r: r.json()["workers"] == "ok", timeout=10, interval=0.1
    )

    assert "/v1/enterprises/{enterprise_id}/partners" in openapi["paths"]
    assert "/invitations/{token}/accept" in openapi["paths"]
    assert health.json() == {"status": "ok"}
    assert ready.json() == {"status": "ok", "database": "ok", "temporal": "ok", "workers": "ok", "mail": "ok"}
    # The public port says ready or not, nothing of what is inside; it has no codec.
    assert (await dev_stack.http.get("/readyz")).json() == {"status": "ok"}
    assert not [path for path in openapi["paths"] if path.startswith("/codec")]
    for path in ("/codec/decode", "/codec/encode"):
        missing = await dev_stack.http.post(path, json={"payloads": []})
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found"), path


async def test_bad_links_all_get_the_same_answer_and_brute_force_gets_429(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, link_attempt_limit=6) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        await stack.register(enterprise, domain)
        [mail_] = await stack.delivered(f"ada@{domain}")
        token = mail_.link.rsplit("/", 1)[1]
        bad = [
            "x",
            token[:-1],  # truncated
            token + "A",  # over-long
            "A" * 43,  # well-formed, unknown
            "%00" + token[3:],  # malformed
            "a" * 5000,  # huge
        ]
        client = {"X-Forwarded-For": "192.0.2.44"}  # a client of its own: the count is shared
        answers = [await stack.http.post(f"/invitations/{t}/accept", headers=client) for t in bad]
        statuses = {(r.status_code, 'data-outcome="invalid"' in r.text) for r in answers}
        assert statuses == {(404, True)}, "one generic answer, whatever was wrong"
        assert len({r.text for r in answers}) == 1

        blocked = await stack.http.get(f"/invitations/{'B' * 43}", headers=client)  # one more guess
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert 'data-outcome="too_many_attempts"' in blocked.text
        # A valid link is never refused because of bad attempts: it is looked up first.
        valid = await stack.http.get(mail_.link, headers=client)
        assert valid.status_code == 200 and 'id="accept"' in valid.text
        partner = await stack.pool.fetchval("SELECT status FROM partners WHERE enterprise_id = $1", enterprise)
        assert partner == "pending", "nothing was accepted"


# --- bodies are bounded before they are read ------------------------------------------------


async def _stream(total: int, sent: list[int], chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A chunked body (no Content-Length), counting what the client got to send."""
    while sent[0] < total:
        sent[0] += chunk
        yield b"x" * chunk


async def test_an_unauthenticated_huge_body_costs_nothing(dev_stack: Stack) -> None:
    sent = [0]
    enterprise = new_enterprise()
    try:
        answer = await dev_stack.http.post(
            f"/v1/enterprises/{enterprise}/partners",
            content=_stream(300 * 1024 * 1024, sent),
            headers={"Content-Type": "application/json"},
        )
        assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized")
    except httpx.TransportError:
        pass  # the server answered and closed before the client stopped sending
    assert sent[0] < 32 * 1024 * 1024, f"the server read {sent[0]} bytes of a body it had no need for"


async def _raw_post(stack: Stack, method: str, path: str, headers: dict[str, str], total: int) -> tuple[int, Any]:
    """A chunked upload over a plain socket that reads the answer while it still sends,
    as curl does: httpx writes the whole body before it reads, and so never sees a 413
    from a server that stops reading."""
    host, port = stack.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Transfer-Encoding": "chunked"}.items())
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
    chunk, answer = b"x" * (16 * 1024), b""
    with contextlib.suppress(ConnectionError):
        for _ in range(total // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            with contextlib.suppress(TimeoutError):  # answered already? stop sending
                answer = await asyncio.wait_for(reader.read(65536), 0.01)
            if answer:
                break
    async with asyncio.timeout(10):
        while not answer.endswith(b"}"):
            answer += await reader.read(65536)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_bodies_over_the_bound_get_413_and_change_nothing(dev_stack: Stack) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    body = partner_body(domain, name="N" * 10) | {"padding": "x" * (70 * 1024)}
    declared = await dev_stack.http.post(
        f"/v1/enterprises/{enterprise}/partners", json=body, headers=holder(enterprise)
    )
    chunked = await _raw_post(
        dev_stack,
        "POST",
        f"/v1/enterprises/{enterprise}/partners",
        {**holder(enterprise), "Content-Type": "application/json"},
        1024 * 1024,
    )

    assert (declared.status_code, declared.json()["code"]) == (413, "payload_too_large")
    assert (chunked[0], chunked[1]["code"]) == (413, "payload_too_large")
    assert await dev_stack.pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", enterprise) == 0
    partner = await dev_stack.active_partner()
    status, logo = await _raw_post(
        dev_stack,
        "PUT",
        f"/v1/partners/{partner.id}/logo",
        {**holder(partner.enterprise), "Content-Type": "image/png"},
        2 * 1024 * 1024,
    )
    assert (status, logo["code"]) == (413, "logo_too_large")


async def test_with_no_worker_the_api_answers_503_and_never_hangs(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, with_worker=False, temporal_call_timeout=1.5) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        async with asyncio.timeout(10):
            registered = await stack.register(enterprise, domain)
            ready = await stack.operator.get("/readyz")
            public = await stack.http.get("/readyz")

        assert (registered.status_code, registered.json()["code"]) == (503, "unavailable")
        assert int(registered.headers["retry-after"]) > 0
        assert ready.status_code == 503
        assert ready.json()["workers"].startswith("failing") and ready.json()["database"] == "ok"
        assert (public.status_code, public.json()) == (503, {"status": "failing"}), "no internals in public"
        assert (await stack.http.get("/healthz")).status_code == 200, "alive, only not ready"


async def test_the_link_limiter_counts_per_client_across_api_processes(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """Two API processes share one count (PostgreSQL); the client is who the trusted
    proxy names, an IPv6 client counts per /64, and other clients are not held."""
    async with (
        running_stack(dev_env, pool, mail, link_attempt_limit=4) as first,
        running_stack(dev_env, pool, mail, link_attempt_limit=4, with_worker=False) as second,
    ):
        unknown = "/invitations/" + "C" * 43
        attacker = [{"X-Forwarded-For": f"2001:db8:7:{i}::1"} for i in range(1)] + [
            {"X-Forwarded-For": f"2001:db8:7:0:{i}::9"} for i in range(1, 4)
        ]
        answers = []
        for i, headers in enumerate(attacker):  # four addresses of one /64, through both APIs
            answers.append((await (first if i % 2 else second).http.get(unknown, headers=headers)).status_code)
        blocked = await first.http.get(unknown, headers={"X-Forwarded-For": "2001:db8:7::abcd"})
        other = await second.http.get(unknown, headers={"X-Forwarded-For": "2001:db8:8::1"})

        assert answers == [404, 404, 404, 404]
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert other.status_code == 404, "another client is not held"


async def test_an_untrusted_peer_cannot_pick_its_address_with_x_forwarded_for(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """Only FORWARDED_ALLOW_IPS name the client: here 127.0.0.1 is not trusted, so a new
    X-Forwarded-For on every try does not escape the limit."""
    async with running_stack(
        dev_env, pool, mail, link_attempt_limit=3, forwarded_allow_ips="192.0.2.1", with_worker=False
    ) as stack:
        unknown = "/invitations/" + "E" * 43
        answers = [
            (await stack.http.get(unknown, headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
            for i in range(5)
        ]

        assert answers[-1] == 429 and answers.count(404) <= 3, answers


async def test_a_flood_of_public_readiness_checks_costs_one_check_a_second(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """The public /readyz answers from the last check: however many ask, at most one check
    (a database round trip, two Temporal calls) runs a second, as for /healthz none does."""
    async with running_stack(dev_env, pool, mail) as stack:
        reads = stack.stores.reads
        checks = 0
        ping = reads.ping

        async def counted_ping() -> None:  # the real round trip, counted
            nonlocal checks
            checks += 1
            await ping()

        reads.ping = counted_ping  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        started = loop.time()
        gate = asyncio.Semaphore(50)

        async def ask() -> int:
            async with gate:
                return (await stack.http.get("/readyz")).status_code

        async with asyncio.timeout(60):
            answers = await asyncio.gather(*(ask() for _ in range(600)))
        elapsed = loop.time() - started
        assert set(answers) <= {200, 503} and 200 in answers
        assert checks <= elapsed + 2, (checks, elapsed)
        # The operators' listener still checks at each call, in detail.
        before = checks
        detailed = await stack.operator.get("/readyz")
        assert detailed.json()["database"] == "ok" and checks == before + 1
