"""Faults: a killed worker, a restarted Temporal server, PostgreSQL and SMTP down.

Each ends with no mail lost or doubled beyond what the ledger records, no row lost, and
a workflow that goes on.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
from temporalio.testing import WorkflowEnvironment

from devstack.deployment import make_current
from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import TemporalDevServer
from partners import search
from partners.ids import invitation_workflow_id, onboarding_workflow_id
from partners.models import InvitationState, ResendRequest
from partners.settings import Settings
from partners.temporal_client import connect_client
from store.database import create_pool, migrate
from store.sends import SendLedger
from tests.helpers.stack import holder, new_enterprise, running_stack, unique_domain
from tests.helpers.waiting import eventually, now
from workflows.invitation import InvitationWorkflow
from workflows.onboarding import PartnerOnboardingWorkflow

ROOT = Path(__file__).parent.parent


async def _ledger(pool: asyncpg.Pool, email: str) -> list[tuple[int, str, int]]:
    rows = await pool.fetch(
        "SELECT s.send_number, s.status, s.attempts FROM invitation_sends s JOIN invitations i"
        " ON i.id = s.invitation_id WHERE i.email = $1 ORDER BY s.send_number",
        email,
    )
    return [(r["send_number"], r["status"], r["attempts"]) for r in rows]


async def test_smtp_down_then_back_delivers_each_send_once(time_env: WorkflowEnvironment, pool: asyncpg.Pool) -> None:
    down = MailCatcher(port=free_port())  # not started: connection refused
    async with running_stack(time_env, pool, down) as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        created = (await stack.register(enterprise, domain)).json()
        admin = f"ada@{domain}"
        await eventually(  # the first attempt fails and says why
            lambda: stack.stores.reads.get_invitation(created["admin_invitation"]["id"]),
            lambda found: getattr(found, "last_error", None),
            interval=0.1,
        )

        down.start()
        try:
            await stack.env.sleep(timedelta(minutes=5))  # the activity's retries, skipped
            [mail] = await stack.delivered(admin)
            assert len(down.mails_to(admin)) == 1
            assert await _ledger(pool, admin) == [(1, "sent", await _attempts(pool, admin))]
            # One token row per send, however many attempts it took (R17: nothing grows
            # with a relay's outage): the mailed link's.
            tokens = await pool.fetch(
                "SELECT t.send_number FROM invitation_tokens t JOIN invitations i ON i.id = t.invitation_id"
                " WHERE i.email = $1",
                admin,
            )
            assert [t["send_number"] for t in tokens] == [1]
            stored = await stack.stores.reads.get_invitation(created["admin_invitation"]["id"])
            assert stored is not None and stored.state is InvitationState.PENDING and stored.last_error is None
            assert 'data-outcome="accepted"' in (await stack.http.post(f"{mail.link}/accept")).text
        finally:
            down.stop()


async def _attempts(pool: asyncpg.Pool, email: str) -> int:
    value = await pool.fetchval(
        "SELECT s.attempts FROM invitation_sends s JOIN invitations i ON i.id = s.invitation_id WHERE i.email = $1",
        email,
    )
    assert isinstance(value, int) and value >= 2, "the ledger counts the failed attempts"
    return value


async def test_worker_killed_mid_send_then_replaced(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, postgres_dsn: str
) -> None:
    """SIGKILL while the SMTP server holds the mail: the server still delivers it, the
    activity is retried by the next worker: at most one duplicate, and the ledger knows."""
    async with running_stack(dev_env, pool, mail, with_worker=False) as api:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker",
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": postgres_dsn,
                "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                "TEMPORAL_TASK_QUEUE": api.settings.temporal_task_queue,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(mail.port),
                "PUBLIC_BASE_URL": api.base_url,
                "WORKER_METRICS_PORT": "0",
            },
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # The dev server dispatches to a build once it is current (Worker Versioning).
        await make_current(api.client, api.settings)
        enterprise, domain = new_enterprise(), unique_domain()
        admin = f"ada@{domain}"
        mail.delay_next(5)
        conversations = mail.conversations
        created = (await api.register(enterprise, domain)).json()
        await eventually(now(lambda: mail.conversations), lambda seen: seen != conversations)
        worker.kill()
        await worker.wait()
        await mail.wait_for(admin)  # the server finished the conversation it had begun

    async with running_stack(dev_env, pool, mail, temporal_task_queue=api.settings.temporal_task_queue) as stack:
        # The killed attempt misses its heartbeats (10 s) and is retried here.
        mails = await stack.mail.wait_for(admin, 2, timeout=40)
        await eventually(lambda: _ledger(pool, admin), lambda ledger: ledger == [(1, "sent", 2)], timeout=10)
        assert len(mails) == 2, "one duplicate at most"
        assert mails[0].message["Message-ID"] == mails[1].message["Message-ID"], "recognisably the same mail"
        for mail_ in mails:  # both links work: the duplicate is as good as the first
            assert 'id="accept"' in (await stack.http.get(mail_.link.replace(api.base_url, stack.base_url))).text
        page = await stack.http.post(mails[1].link.replace(api.base_url, stack.base_url) + "/accept")
        assert 'data-outcome="accepted"' in page.text
        view = (await stack.http.get(f"/v1/partners/{created['id']}", headers=holder(enterprise))).json()
        assert view["status"] == "active" and view["invitation_counts"] == {"accepted": 1}


async def test_temporal_server_restarted_on_its_file_mid_invitation(
    tmp_path: Path, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    port = free_port()
    server = TemporalDevServer(db_file=tmp_path / "temporal.db", search_attributes=search.ALL, port=port, ui_port=None)
    await server.start()
    try:
        client = await connect_client(Settings(temporal_address=server.address))
        env = WorkflowEnvironment.from_client(client)
        async with running_stack(env, pool, mail, invitation_ttl=4, invitation_max_sends=3) as stack:
            enterprise, domain = new_enterprise(), unique_domain()
            created = (await stack.register(enterprise, domain)).json()
            admin = f"ada@{domain}"
            await stack.delivered(admin)

            await server.stop()
            await asyncio.sleep(1)
            await server.start()

            mails = await stack.delivered(admin, 2, timeout=40)  # the resend timer survived
            page = await stack.http.post(f"{mails[-1].link}/accept")
            assert 'data-outcome="accepted"' in page.text
            handle = stack.client.get_workflow_handle_for(
                PartnerOnboardingWorkflow.run, onboarding_workflow_id(created["id"])
            )
            result = await stack.result(handle, timeout=30)
            assert result.invitation_state is InvitationState.ACCEPTED
            assert (await handle.query(PartnerOnboardingWorkflow.status)).sends == 2
            assert await _ledger(pool, admin) == [(1, "sent", 1), (2, "sent", 1)]
    finally:
        await server.stop()


async def test_postgres_down_during_activities_then_back(
    tmp_path: Path, dev_env: WorkflowEnvironment, mail: MailCatcher
) -> None:
    postgres = EmbeddedPostgres(tmp_path / "pg")
    dsn = await postgres.start()
    pool = await create_pool(dsn, size=5)
    await migrate(pool)
    try:
        # No resend cooldown: the resend comes right after the first send on purpose.
        async with running_stack(dev_env, pool, mail, resend_cooldown=0) as stack:
            partner = await stack.active_partner()
            member = f"mo@{partner.domain}"
            invitation = (await stack.invite(partner, member)).json()
            await stack.delivered(member)
            handle = stack.client.get_workflow_handle_for(
                InvitationWorkflow.run, invitation_workflow_id(invitation["id"])
            )

            await postgres.stop()
            resend = asyncio.create_task(
                handle.execute_update(InvitationWorkflow.resend, ResendRequest(actor="operator:test"))
            )
            refused = await stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))
            assert (refused.status_code, refused.json()["code"]) == (503, "unavailable"), "not a 500"
            await asyncio.sleep(3)  # the send activity fails on the database and is retried
            assert not resend.done() and len(mail.mails_to(member)) == 1
            dsn_again = await postgres.start()
            assert dsn_again == dsn

            async with asyncio.timeout(60):
                status = await resend
            assert (status.state, status.sends) == (InvitationState.PENDING, 2)
            mails = await stack.delivered(member, 2)
            assert len(mails) == 2
            assert await _ledger(pool, member) == [(1, "sent", 1), (2, "sent", 1)], "no partial rows"
            assert 'data-outcome="accepted"' in (await stack.http.post(f"{mails[-1].link}/accept")).text
    finally:
        await pool.close()
        await postgres.stop()


class SlowLedgerStore(SendLedger):
    """The real send ledger, slow to record a send that went out (a database under load)."""

    async def finish_send(self, invitation_id: UUID, send_number: int, requested_by: str | None = None) -> None:
        await asyncio.sleep(3)
        await super().finish_send(invitation_id, send_number, requested_by)


async def test_attempt_cancelled_after_the_mail_went_out_still_records_it(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """An attempt cancelled once the SMTP server has the mail (here by a worker stopping
    with a short grace; in the benchmark, by heartbeats lost under load) still records
    the send: the retry finds it sent and mails nobody twice."""
    enterprise, domain = new_enterprise(), unique_domain()
    admin = f"ada@{domain}"
    async with running_stack(dev_env, pool, mail, stores={"ledger": SlowLedgerStore}, worker_shutdown_grace=1) as first:
        assert (await first.register(enterprise, domain)).status_code == 201
        await first.mail.wait_for(admin)
    # The worker stopped and cancelled the attempt while it was recording the send.
    async with running_stack(dev_env, pool, mail, temporal_task_queue=first.settings.temporal_task_queue):
        await eventually(lambda: _ledger(pool, admin), lambda ledger: ledger == [(1, "sent", 1)], interval=0.2)
        await asyncio.sleep(8)  # the cancelled attempt is retried after 5 s: it must not mail again
        assert len(mail.mails_to(admin)) == 1
        assert await _ledger(pool, admin) == [(1, "sent", 1)]
