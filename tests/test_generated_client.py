"""The OpenAPI document as a portal team uses it: valid, complete, and a typed client
generated from it (openapi-python-client) walks the README's story against the real API."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.helpers.images import image
from tests.helpers.stack import API_TOKEN, Stack, new_enterprise, unique_domain

PACKAGE = "portal_client"


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


async def test_the_document_is_valid_and_every_operation_declares_security_and_errors(dev_stack: Stack) -> None:
    document = (await dev_stack.http.get("/openapi.json")).json()

    validate(document)  # raises with the first violation of the OpenAPI 3.1 specification
    # What linters in common use ask for: where to send requests, under what licence.
    assert [server["url"] for server in document["servers"]] == [dev_stack.base_url]
    assert document["info"]["license"]["name"]

    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)), "operation ids are unique: they name the client's functions"
    for method, path, operation in _operations(document):
        errors = {status for status in operation["responses"] if status[0] in "45"}
        if path.startswith("/v1/"):
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            assert {"401", "403", "404", "422", "503"} <= errors, (method, path)
            for status in errors:
                content = operation["responses"][status]["content"]
                assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        elif path.startswith("/codec/"):  # operators' token, where CODEC_AUTH_TOKEN is set
            assert operation["security"] == [{"CodecToken": []}, {}], (method, path)
            assert {"401", "422"} <= errors, (method, path)
        else:
            assert operation["security"] == [], (method, path)  # public, and saying so
            assert errors, (method, path)  # every operation says how it refuses
    # The operators' listener documents its own: the codec, with its token.
    operators = (await dev_stack.operator.get("/openapi.json")).json()
    validate(operators)
    codec = [(m, p, o) for m, p, o in _operations(operators) if p.startswith("/codec/")]
    assert len(codec) == 2 and all(o["security"][0] == {"CodecToken": []} for _, _, o in codec)


@pytest.fixture
async def client_package(dev_stack: Stack, tmp_path: Path) -> ModuleType:
    """The client generated from the running API's document, importable."""
    (tmp_path / "openapi.json").write_text((await dev_stack.http.get("/openapi.json")).text)
    # No post-hooks: the generated code is imported, not formatted. The logo's image types
    # are bytes to this generator, as its documentation advises.
    images = {t: "application/octet-stream" for t in ("image/png", "image/jpeg", "image/webp")}
    config = {"package_name_override": PACKAGE, "post_hooks": [], "content_type_overrides": images}
    (tmp_path / "config.json").write_text(json.dumps(config))
    generator = Path(sys.executable).with_name("openapi-python-client")
    process = await asyncio.create_subprocess_exec(
        str(generator), "generate", "--path", "openapi.json", "--config", "config.json",
        "--meta", "none", "--output-path", PACKAGE, "--fail-on-warning",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()[-4000:]
    sys.path.insert(0, str(tmp_path))
    try:
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))


async def test_the_generated_client_walks_the_readme(dev_stack: Stack, client_package: ModuleType) -> None:
    def api(operation: str) -> Any:
        """The generated module of one operation: `.asyncio(...)`, `.asyncio_detailed(...)`."""
        return importlib.import_module(f"{PACKAGE}.api.portal.{operation}")

    models = importlib.import_module(f"{PACKAGE}.models")
    errors = importlib.import_module(f"{PACKAGE}.errors")
    enterprise, domain = new_enterprise(), unique_domain()
    admin, member = f"alice@{domain}", f"bob@{domain}"
    as_holder = {"x_actor_email": "holder@acme.example", "x_actor_role": "account_holder"}
    as_holder["x_actor_enterprise"] = enterprise

    def person(email: str) -> dict[str, str]:
        return {"x_actor_email": email, "x_actor_role": "partner_user"}

    client = client_package.AuthenticatedClient(
        base_url=dev_stack.base_url, token=API_TOKEN, raise_on_unexpected_status=True
    )
    async with client:
        # Register a partner; its first admin is invited by e-mail.
        body = models.RegisterPartnerRequest(
            name="Globex",
            domains=[domain],
            admin=models.PersonIn(first_name="Alice", last_name="Doe", email=admin),
            enterprise_name="ACME Corp",
        )
        created = await api("register_partner").asyncio(enterprise, client=client, body=body, **as_holder)
        assert isinstance(created, models.PartnerView) and created.status.value == "pending"
        # Alice opens the link from the mail (in the portal, signed in) and accepts.
        [mail] = await dev_stack.delivered(admin)
        accepted = await api("accept_signed_in").asyncio(
            client=client, body=models.AcceptRequestBody(token=mail.token), **person(admin)
        )
        assert isinstance(accepted, models.InvitationDetail) and accepted.state.value == "accepted"
        listed = await api("list_partners").asyncio(enterprise, client=client, **as_holder)
        assert [(p.name, p.status.value) for p in listed.partners] == [("Globex", "active")]

        # Alice invites Bob, who accepts; the account holder grants a product.
        invited = await api("invite_member").asyncio(
            created.id,
            client=client,
            body=models.InviteMemberRequest(first_name="Bob", last_name="Roe", email=member),
            **person(admin),
        )
        assert invited.state.value == "pending"
        [bob_mail] = await dev_stack.delivered(member)
        await api("accept_signed_in").asyncio(
            client=client, body=models.AcceptRequestBody(token=bob_mail.token), **person(member)
        )
        await api("grant").asyncio(
            created.id,
            client=client,
            body=models.GrantRequest(kind=models.GrantKind.PRODUCT, ref="maps", name="Maps"),
            **as_holder,
        )
        access = await api("access").asyncio(client=client, **person(member))
        assert [(m.partner_name, m.role.value, [p.ref for p in m.products]) for m in access.memberships] == [
            ("Globex", "member", ["maps"])
        ]
        check = await api("access_check").asyncio(
            client=client, enterprise_id=enterprise, kind=models.GrantKind.PRODUCT, ref="maps", **person(member)
        )
        assert check.allowed is True and check.partner_id == created.id

        # Bob sees his partner without its invitations; Alice removes him.
        seen = await api("get_partner").asyncio(created.id, client=client, **person(member))
        assert seen.viewer_role.value == "member" and seen.invitations is None
        ended = await api("remove_member").asyncio(created.id, member, client=client, **person(admin))
        assert ended.end_reason.value == "removed"
        gone = await api("get_partner").asyncio_detailed(created.id, client=client, **person(member))
        assert gone.status_code == 404 and gone.parsed.code.value == "not_found"
        # A logo, uploaded as bytes.
        logo = await api("put_logo").asyncio(
            created.id,
            client=client,
            body=client_package.types.File(payload=_PNG, mime_type="application/octet-stream"),
            **as_holder,
        )
        assert logo.content_type == "image/png"
        assert errors.UnexpectedStatus  # the client's error type exists, for undocumented answers


_PNG = image("PNG")
