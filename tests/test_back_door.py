"""Temporal is no back door: whoever reaches the Temporal frontend
without a payload key cannot start, update or signal our workflows, and an operator who
holds a key still cannot make an activity act across enterprises."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from partners.codec import PLAINTEXT_REFUSED_TYPE
from tests.helpers.cli import temporal
from tests.helpers.receiver import receiving
from tests.helpers.stack import Stack, holder, new_enterprise, unique_domain


def _address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def test_a_plaintext_deactivation_from_the_cli_leaves_the_partner_active(
    dev_stack: Stack, dev_env: WorkflowEnvironment
) -> None:
    partner = await dev_stack.active_partner()
    workflow_id = f"mallory-{uuid.uuid4()}"
    forged = {"partner_id": partner.id, "enterprise_id": partner.enterprise, "actor": "mallory@evil.example"}
    code, _, err = await temporal(
        _address(dev_env),
        "workflow", "start",
        "--type", "PartnerDeactivationWorkflow",
        "--task-queue", dev_stack.settings.temporal_task_queue,
        "--workflow-id", workflow_id,
        "--input", json.dumps(forged),
    )  # fmt: skip
    assert code == 0, err  # the server takes it; our worker is what refuses it
    with pytest.raises(WorkflowFailureError) as failed:
        await dev_stack.result(dev_stack.client.get_workflow_handle(workflow_id), timeout=30)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == PLAINTEXT_REFUSED_TYPE
    status = await dev_stack.pool.fetchval("SELECT status FROM partners WHERE id = $1", uuid.UUID(partner.id))
    assert status == "active"
    audited = await dev_stack.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE partner_id = $1 AND actor = 'mallory@evil.example'", uuid.UUID(partner.id)
    )
    assert audited == 0


async def test_an_encrypted_deactivation_naming_another_enterprise_changes_nothing(dev_stack: Stack) -> None:
    """In depth: input encrypted with the key (an operator's), the partner of one enterprise
    named with another's id: the activity checks the partner's own enterprise."""
    from partners.models import DeactivationInput
    from workflows.deactivation import PartnerDeactivationWorkflow

    partner = await dev_stack.active_partner()
    handle = await dev_stack.client.start_workflow(
        PartnerDeactivationWorkflow.run,
        DeactivationInput(partner_id=uuid.UUID(partner.id), enterprise_id=new_enterprise(), actor="operator:mallory"),
        id=f"mallory-{uuid.uuid4()}",
        task_queue=dev_stack.settings.temporal_task_queue,
    )
    result = await dev_stack.result(handle, timeout=30)
    assert not result.deactivated
    status = await dev_stack.pool.fetchval("SELECT status FROM partners WHERE id = $1", uuid.UUID(partner.id))
    assert status == "active"


async def test_a_redelivery_of_another_enterprises_event_delivers_nothing(
    dev_stack: Stack, dev_env: WorkflowEnvironment
) -> None:
    """Mallory's endpoint (enterprise A) is asked to redeliver an event of enterprise B: in
    clear through the CLI (dropped), then encrypted (the delivery reads only A's events).
    A's own event, committed afterwards, still arrives: the workflow lives and delivers."""
    mallory, victim = new_enterprise(), new_enterprise()
    async with receiving() as receiver:
        created = await dev_stack.http.post(
            f"/v1/enterprises/{mallory}/webhooks", json={"url": receiver.url}, headers=holder(mallory)
        )
        assert created.status_code == 201, created.text
        receiver.secrets.append(created.json()["secret"])
        endpoint = created.json()["id"]
        registered = await dev_stack.register(victim, unique_domain())
        assert registered.status_code == 201, registered.text
        seq = await dev_stack.pool.fetchval("SELECT max(seq) FROM events WHERE enterprise_id = $1", victim)
        assert seq is not None

        code, _, err = await temporal(
            _address(dev_env),
            "workflow", "signal",
            "--workflow-id", f"webhook-{endpoint}",
            "--name", "redeliver",
            "--input", str(seq),
        )  # fmt: skip
        assert code == 0, err
        await dev_stack.client.get_workflow_handle(f"webhook-{endpoint}").signal("redeliver", seq)

        own = await dev_stack.register(mallory, unique_domain())
        assert own.status_code == 201, own.text
        received = await receiver.wait_for(2)  # partner.registered, invitation.sent
        await asyncio.sleep(1)  # anything else on its way would be here by now
    assert [r.event["type"] for r in received[:2]] == ["partner.registered", "invitation.sent"]
    assert {r.event["enterprise_id"] for r in receiver.receipts} == {mallory}
    attempts = await dev_stack.pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq"
        " WHERE d.endpoint_id = $1 AND e.enterprise_id <> $2",
        uuid.UUID(endpoint),
        mallory,
    )
    assert attempts == 0
