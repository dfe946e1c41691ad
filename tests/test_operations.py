"""What an operator sees and does: the Temporal CLI, metrics, logs, the partners CLI, SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import io
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from devstack.deployment import make_current
from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from partners import collector, logs
from partners.ids import onboarding_workflow_id
from partners.models import InvitationState
from partners.settings import Settings
from partners.temporal_client import connect_client, metrics_runtime
from tests.helpers.cli import ROOT, run, temporal
from tests.helpers.metrics import scrape, value
from tests.helpers.stack import Stack, holder, new_enterprise, partner_user, running_stack, unique_domain
from tests.helpers.waiting import eventually, now
from workflows.onboarding import PartnerOnboardingWorkflow


def _address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def _temporal(env: WorkflowEnvironment, *args: str, codec: str | None = None) -> Any:
    code, out, err = await temporal(_address(env), *args, "--output", "json", codec=codec)
    assert code == 0, err
    return json.loads(out) if out.strip() else []


# --- the Temporal UI / CLI view ----------------------------------------------------------


async def test_operator_finds_workflows_by_search_attributes_and_reads_their_summaries(
    dev_stack: Stack, dev_env: WorkflowEnvironment
) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    partner = (await dev_stack.register(enterprise, domain, name="Globex")).json()
    [mail] = await dev_stack.delivered(f"ada@{domain}")
    token = mail.link.rsplit("/", 1)[1]
    onboarding_id = onboarding_workflow_id(partner["id"])  # it runs the admin's invitation too

    async with asyncio.timeout(30):  # visibility is eventually consistent
        while True:
            everything = await _temporal(dev_env, "workflow", "list", "--query", f'EnterpriseId="{enterprise}"')
            pending = await _temporal(
                dev_env,
                "workflow",
                "list",
                "--query",
                f'EnterpriseId="{enterprise}" AND InvitationState="pending" AND InviteeDomain="{domain}"',
            )
            if len(everything) == 1 and len(pending) == 1:
                break
            await asyncio.sleep(0.5)

    assert [w["execution"]["workflowId"] for w in everything] == [onboarding_id]
    assert pending[0]["execution"]["workflowId"] == onboarding_id
    # Summaries and details are payloads, encrypted (R16): the operator reads them through /codec.
    codec = f"{dev_stack.operator_url}/codec"
    described = await _temporal(dev_env, "workflow", "describe", "--workflow-id", onboarding_id, codec=codec)
    assert "Onboarding of partner Globex" in _decoded(described["executionConfig"]["userMetadata"]["summary"])
    metadata = await _temporal(dev_env, "workflow", "metadata", "--workflow-id", onboarding_id, codec=codec)
    text = _decoded([described, metadata])
    assert f"waiting for acceptance by someone at {domain}, send 1 of 3, expires" in text
    history = _decoded(await _temporal(dev_env, "workflow", "show", "--workflow-id", onboarding_id, codec=codec))
    assert '"send e-mail 1 of 3"' in history, "activities carry readable summaries"
    assert "register_partner" in history, "a local activity without a summary is named by its type"
    assert f'"{domain}"' in history, "payloads are decoded: the search for the token is a real one"
    for where in (text, history):
        assert token not in where, "no token, ever"
    assert 'data-outcome="accepted"' in (await dev_stack.http.post(f"{mail.link}/accept")).text
    await eventually(  # visibility is eventually consistent
        lambda: _temporal(
            dev_env, "workflow", "list", "--query", f'PartnerId="{partner["id"]}" AND InvitationState="accepted"'
        ),
        timeout=30,
        interval=0.5,
    )


def _decoded(value: Any) -> str:
    """Everything in a history as text, payloads (base64 JSON) decoded."""
    if isinstance(value, dict):
        parts = [_decoded(v) for v in value.values()]
        data = value.get("data")
        if isinstance(data, str):
            with contextlib.suppress(ValueError):
                parts.append(base64.b64decode(data).decode("utf-8", "replace"))
        return "\n".join(parts)
    if isinstance(value, list):
        return "\n".join(_decoded(v) for v in value)
    return str(value)


# --- metrics ------------------------------------------------------------------------------


async def test_worker_and_api_metrics_move_after_an_onboarding(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    worker_port, api_port = free_port(), free_port()
    # The dev server, through a runtime that serves Prometheus, as the worker process does.
    client = await connect_client(
        Settings(temporal_address=_address(dev_env)), metrics_runtime(worker_port, "127.0.0.1")
    )
    async with running_stack(dev_env, pool, mail, client=client, api_metrics_port=api_port) as stack:
        before = await scrape(worker_port)
        enterprise, domain = new_enterprise(), unique_domain()
        await stack.register(enterprise, domain)
        [mail_] = await stack.delivered(f"ada@{domain}")
        await stack.http.post(f"{mail_.link}/accept")
        await stack.http.get("/invitations/not-a-token")

        async with asyncio.timeout(20):  # the SDK exports on its own schedule
            while value(await scrape(worker_port), "partners_invitations_accepted_total") <= value(
                before, "partners_invitations_accepted_total"
            ):
                await asyncio.sleep(0.5)
        after = await scrape(worker_port)
        api = await scrape(api_port)

    for name, labels in (
        ("partners_registered_total", {}),
        ("partners_invitation_emails_sent_total", {"kind": "first"}),
        ("partners_invitations_accepted_total", {"purpose": "first_admin"}),
    ):
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name
    assert "temporal_activity_execution_latency" in after, "the SDK's own metrics are there too"
    created = value(api, "partners_api_requests_total", route="/v1/enterprises/{enterprise_id}/partners", status="201")
    accepted = value(api, "partners_api_requests_total", route="/invitations/{token}/accept", status="200")
    assert created == 1 and accepted == 1
    assert 'partners_api_request_duration_seconds_bucket{le="0.25",method="POST"' in api
    assert mail_.link.rsplit("/", 1)[1] not in api and "not-a-token" not in api, "routes, never paths"


# --- logs -----------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_json_logs_carry_ids_and_never_a_token_or_an_address(dev_stack: Stack, json_log: io.StringIO) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    partner = (await dev_stack.register(enterprise, domain)).json()
    [mail] = await dev_stack.delivered(f"ada@{domain}")
    token = mail.link.rsplit("/", 1)[1]
    await dev_stack.http.post(f"{mail.link}/accept")

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    sent = [e for e in lines if e["message"].startswith("invitation e-mail 1 sent to")]
    assert len(sent) == 1
    assert sent[0]["message"] == f"invitation e-mail 1 sent to a…@{domain}"
    assert sent[0]["invitation_id"] == partner["admin_invitation"]["id"]
    assert sent[0]["workflow_id"] == onboarding_workflow_id(partner["id"])
    assert sent[0]["activity_type"] == "send_invitation"
    registered = [e for e in lines if e["message"] == "partner registered"]
    assert registered and registered[0]["partner_id"] == partner["id"]
    access = [e["message"] for e in lines if e["logger"] == "uvicorn.access"]
    assert any('"POST /invitations/<redacted>/accept HTTP/1.1" 200' in line for line in access), access
    everything = json_log.getvalue()
    assert token not in everything and f"ada@{domain}" not in everything


# --- the partners CLI -------------------------------------------------------------------------


async def test_every_cli_command_against_the_dev_server(
    dev_stack: Stack, dev_env: WorkflowEnvironment, postgres_dsn: str
) -> None:
    partner = await dev_stack.active_partner(name="Initech")
    member = f"peter@{partner.domain}"
    invitation = (await dev_stack.invite(partner, member)).json()
    await dev_stack.delivered(member)
    env = {
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": _address(dev_env),
        "TEMPORAL_TASK_QUEUE": dev_stack.settings.temporal_task_queue,
        "PYTHONWARNINGS": "ignore",
    }

    async def cli(*args: str) -> tuple[int, str, str]:
        return await run(sys.executable, "-m", "starter", *args, env=env)

    code, out, _ = await cli("--json", "partners", "list", "--enterprise", partner.enterprise)
    assert code == 0 and [p["name"] for p in json.loads(out)] == ["Initech"]
    code, out, _ = await cli("partners", "show", partner.id)
    assert code == 0 and "name: Initech" in out and "status: active" in out and member in out
    code, out, _ = await cli("--json", "invitations", "show", invitation["id"])
    shown = json.loads(out)
    assert code == 0 and (shown["live"]["state"], shown["live"]["sends"]) == ("pending", 1)
    # Right after the first send: an operator is not held by the resend cooldown.
    code, out, err = await cli("--actor", "olivia", "--json", "invitations", "resend", invitation["id"])
    assert code == 0 and json.loads(out)["live"]["sends"] == 2, err
    await dev_stack.delivered(member, 2)
    code, out, _ = await cli("--actor", "olivia", "invitations", "cancel", invitation["id"])
    assert code == 0 and "state: cancelled" in out
    code, _, err = await cli("invitations", "cancel", invitation["id"])
    assert code == 1 and err.startswith("invitation_cancelled:")
    code, _, err = await cli("partners", "show", "00000000-0000-4000-8000-000000000000")
    assert code == 3 and err.startswith("not_found:")
    code, _, err = await cli("partners", "show", "not-a-uuid")
    assert code == 2 and "invalid UUID" in err
    actors = await dev_stack.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE details->>'invitation_id' = $1 AND actor LIKE 'operator:%'",
        invitation["id"],
    )
    assert {(r["action"], r["actor"]) for r in actors} == {
        ("invitation_resent", "operator:olivia"),
        ("invitation_cancelled", "operator:olivia"),
    }
    # Members: listed, one removed (audited as the operator), the Admin never.
    milton = f"milton@{partner.domain}"
    await dev_stack.invite(partner, milton)
    [milton_mail] = await dev_stack.delivered(milton)
    await dev_stack.http.post(f"{milton_mail.link}/accept")
    code, out, _ = await cli("--json", "members", "list", partner.id)
    assert code == 0 and [(m["email"], m["role"]) for m in json.loads(out)["members"]] == [
        (partner.admin, "admin"),
        (milton, "member"),
    ]
    code, out, err = await cli("--actor", "olivia", "members", "remove", partner.id, milton.upper())
    assert code == 0 and "end_reason: removed" in out and "ended_by: operator:olivia" in out, err
    code, _, err = await cli("members", "remove", partner.id, partner.admin)
    assert code == 1 and err.startswith("cannot_remove_admin:")
    code, _, err = await cli("members", "remove", partner.id, milton)
    assert code == 3 and err.startswith("not_a_member:")
    removal = await dev_stack.pool.fetchval(
        "SELECT actor FROM audit_log WHERE partner_id = $1::uuid AND action = 'member_removed'", partner.id
    )
    assert removal == "operator:olivia"
    # An incident: the operator suspends the partner (R23), then resumes it as it was.
    code, out, err = await cli("--actor", "olivia", "partners", "suspend", partner.id, "--reason", "incident 9")
    assert code == 0 and "status: suspended" in out and "suspension_reason: incident 9" in out, err
    assert not (await dev_stack.http.get("/v1/access", headers=partner_user(partner.admin))).json()["memberships"]
    code, out, err = await cli("--actor", "olivia", "partners", "resume", partner.id)
    assert code == 0 and "status: active" in out, err
    code, _, err = await cli("partners", "resume", partner.id)
    assert code == 1 and err.startswith("partner_not_suspended:")
    for command in ([], ["partners"], ["partners", "list"], ["partners", "show"], ["partners", "suspend"],
                    ["partners", "resume"], ["invitations"],
                    ["invitations", "show"], ["invitations", "resend"], ["invitations", "cancel"],
                    ["members"], ["members", "list"], ["members", "remove"],
                    ["person"], ["person", "export"], ["person", "erase"]):  # fmt: skip
        code, out, _ = await cli(*command, "--help")
        assert code == 0 and out.startswith("usage: partners"), command
    code, _, err = await run(
        sys.executable, "-m", "starter", "partners", "list", "--enterprise", "x",
        env={**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"},
    )  # fmt: skip
    assert code == 4 and err.startswith("unavailable:")


# --- graceful shutdown ----------------------------------------------------------------------


async def test_sigterm_lets_the_activity_under_way_finish(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, postgres_dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"  # a file, not a pipe: its debug lines never block the worker
    async with running_stack(dev_env, pool, mail, with_worker=False) as stack:
        with log.open("wb") as log_file:  # the worker holds its own copy of the descriptor
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker",
                cwd=ROOT,
                env={
                    **os.environ,
                    "DATABASE_URL": postgres_dsn,
                    "TEMPORAL_ADDRESS": _address(dev_env),
                    "TEMPORAL_TASK_QUEUE": stack.settings.temporal_task_queue,
                    "SMTP_HOST": "127.0.0.1",
                    "SMTP_PORT": str(mail.port),
                    "PUBLIC_BASE_URL": stack.base_url,
                    "WORKER_METRICS_PORT": "0",
                    "WORKER_SHUTDOWN_GRACE": "20",
                    "WORKER_GC_INTERVAL": "1",
                    "LOG_LEVEL": "DEBUG",
                },
                stderr=log_file,
            )  # fmt: skip
        # The dev server dispatches to a build once it is current (Worker Versioning).
        await make_current(stack.client, stack.settings)
        enterprise, domain = new_enterprise(), unique_domain()
        admin = f"ada@{domain}"
        mail.delay_next(3)  # the SMTP server takes 3 s to answer the DATA
        conversations = mail.conversations
        created = await stack.register(enterprise, domain)
        assert created.status_code == 201, created.text
        await eventually(now(lambda: mail.conversations), lambda seen: seen != conversations)

        worker.send_signal(signal.SIGTERM)  # in the middle of the mail activity
        async with asyncio.timeout(30):
            await worker.wait()
        err = log.read_text()

        assert worker.returncode == 0, err
        assert "worker stopped" in err
        # Its full collections (WORKER_GC_INTERVAL), each logged with how long it held the loop.
        assert re.search(r"full collection held the loop \d+ ms: \d+ objects freed", err), err[-2000:]
        assert len(mail.mails_to(admin)) == 1, "the activity under way finished: one mail"
        ledger = await pool.fetchrow(
            "SELECT s.status, s.attempts FROM invitation_sends s JOIN invitations i ON i.id = s.invitation_id"
            " WHERE i.email = $1",
            admin,
        )
        assert ledger is not None and (ledger["status"], ledger["attempts"]) == ("sent", 1)

    # Another worker takes over: nothing was lost, the invitation goes on.
    async with running_stack(dev_env, pool, mail, temporal_task_queue=stack.settings.temporal_task_queue) as stack:
        handle = stack.client.get_workflow_handle_for(
            PartnerOnboardingWorkflow.run, onboarding_workflow_id(created.json()["id"])
        )
        [mail_] = mail.mails_to(admin)
        token = mail_.link.rsplit("/", 1)[1]  # the link names the first API's port, closed now
        page = await stack.http.post(f"/invitations/{token}/accept")
        assert 'data-outcome="accepted"' in page.text
        assert (await stack.result(handle)).invitation_state is InvitationState.ACCEPTED
        view = (await stack.http.get(f"/v1/partners/{created.json()['id']}", headers=holder(enterprise))).json()
        assert view["status"] == "active"
        assert len(mail.mails_to(admin)) == 1


def test_full_collections_are_timed_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """A full collection holds a process's loop (the worker's and the API's, each inside
    `collector.timed()`): the operator sees each one and how long it took (a warning from
    100 ms), whoever started it; the young generations' are not logged."""
    with collector.timed(), caplog.at_level(logging.DEBUG, logger="partners.collector"):
        gc.collect(0)
        young = [r for r in caplog.records if r.name == "partners.collector"]
        gc.collect()
    assert young == []
    [record] = [r for r in caplog.records if r.name == "partners.collector"]
    assert re.fullmatch(r"full collection held the loop \d+ ms: \d+ objects freed", record.getMessage())
