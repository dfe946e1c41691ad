"""The upgrade check: a released version, from git, leaves invitations waiting; the
working tree takes over on the same database and Temporal server, as an operator rolls a
release out (docs/operations.md, "Upgrading"); the invitations are then accepted, resent
and expired as they would have been without the upgrade.

`make upgrade-check FROM=1.0.0` runs it from any release; `make test` from the latest
(tests/releases.json). At the release itself it compares the release with itself: it is
there for every change after.

Both sides run as production does, each in processes of its own: the migration job
(`python -m store.database`), `python -m starter.api`, `python -m worker`. The released side
runs its own code (PYTHONPATH and working directory its extracted tree) on this tree's
installed dependencies: a dependency change that breaks the released code fails here on the
released side's start."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHandle

from devstack.mailcatcher import MailCatcher, ReceivedMail
from devstack.net import free_port
from devstack.temporal import TemporalDevServer
from partners import search
from partners.ids import invitation_workflow_id, onboarding_workflow_id, replacement_workflow_id
from tests.helpers.cli import set_current_build
from tests.helpers.codec import TEST_PAYLOAD_KEYS, converter_for_tests
from tests.helpers.releases import ROOT, extract, latest
from tests.helpers.stack import (
    API_TOKEN,
    api_client,
    fresh_database,
    holder,
    new_enterprise,
    partner_body,
    partner_user,
    unique_domain,
)

DEPLOYMENT = "partner-onboarding"
NEXT_BUILD = "working-tree"
# An invitation is mailed, mailed again after TTL, and expires TTL after its last send:
# short enough for the check to see an expiry, long enough for the upgrade in between
# (which took over 30 s with the suite's other processes busy on the same two cores).
TTL, SENDS = 25, 2
PUBLIC = "https://partners.upgrade.example"  # the proxy's name: both sides' links alike


UNHANDLED_COMMAND = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND


@dataclass
class Side:
    """One version's processes: its API and its worker."""

    name: str
    source: Path
    env: dict[str, str]
    api: str = ""
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def run(self, module: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, cwd=self.source, env=self.env, stdin=asyncio.subprocess.DEVNULL
        )
        self.processes.append(process)
        return process

    async def migrate(self) -> None:
        """The release's migration job, before its API and worker start."""
        process = await self.run("store.database")
        async with asyncio.timeout(60):
            assert await process.wait() == 0, f"{self.name}: the migration job failed"
        self.processes.remove(process)

    async def start(self) -> None:
        port = free_port()
        self.env.update(API_PORT=str(port), OPERATOR_PORT=str(free_port()))
        self.api = f"http://127.0.0.1:{port}"
        await self.run("worker")
        await self.run("starter.api")
        async with httpx.AsyncClient(base_url=self.api, timeout=2) as http, asyncio.timeout(60):
            while True:
                for process in self.processes:
                    assert process.returncode is None, f"{self.name}: a process exited with {process.returncode}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a process (a worker finishes what it holds)."""
        for process in self.processes:
            if process.returncode is None:
                process.terminate()
        async with asyncio.timeout(30):
            for process in self.processes:
                await process.wait()
        self.processes.clear()


@contextlib.asynccontextmanager
async def _servers(postgres_dsn: str, tmp: Path) -> AsyncIterator[tuple[str, TemporalDevServer]]:
    """A fresh database in the suite's PostgreSQL, and a Temporal dev server of our own (the
    check's schedules and deployment are its alone)."""
    dsn = await fresh_database(postgres_dsn, "upgrade")
    temporal = TemporalDevServer(
        db_file=tmp / "temporal.db", search_attributes=search.ALL, port=free_port(), ui_port=None
    )
    await temporal.start()
    try:
        yield dsn, temporal
    finally:
        await temporal.stop()


def _env(dsn: str, temporal: str, smtp: int, source: Path, build: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "TEMPORAL_", "WORKER_"))},
        "PYTHONPATH": str(source),
        "DATABASE_URL": dsn,
        "TEMPORAL_ADDRESS": temporal,
        "PORTAL_API_TOKEN": API_TOKEN,
        "PAYLOAD_KEYS": TEST_PAYLOAD_KEYS,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp),
        "PUBLIC_BASE_URL": PUBLIC,
        "WORKER_DEPLOYMENT_NAME": DEPLOYMENT,
        "WORKER_BUILD_ID": build,
        "WORKER_METRICS_PORT": "0",
        "API_METRICS_PORT": "0",
        "WORKER_SHUTDOWN_GRACE": "5",
        "TEMPORAL_CALL_TIMEOUT": "3",
        "INVITATION_TTL": str(TTL),
        "INVITATION_MAX_SENDS": str(SENDS),
        "RESEND_COOLDOWN": "0",
        "LOG_LEVEL": "WARNING",
    }


