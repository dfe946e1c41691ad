"""Committed histories of every workflow, replayed: a non-deterministic change fails here.

`tests/histories/<release>/<scenario>.json`, recorded from real runs (time-skipping
server, real PostgreSQL and SMTP) by `make histories`: one folder per release, and
`unreleased/` for the scenarios of the working tree.

A release's histories are frozen (tests/test_releases.py checks their SHA-256 against
tests/releases.json): executions that release started may still be running, and every
later build must replay them. So a workflow change after a release goes behind
`workflow.patched("descriptive-id")` (docs/design.md, "Releases"); its new behaviour is
recorded into `unreleased/`. A release's folder, and the patches it needed, are deleted
once no execution it started can be open (CHANGELOG.md says how that is decided).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from devstack.mailcatcher import MailCatcher
from partners.codec import new_key_entry
from partners.ids import (
    deactivation_workflow_id,
    invitation_workflow_id,
    onboarding_workflow_id,
    replacement_workflow_id,
)
from partners.models import ReconcileInput, RetentionInput
from partners.settings import Settings
from store.idempotency import idempotent_partner_id
from tests.helpers.codec import TEST_PAYLOAD_KEYS, converter_for_tests
from tests.helpers.receiver import receiving
from tests.helpers.releases import released
from tests.helpers.sandbox_probe import SandboxProbe
from tests.helpers.stack import Stack, holder, new_enterprise, running_stack, unique_domain
from worker import WORKFLOWS, sandbox_runner, workflow_runner
from workflows.reconcile import ReconcileWorkflow
from workflows.retention import RetentionWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("RECORD_HISTORIES") == "1"
# Where `make histories` records: HISTORIES_INTO (the release's folder as it is cut), or unreleased/.
RECORDED = HISTORIES / os.environ.get("HISTORIES_INTO", "unreleased")


def _files() -> list[Path]:
    return sorted(HISTORIES.glob("*/*.json"))


# After a rotation the new key encrypts and the tests' key (the histories') only decrypts.
ROTATED = f"{new_key_entry('rotated')},{TEST_PAYLOAD_KEYS}"


async def _replay(path: Path, keys: str, runner: WorkflowRunner | None = None) -> None:
    history = json.loads(path.read_text())
    replayer = Replayer(
        workflows=list(WORKFLOWS),
        data_converter=converter_for_tests(keys),
        workflow_runner=runner or sandbox_runner(),
    )
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(history["workflow_id"], history["history"]), raise_on_replay_failure=True
    )
    assert result.replay_failure is None


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays(path: Path) -> None:
    await _replay(path, TEST_PAYLOAD_KEYS)


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays_as_production_runs_it(path: Path) -> None:
    """Production's worker runs the same classes without the sandbox (settings.py)."""
    await _replay(path, TEST_PAYLOAD_KEYS, UnsandboxedWorkflowRunner())


@pytest.mark.parametrize(("sandbox", "seen"), [(True, "refused"), (False, "allowed")])
async def test_the_suite_runs_our_workflow_modules_in_the_sandbox(
    dev_env: WorkflowEnvironment, sandbox: bool, seen: str
) -> None:
    """With WORKFLOW_SANDBOX (the suite's setting, conftest.py) the workflow modules are
    imported into each run's sandbox, not passed through: a non-deterministic call in
    them is refused on every path a test takes. Production's runner lets it through."""
    assert Settings().workflow_sandbox
    queue = f"probe-{uuid.uuid4()}"
    runner = workflow_runner(Settings(workflow_sandbox=sandbox))
    async with Worker(dev_env.client, task_queue=queue, workflows=[SandboxProbe], workflow_runner=runner):
        answer = await dev_env.client.execute_workflow(
            SandboxProbe.run,
            ["Invitation", "indexed_alone", "datetime"],
            id=queue,
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )
    assert answer == seen


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays_after_a_key_rotation(path: Path) -> None:
    await _replay(path, ROTATED)


async def test_a_history_under_a_key_not_held_fails_clearly() -> None:
    """The replay stops at the first payload (its failure's text is itself encrypted, with
    the key not held: the type says why; the codec's own message is tested in
    tests/test_personal_data.py)."""
    with pytest.raises(Exception, match="PayloadKeyError"):
        await _replay(_files()[0], new_key_entry("other"))


ENCRYPTED = base64.b64encode(b"binary/encrypted").decode()
PEOPLE = ("Ada", "Admin ", "Mel ", "Member", "@p")  # domains (p….example) may show: no one's


