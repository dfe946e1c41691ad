"""R16: nothing personal in clear in Temporal, operators decode through the codec endpoint,
and a person's data is exported and erased on request (LGPD art. 18)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.codec import EncryptionCodec, PayloadConverter, PayloadKeyError, new_key_entry, parse_keys
from partners.ids import onboarding_workflow_id
from partners.models import Registration
from partners.settings import Settings
from tests.helpers.cli import run, temporal
from tests.helpers.codec import TEST_PAYLOAD_KEYS, converter_for_tests
from tests.helpers.stack import Stack, holder, new_enterprise, partner_user, running_stack, unique_domain
from tests.helpers.waiting import eventually

CODEC_TOKEN = "test-codec-token"


def _strings(node: Any) -> list[str]:
    """Every string of a JSON document, and the decoding of those that are base64."""
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    if not isinstance(node, str):
        return []
    found = [node]
    with contextlib.suppress(ValueError):
        found.append(base64.b64decode(node, validate=True).decode("utf-8", errors="replace"))
    return found


async def _show(stack: Stack, workflow_id: str, *codec: str) -> tuple[int, str, str]:
    address = stack.client.service_client.config.target_host
    return await temporal(address, "workflow", "show", "--workflow-id", workflow_id, "--output", "json", *codec)


async def test_a_history_holds_no_one_in_clear_and_the_codec_endpoint_shows_them(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, codec_auth_token=CODEC_TOKEN) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        admin = f"ada.lovelace@{domain}"
        created = await stack.register(enterprise, domain, admin=admin, name="Analytical Engines")
        [invitation] = await stack.delivered(admin)
        await stack.http.post(f"{invitation.link}/accept")
        workflow_id = onboarding_workflow_id(created.json()["id"])
        await stack.result(stack.client.get_workflow_handle(workflow_id), timeout=30)

        code, raw, err = await _show(stack, workflow_id)
        assert code == 0, err
        texts = "\n".join(_strings(json.loads(raw)))
        for clear in (admin, "ada.lovelace", "Ada", "Admin", "Analytical Engines"):
            # As a word: ciphertext in base64 holds "Ada" by chance about once in a
            # hundred runs ("+AdaNd7..."), a name in clear stands between quotes or spaces.
            as_word = rf"(?<![A-Za-z0-9]){re.escape(clear)}(?![A-Za-z0-9])"
            assert not re.search(as_word, texts), f"{clear!r} readable in the history"

        codec = ("--codec-endpoint", f"{stack.operator_url}/codec")
        # Without the token the endpoint answers 401 (asserted in the protocol test below);
        # the CLI retries that until its own deadline and shows nothing decoded.
        code, refused, _ = await _show(stack, workflow_id, *codec)
        assert code != 0 and admin not in refused, "no token, no decoding"
        code, decoded, err = await _show(stack, workflow_id, *codec, "--codec-auth", f"Bearer {CODEC_TOKEN}")
        assert code == 0, err
        shown = "\n".join(_strings(json.loads(decoded)))  # the CLI shows decoded JSON in base64
        assert admin in shown and "Ada" in shown and "Analytical Engines" in shown


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "operators.internal"])  # noqa: S104
def test_an_operators_listener_beyond_loopback_needs_a_token(host: str) -> None:
    with pytest.raises(ValidationError, match="set CODEC_AUTH_TOKEN"):
        Settings(operator_host=host)
    assert Settings(operator_host=host, codec_auth_token=CODEC_TOKEN).operator_host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_an_operators_listener_on_loopback_may_go_without_a_token(host: str) -> None:
    assert Settings(operator_host=host).codec_auth_token is None


async def test_the_codec_endpoint_speaks_the_codec_protocol_to_the_ui(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    ui = "http://127.0.0.1:8233"
    async with running_stack(
        dev_env, pool, mail, with_worker=False, codec_auth_token=CODEC_TOKEN, codec_cors_origins=ui
    ) as stack:
        plain = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                               "data": base64.b64encode(b'"ana@x.example"').decode()}]}  # fmt: skip
        auth = {"Authorization": f"Bearer {CODEC_TOKEN}", "X-Namespace": "default"}

        refused = await stack.operator.post("/codec/encode", json=plain)
        assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")
        # Readiness in detail too: every call to the operators' listener bears the token.
        assert (await stack.operator.get("/readyz")).status_code == 401
        assert (await stack.operator.get("/readyz", headers=auth)).json()["database"] == "ok"
        wrong = await stack.operator.post("/codec/decode", json=plain, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401

        encoded = await stack.operator.post("/codec/encode", json=plain, headers=auth)
        assert encoded.status_code == 200, encoded.text
        [sealed] = encoded.json()["payloads"]
        assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
        assert b"ana@" not in base64.b64decode(sealed["data"])
        decoded = await stack.operator.post("/codec/decode", json=encoded.json(), headers=auth)
        assert decoded.json() == plain

        other = EncryptionCodec(parse_keys(new_key_entry("someone-elses")))
        [foreign] = await other.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
        body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in foreign.metadata.items()},
                              "data": base64.b64encode(foreign.data).decode()}]}  # fmt: skip
        unknown = await stack.operator.post("/codec/decode", json=body, headers=auth)
        assert (unknown.status_code, unknown.json()["code"]) == (422, "undecodable_payload")
        assert "'someone-elses', which PAYLOAD_KEYS does not hold" in unknown.json()["detail"]

        for bad in ("not base64!", "\u00ef+\u00d9"):  # schemathesis found the second a 500
            garbled = {"payloads": [{"metadata": {"encoding": bad}, "data": bad}]}
            answer = await stack.operator.post("/codec/encode", json=garbled, headers=auth)
            assert (answer.status_code, answer.json()["code"]) == (422, "invalid_input"), bad

        # The Temporal UI calls from the operator's browser: its origin only.
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        }
        allowed = await stack.operator.options("/codec/decode", headers={"Origin": ui, **preflight})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ui
        elsewhere = await stack.operator.options(
            "/codec/decode", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in elsewhere.headers
        api = await stack.http.options("/v1/access", headers={"Origin": ui, **preflight})
        assert "access-control-allow-origin" not in api.headers, "only /codec answers browsers"


async def test_the_converters_built_per_run_share_one_pydantic_json_converter() -> None:
    """The SDK builds a data converter (and its payload converter) for each workflow run
    and activation: ours keep one JSON converter, whose type adapters a cached run would
    otherwise hold a copy of; a model still goes through encrypted and comes back."""
    ours = converter_for_tests()
    assert ours.payload_converter_class is PayloadConverter
    assert PayloadConverter().converters[b"json/plain"] is PayloadConverter().converters[b"json/plain"]

    per_run = dataclasses.replace(ours)  # what the SDK does for each run's context
    assert per_run.payload_converter is not ours.payload_converter

    registration = Registration(partner_id=uuid.uuid4(), invitation_id=uuid.uuid4())
    [sealed] = await ours.encode([registration])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert await per_run.decode([sealed], [Registration]) == [registration]


async def test_keys_rotate_and_a_foreign_key_fails_clearly() -> None:
    old = EncryptionCodec(parse_keys(TEST_PAYLOAD_KEYS))
    rotated = EncryptionCodec(parse_keys(f"{new_key_entry('next')},{TEST_PAYLOAD_KEYS}"))
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"ana@x.example"}')

    [under_old] = await old.encode([payload])
    assert await rotated.decode([under_old]) == [payload], "the old key still decrypts"
    [under_new] = await rotated.encode([payload])
    assert under_new.metadata["encryption-key-id"] == b"next", "the first key encrypts"
    with pytest.raises(PayloadKeyError, match="encrypted with key 'next', which PAYLOAD_KEYS does not hold"):
        await old.decode([under_new])
    tampered = Payload(metadata=under_old.metadata, data=under_old.data[:-1] + bytes([under_old.data[-1] ^ 1]))
    with pytest.raises(PayloadKeyError, match="another key or altered"):
        await old.decode([tampered])
    for bad in ("k1", "k1:not-base64!", f"k1:{base64.b64encode(b'short').decode()}"):
        with pytest.raises(ValidationError, match="PAYLOAD_KEYS"):
            Settings(payload_keys=bad)


async def test_an_smtp_refusal_is_stored_without_the_address(dev_stack: Stack, pool: asyncpg.Pool) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    admin = f"ghost.writer@{domain}"
    dev_stack.mail.refuse_recipient(admin, f"550 5.1.1 <{admin}>: Recipient address rejected")
    created = (await dev_stack.register(enterprise, domain, admin=admin)).json()
    invitation_id = created["admin_invitation"]["id"]
    error = await eventually(lambda: pool.fetchval("SELECT last_error FROM invitations WHERE id = $1", invitation_id))
    assert "550" in error and admin not in error and "ghost.writer" not in error
    view = (await dev_stack.http.get(f"/v1/partners/{created['id']}", headers=holder(enterprise))).json()
    # The account holder sees whom they invited (R12), and why the mail failed, unquoted.
    assert view["invitation_counts"] == {"undeliverable": 1}
    [shown] = await dev_stack.invitations(created["id"], holder(enterprise))
    assert shown["email"] == admin and shown["last_error"] == error


# --- a person's data on request -------------------------------------------------------------


async def _partners_cli(stack: Stack, postgres_dsn: str, *args: str) -> tuple[int, str, str]:
    env = {
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": stack.settings.temporal_task_queue,
        "PYTHONWARNINGS": "ignore",
    }
    return await run(sys.executable, "-m", "starter", "--actor", "dpo", *args, env=env)


async def _columns_holding(pool: asyncpg.Pool, needle: str) -> list[str]:
    """Every `table.column` of text, array or JSON type whose value holds `needle`, in any case."""
    columns = await pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND (data_type IN ('text', 'character varying', 'json', 'jsonb') OR udt_name = '_text')"
        " AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')"
        " ORDER BY table_name, column_name"
    )
    assert len(columns) > 20, "the catalogue was read"
    holding = []
    for table, column in columns:
        query = f"SELECT count(*) FROM {table} WHERE strpos(lower({column}::text), lower($1)) > 0"  # noqa: S608
        if await pool.fetchval(query, needle):
            holding.append(f"{table}.{column}")
    return holding


async def test_a_person_is_exported_then_erased_everywhere(dev_stack: Stack, postgres_dsn: str) -> None:
    partner = await dev_stack.active_partner()
    member, invitee = f"mel.member@{partner.domain}", f"nia.invitee@{partner.domain}"
    assert (await dev_stack.invite(partner, member)).status_code == 201
    [joined] = await dev_stack.delivered(member)
    assert 'data-outcome="accepted"' in (await dev_stack.http.post(f"{joined.link}/accept")).text
    # Names no other test uses: the whole database is searched for them afterwards.
    pending = (await dev_stack.invite(partner, invitee, first_name="Niamh", last_name="Quarrington")).json()
    [invited] = await dev_stack.delivered(invitee)
    # An account holder who granted and revoked: their address is kept on the grants.
    hal = f"hal.holder@{partner.enterprise}.example"
    grants = f"/v1/partners/{partner.id}/grants"
    for ref in ("billing", "ledger"):
        granted = await dev_stack.http.post(
            grants, json={"kind": "product", "ref": ref, "name": ref}, headers=holder(partner.enterprise, hal)
        )
        assert granted.status_code == 201, granted.text
    revoked = await dev_stack.http.delete(f"{grants}/{granted.json()['id']}", headers=holder(partner.enterprise, hal))
    assert revoked.status_code == 200, revoked.text

    code, out, err = await _partners_cli(dev_stack, postgres_dsn, "person", "export", member)
    assert code == 0, err
    exported = json.loads(out)
    assert [(m["partner_id"], m["role"], m["active"]) for m in exported["memberships"]] == [
        (partner.id, "member", True)
    ]
    assert [(i["first_name"], i["state"]) for i in exported["invitations"]] == [("Mel", "accepted")]
    assert any(a["action"] == "member_added" for a in exported["audit_entries"])
    assert any(e["type"] == "member.added" for e in exported["events"])

    code, _, err = await _partners_cli(dev_stack, postgres_dsn, "person", "erase", partner.admin)
    assert code == 1 and "person_is_admin" in err, "the Admin is replaced first"

    code, out, err = await _partners_cli(dev_stack, postgres_dsn, "person", "erase", member)
    assert code == 0, err
    erased = json.loads(out)
    assert erased["memberships_ended"] == 1 and erased["enterprises"] == [partner.enterprise]
    code, out, err = await _partners_cli(dev_stack, postgres_dsn, "person", "erase", invitee)
    assert code == 0, err
    assert json.loads(out)["invitations_cancelled"] == [pending["id"]]

    rows = await dev_stack.pool.fetch(
        "SELECT first_name, last_name, active, end_reason FROM members WHERE email = $1", erased["pseudonym"]
    )
    assert [tuple(r) for r in rows] == [("Erased", "Person", False, "erased")]
    audit = await dev_stack.pool.fetch(
        "SELECT action, actor, details FROM audit_log WHERE enterprise_id = $1 ORDER BY id", partner.enterprise
    )
    actions = [a["action"] for a in audit]
    assert actions.count("person_erased") == 2 and "member_removed" in actions, actions
    said = next(a for a in audit if a["action"] == "person_erased")
    assert said["actor"] == "operator:dpo" and said["details"]["pseudonym"] == erased["pseudonym"]
    added = next(a for a in audit if a["action"] == "member_added" and a["details"]["role"] == "member")
    assert added["details"]["email"] == erased["pseudonym"], "the trail keeps its shape"
    # The cancelled invitation's link stops; the erased member has no access and is no member.
    assert 'data-outcome="cancelled"' in (await dev_stack.http.get(invited.link)).text
    members = await dev_stack.http.get(f"/v1/partners/{partner.id}/members", headers=partner_user(partner.admin))
    assert [m["email"] for m in members.json()["members"]] == [partner.admin]
    access = await dev_stack.http.get("/v1/access", headers=partner_user(member))
    assert access.json()["memberships"] == []

    code, out, err = await _partners_cli(dev_stack, postgres_dsn, "person", "erase", hal)
    assert code == 0, err
    assert json.loads(out)["enterprises"] == [partner.enterprise]
    # Nowhere any more: every text and JSON column of every table, found in the catalogue,
    # so that a column added later cannot be forgotten.
    for address in ("mel.member", "nia.invitee", "hal.holder"):
        assert await _columns_holding(dev_stack.pool, address) == [], address
    for name in ("Niamh", "Quarrington"):
        assert await _columns_holding(dev_stack.pool, name) == [], name
    view = await dev_stack.http.get(f"/v1/partners/{partner.id}", headers=partner_user(partner.admin))
    assert {g["granted_by"] for g in view.json()["grants"]} == {json.loads(out)["pseudonym"]}


async def test_the_operators_listener_answers_only_its_own_names(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """DNS rebinding: a page an operator opens points its own name at 127.0.0.1, and the
    browser sends that name; the listener refuses it before any route (/codec included)."""
    async with running_stack(dev_env, pool, mail, operator_allowed_hosts="ops.internal") as stack:
        port = stack.operator_url.rsplit(":", 1)[1]
        for host in ("rebound.attacker.example", f"rebound.attacker.example:{port}", "127.0.0.1.nip.io"):
            refused = await stack.operator.post("/codec/decode", json={"payloads": []}, headers={"Host": host})
            assert (refused.status_code, refused.json()["code"]) == (421, "unknown_host"), host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "ops.internal"):
            answered = await stack.operator.get("/readyz", headers={"Host": host})
            assert answered.status_code in (200, 503), host