class Portal:
    """The portal backend and the people, against whichever API serves now."""

    def __init__(self, http: httpx.AsyncClient, mail: MailCatcher) -> None:
        self.http, self.mail = http, mail

    async def call(self, method: str, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
        response = await self.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()

    async def register(self) -> tuple[str, str, str]:
        """A partner registered: its enterprise, id and first admin's address."""
        enterprise, domain = new_enterprise(), unique_domain()
        created = await self.call("POST", f"/v1/enterprises/{enterprise}/partners", holder(enterprise),
                                  json=partner_body(domain))  # fmt: skip
        return enterprise, created["id"], f"ada@{domain}"

    async def mail_to(self, address: str, count: int = 1) -> ReceivedMail:
        """The latest mail to `address`, once `count` have arrived (a reminder's link is the one to click)."""
        await self.mail.wait_for(address, count, timeout=60)
        return self.mail.mails_to(address)[-1]

    async def accept(self, mail: ReceivedMail) -> None:
        page = await self.http.post(f"{urlsplit(mail.link).path}/accept")
        assert 'data-outcome="accepted"' in page.text, page.text[:400]


async def test_invitations_left_waiting_by_the_release_finish_after_the_upgrade(
    postgres_dsn: str, tmp_path: Path
) -> None:
    version = os.environ.get("UPGRADE_FROM") or latest()
    mail = MailCatcher()
    mail.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(mail.stop)
        dsn, temporal = await stack.enter_async_context(_servers(postgres_dsn, tmp_path))
        release = extract(version, tmp_path / "release")
        old = Side(version, release, _env(dsn, temporal.address, mail.port, release, version))
        new = Side("working tree", ROOT, _env(dsn, temporal.address, mail.port, ROOT, NEXT_BUILD))
        stack.push_async_callback(new.stop)
        stack.push_async_callback(old.stop)

        # The release deployed: its migrations, its processes, its build current.
        await old.migrate()
        await old.start()
        await set_current_build(temporal.address, DEPLOYMENT, version)
        http = await stack.enter_async_context(api_client(old.api))
        portal = Portal(http, mail)

        # Left waiting on the release: a first admin (p1); a member of an active partner
        # and that partner's admin replacement (p2); an invitation to expire (p4).
        _, p1, p1_admin = await portal.register()
        e2, p2, p2_admin = await portal.register()
        await portal.accept(await portal.mail_to(p2_admin))
        member = f"mel@{p2_admin.split('@')[1]}"
        invited = await portal.call("POST", f"/v1/partners/{p2}/invitations", partner_user(p2_admin),
                                    json={"first_name": "Mel", "last_name": "Member", "email": member})  # fmt: skip
        successor = f"sam@{p2_admin.split('@')[1]}"
        replacing = await portal.call("POST", f"/v1/partners/{p2}/admin", holder(e2),
                                      json={"first_name": "Sam", "last_name": "Next", "email": successor})  # fmt: skip
        e4, p4, p4_admin = await portal.register()
        # Mid-resend (p3): its resend asked while SMTP is down, the send retrying.
        e3, p3, p3_admin = await portal.register()
        for address in (p1_admin, member, successor, p4_admin, p3_admin):
            await portal.mail_to(address)
        mail.stop()
        p3_view = await portal.call("GET", f"/v1/partners/{p3}", holder(e3))
        resend = await http.post(f"/v1/invitations/{p3_view['admin_invitation']['id']}/resend", headers=holder(e3))
        assert resend.status_code == 503, resend.text  # the send under way does not finish in time
        client = await Client.connect(temporal.address, data_converter=converter_for_tests())
        p3_onboarding = client.get_workflow_handle(onboarding_workflow_id(p3))
        await _until_a_send_failed(client, p3_onboarding.id)

        # The rollout: the working tree's migrations, its workers up, its build current,
        # the release's processes stopped; then SMTP back.
        await new.migrate()
        await new.start()
        await set_current_build(temporal.address, DEPLOYMENT, NEXT_BUILD)
        await old.stop()
        mail.start()
        http.base_url = httpx.URL(new.api)

        # After: accepted, resent, expired, each as the release left it to be.
        await portal.accept(await portal.mail_to(p1_admin))
        await portal.accept(await portal.mail_to(member))
        await portal.accept(await portal.mail_to(successor))
        await portal.accept(await portal.mail_to(p3_admin, 2))  # the resend, mailed by the new build
        for enterprise, partner in ((e2, p2), (e3, p3)):
            assert (await portal.call("GET", f"/v1/partners/{partner}", holder(enterprise)))["status"] == "active"
        p2_view = await portal.call("GET", f"/v1/partners/{p2}", holder(e2))
        assert p2_view["admin"]["email"] == successor, p2_view["admin"]
        assert member in [m["email"] for m in p2_view["members"]], p2_view["members"]
        async with asyncio.timeout(TTL * SENDS + 30):
            while (p4_view := await portal.call("GET", f"/v1/partners/{p4}", holder(e4)))["admin_invitation"][
                "state"
            ] != "expired":
                await asyncio.sleep(0.5)
        assert p4_view["status"] == "pending"
        assert len(mail.mails_to(p4_admin)) == SENDS  # the first mail, and the reminder

        # No workflow task failed on the way (a non-deterministic change fails them), and
        # the ones that waited finished on the new build.
        handles = [
            client.get_workflow_handle(workflow_id)
            for workflow_id in (
                onboarding_workflow_id(p1),
                invitation_workflow_id(invited["id"]),
                replacement_workflow_id(p2),
                invitation_workflow_id(replacing["id"]),
                p3_onboarding.id,
                onboarding_workflow_id(p4),
            )
        ]
        for handle in handles:
            async with asyncio.timeout(30):
                await handle.result()
            failed = await _failed_tasks(handle)
            assert not failed, (handle.id, failed)
            info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
            assert info.deployment_version.build_id == NEXT_BUILD, (handle.id, info)


async def _until_a_send_failed(client: Client, workflow_id: str) -> None:
    """The onboarding's send activity has failed once at least and is waiting to retry."""
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(30):
        while True:
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            if any(a.attempt >= 2 or a.last_failure.message for a in pending):
                return
            await asyncio.sleep(0.2)


async def _failed_tasks(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Why each of the workflow's tasks failed, if any did; but for the server's own
    "unhandled command" (a signal arrived as the task completed: the SDK runs it again)."""
    return [
        failed.failure.message
        async for event in handle.fetch_history_events()
        if event.HasField("workflow_task_failed_event_attributes")
        and (failed := event.workflow_task_failed_event_attributes).cause != UNHANDLED_COMMAND
    ]