def test_the_committed_histories_hold_no_name_or_address() -> None:
    """Recorded with the stories' people (Ada Admin, ada@p....example, Mel Member): none in
    clear, none in base64. The payloads left unencrypted are the search attributes and the
    SDK's own bookkeeping of local activities (ids, counters, times)."""
    encrypted = 0
    for path in _files():
        history = json.loads(path.read_text())
        for payload in _payloads(history):
            if payload["metadata"].get("encoding") == ENCRYPTED:
                encrypted += 1
                payload["data"] = ""  # ciphertext: "Ada" may turn up in its base64 by chance
                continue
            data = base64.b64decode(payload.get("data", "")).decode()
            assert not [clear for clear in PEOPLE if clear in data], (path.name, data)
        text = json.dumps(history)  # everything but the ciphertexts: failures, ids, summaries
        assert not [clear for clear in PEOPLE if clear in text], path.name
    assert encrypted > 50


def _payloads(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        if "metadata" in node and "data" in node:
            return [node]
        return [p for v in node.values() for p in _payloads(v)]
    if isinstance(node, list):
        return [p for v in node for p in _payloads(v)]
    return []


def test_every_workflow_has_a_history() -> None:
    kinds = {json.loads(p.read_text())["workflow_type"] for p in _files()}
    assert kinds == {w.__name__ for w in WORKFLOWS}


async def _save(stack: Stack, name: str, handle: WorkflowHandle[Any, Any]) -> None:
    await stack.result(handle)
    history = await handle.fetch_history()
    description = await handle.describe()
    if RECORDED.name in released():
        raise AssertionError(f"{RECORDED.name} is released: its histories are frozen (record into unreleased/)")
    RECORDED.mkdir(parents=True, exist_ok=True)
    (RECORDED / f"{name}.json").write_text(
        json.dumps(
            {"workflow_id": handle.id, "workflow_type": description.workflow_type, "history": history.to_json_dict()},
            indent=1,
        )
        + "\n"
    )


@pytest.mark.skipif(not RECORD, reason="records histories only when RECORD_HISTORIES=1")
async def test_record_histories(time_stack: Stack) -> None:
    client = time_stack.client
    # Happy path: the onboarding, whose first admin accepts.
    partner = await time_stack.active_partner()
    await _save(time_stack, "onboarding-accepted", client.get_workflow_handle(onboarding_workflow_id(partner.id)))
    # An onboarding whose admin never clicks: reminders, then expiry.
    enterprise, domain = new_enterprise(), unique_domain()
    lapsed = (await time_stack.register(enterprise, domain)).json()
    await _save(time_stack, "onboarding-expired", client.get_workflow_handle(onboarding_workflow_id(lapsed["id"])))
    # A member invitation, accepted.
    member = f"member@{partner.domain}"
    accepted = (await time_stack.invite(partner, member)).json()
    [mail] = await time_stack.delivered(member)
    await time_stack.http.post(f"{mail.link}/accept")
    await _save(time_stack, "invitation-accepted", client.get_workflow_handle(invitation_workflow_id(accepted["id"])))
    # Expiry: a member invitation nobody accepts, with its reminders.
    expired = (await time_stack.invite(partner, f"nobody@{partner.domain}")).json()
    await _save(time_stack, "invitation-expired", client.get_workflow_handle(invitation_workflow_id(expired["id"])))
    # Cancellation by hand.
    cancelled = (await time_stack.invite(partner, f"cancel@{partner.domain}")).json()
    await time_stack.delivered(f"cancel@{partner.domain}")
    await time_stack.http.post(f"/v1/invitations/{cancelled['id']}/cancel", headers=holder(partner.enterprise))
    await _save(time_stack, "invitation-cancelled", client.get_workflow_handle(invitation_workflow_id(cancelled["id"])))
    # Replacement: one superseded by a second, which is accepted.
    for email in (f"first@{partner.domain}", f"second@{partner.domain}"):
        await time_stack.http.post(
            f"/v1/partners/{partner.id}/admin",
            json={"first_name": "N", "last_name": "N", "email": email},
            headers=holder(partner.enterprise),
        )
    [mail] = await time_stack.mail.wait_for(f"second@{partner.domain}")
    await time_stack.http.post(f"{mail.link}/accept")
    await _save(
        time_stack,
        "replacement-superseded-then-accepted",
        client.get_workflow_handle(replacement_workflow_id(partner.id)),
    )
    # Deactivation: refused while an API is granted, then done.
    grant = (
        await time_stack.http.post(
            f"/v1/partners/{partner.id}/grants",
            json={"kind": "api", "ref": "orders-api", "name": "Orders"},
            headers=holder(partner.enterprise),
        )
    ).json()
    await time_stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(partner.enterprise))
    await _save(time_stack, "deactivation-refused", client.get_workflow_handle(deactivation_workflow_id(partner.id)))
    await time_stack.http.delete(f"/v1/partners/{partner.id}/grants/{grant['id']}", headers=holder(partner.enterprise))
    new_admin = dataclasses.replace(partner, admin=f"second@{partner.domain}")
    assert (await time_stack.invite(new_admin, f"pending@{partner.domain}")).status_code == 201
    await time_stack.delivered(f"pending@{partner.domain}")
    await time_stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(partner.enterprise))
    await _save(time_stack, "deactivation-done", client.get_workflow_handle(deactivation_workflow_id(partner.id)))
    # Registration refused by the quota: the portal's Idempotency-Key gives us its workflow id.
    await time_stack.pool.execute("UPDATE enterprises SET partner_limit = 0 WHERE id = $1", partner.enterprise)
    refused = await time_stack.http.post(
        f"/v1/enterprises/{partner.enterprise}/partners",
        json={
            "name": "Late",
            "domains": [f"x{partner.domain}"],
            "admin": {"first_name": "A", "last_name": "B", "email": f"a@x{partner.domain}"},
        },
        headers={**holder(partner.enterprise), "Idempotency-Key": "recorded-refusal"},
    )
    assert refused.status_code == 409
    generation = await time_stack.pool.fetchval(
        "SELECT generation FROM idempotency_keys WHERE enterprise_id = $1 AND key = 'recorded-refusal'",
        partner.enterprise,
    )
    partner_id = idempotent_partner_id(partner.enterprise, "recorded-refusal", generation)
    await _save(time_stack, "onboarding-refused", client.get_workflow_handle(onboarding_workflow_id(partner_id)))


