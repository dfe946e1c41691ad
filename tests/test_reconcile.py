"""R25: after a restore, `partners reconcile` brings Temporal back in line with PostgreSQL.
Here the other direction of a restore: the workflows of waiting invitations and of a
webhook endpoint terminated, as a lost namespace would leave them, and a workflow still
running for an invitation the database holds as closed. Run with the real CLI."""

from __future__ import annotations

import json
import sys

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from partners.ids import invitation_workflow_id, onboarding_workflow_id, webhook_workflow_id
from tests.helpers.cli import run
from tests.helpers.receiver import receiving
from tests.helpers.stack import Stack, holder, unique_domain


async def _status(stack: Stack, workflow_id: str) -> WorkflowExecutionStatus | None:
    return (await stack.client.get_workflow_handle(workflow_id).describe()).status


async def test_reconcile_brings_back_what_a_lost_namespace_leaves(
    scheduled_stack: Stack, dev_env: WorkflowEnvironment, postgres_dsn: str
) -> None:
    dev_stack = scheduled_stack
    env = {
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": dev_stack.settings.temporal_task_queue,
        "PYTHONWARNINGS": "ignore",
    }

    async def reconcile(*args: str) -> dict:  # type: ignore[type-arg]
        code, out, err = await run(
            sys.executable,
            "-m",
            "starter",
            "--actor",
            "olivia",
            "reconcile",
            "--settle-seconds",
            "0",
            "--enterprise",
            partner.enterprise,
            *args,
            env=env,
        )
        assert code == 0, err
        answer: dict = json.loads(out)  # type: ignore[type-arg]
        return answer

    partner = await dev_stack.active_partner()
    member = f"mo@{partner.domain}"
    invitation = (await dev_stack.invite(partner, member)).json()
    [member_mail] = await dev_stack.delivered(member)
    closed = (await dev_stack.invite(partner, f"old@{partner.domain}")).json()
    await dev_stack.delivered(f"old@{partner.domain}")
    enterprise, domain = partner.enterprise, unique_domain()  # one enterprise: the run is scoped to it
    pending_partner = (await dev_stack.register(enterprise, domain)).json()
    [admin_mail] = await dev_stack.delivered(f"ada@{domain}")
    async with receiving() as receiver:
        hooks = f"/v1/enterprises/{partner.enterprise}/webhooks"
        hook = (await dev_stack.http.post(hooks, json={"url": receiver.url}, headers=holder(partner.enterprise))).json()
        lost = [
            invitation_workflow_id(invitation["id"]),
            onboarding_workflow_id(pending_partner["id"]),
            webhook_workflow_id(hook["id"]),
        ]
        for workflow_id in lost:
            await dev_stack.client.get_workflow_handle(workflow_id).terminate("the namespace was lost")
        # A namespace restored without its schedules.
        await dev_stack.client.get_schedule_handle("partners-reconcile").delete()
        # A restored database may hold as closed an invitation whose workflow still waits.
        await dev_stack.pool.execute("UPDATE invitations SET state = 'cancelled' WHERE id = $1::uuid", closed["id"])

        listed = await reconcile("--dry-run")

        kinds = sorted((r["kind"], r["id"]) for r in listed["repairs"])
        assert ("invitation_taken_over", invitation["id"]) in kinds
        assert ("webhook_started", hook["id"]) in kinds
        assert ("workflow_told_closed", invitation_workflow_id(closed["id"])) in kinds
        assert [k for k, _ in kinds].count("invitation_taken_over") == 2, "the first admin's too"
        assert ("schedule_created", "partners-reconcile") in kinds
        assert await _status(dev_stack, invitation_workflow_id(invitation["id"])) is WorkflowExecutionStatus.TERMINATED
        assert await _status(dev_stack, invitation_workflow_id(closed["id"])) is WorkflowExecutionStatus.RUNNING

        repaired = await reconcile()

        assert sorted((r["kind"], r["id"]) for r in repaired["repairs"]) == kinds
        assert await _status(dev_stack, invitation_workflow_id(invitation["id"])) is WorkflowExecutionStatus.RUNNING
        assert await _status(dev_stack, webhook_workflow_id(hook["id"])) is WorkflowExecutionStatus.RUNNING
        told = dev_stack.client.get_workflow_handle(invitation_workflow_id(closed["id"]))
        assert (await dev_stack.result(told, timeout=20))["state"] == "cancelled"
        audited = await dev_stack.pool.fetch(
            "SELECT actor, details->>'repair' AS repair FROM audit_log WHERE action = 'reconciled'"
            " AND (details->>'invitation_id' = ANY($1::text[]) OR details->>'endpoint_id' = $2)",
            [invitation["id"]],
            hook["id"],
        )
        assert {(r["actor"], r["repair"]) for r in audited} == {
            ("operator:olivia", "invitation_taken_over"),
            ("operator:olivia", "webhook_started"),
        }
        assert (await dev_stack.client.get_schedule_handle("partners-reconcile").describe()).schedule is not None
        # Twice in a row: nothing more to repair.
        assert (await reconcile())["repairs"] == []

    # The links mailed before work, and nobody was mailed again for the same send.
    for link in (member_mail.link, admin_mail.link):
        accepted = await dev_stack.http.post(f"{link}/accept")
        assert 'data-outcome="accepted"' in accepted.text, accepted.text[:300]
    assert len(dev_stack.mail.mails_to(member)) == 1
    view = await dev_stack.http.get(f"/v1/partners/{pending_partner['id']}", headers=holder(enterprise))
    assert view.json()["status"] == "active"