@pytest.mark.skipif(not RECORD, reason="records histories only when RECORD_HISTORIES=1")
async def test_record_retention_history(dev_stack: Stack) -> None:
    """Retention (R17), on the dev server: it waits on no timer, and the time-skipping
    server, left to skip while the run's tasks go on, timed them out."""
    client = dev_stack.client
    partner = await dev_stack.active_partner()
    # The events and audit of this story made 400 days old, then pruned, one batch per
    # activity so the run shows its loop.
    for table, column in (("events", "created_at"), ("audit_log", "at")):
        await dev_stack.pool.execute(
            f"UPDATE {table} SET {column} = {column} - interval '400 days' WHERE enterprise_id = $1",  # noqa: S608
            partner.enterprise,
        )
    pruning = await client.start_workflow(
        RetentionWorkflow.run,
        RetentionInput(budget_seconds=0),
        id=f"retention-recorded-{uuid.uuid4()}",
        task_queue=dev_stack.settings.temporal_task_queue,
    )
    await _save(dev_stack, "retention-pruned", pruning)


@pytest.mark.skipif(not RECORD, reason="records histories only when RECORD_HISTORIES=1")
async def test_record_reconcile_history(dev_stack: Stack) -> None:
    """Reconcile (R25), on the dev server: a member invitation whose workflow is gone,
    taken over."""
    partner = await dev_stack.active_partner()
    invitation = (await dev_stack.invite(partner, f"lost@{partner.domain}")).json()
    await dev_stack.delivered(f"lost@{partner.domain}")
    await dev_stack.client.get_workflow_handle(f"invitation-{invitation['id']}").terminate("recorded: lost")
    run = await dev_stack.client.start_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(settle_seconds=0, enterprise_id=partner.enterprise),
        id=f"reconcile-recorded-{uuid.uuid4()}",
        task_queue=dev_stack.settings.temporal_task_queue,
    )
    await _save(dev_stack, "reconcile-took-over", run)


@pytest.mark.skipif(not RECORD, reason="records histories only when RECORD_HISTORIES=1")
async def test_record_webhook_history(time_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher) -> None:
    """An endpoint that takes the onboarding's events, then fails until it is disabled."""
    async with (
        running_stack(time_env, pool, mail, webhook_retry_for=120) as stack,
        receiving(script=[200] * 3 + [500] * 200) as receiver,
    ):
        enterprise, domain = new_enterprise(), unique_domain()
        hook = (
            await stack.http.post(
                f"/v1/enterprises/{enterprise}/webhooks", json={"url": receiver.url}, headers=holder(enterprise)
            )
        ).json()
        await stack.register(enterprise, domain)
        [invitation] = await stack.delivered(f"ada@{domain}")
        await stack.http.post(f"{invitation.link}/accept")
        await _save(stack, "webhook-delivered-then-disabled", stack.client.get_workflow_handle(f"webhook-{hook['id']}"))
