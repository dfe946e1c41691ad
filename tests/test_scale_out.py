"""Scale-out as in production: three worker processes and two API processes on one
Temporal and one PostgreSQL. 200 partners are registered and accepted through both
APIs while one worker is killed with SIGKILL and restarted: every partner ends active,
no mail is lost, none is doubled beyond what the send ledger records, and the link
limiter counts across both APIs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from partners.settings import Settings
from partners.version import package_version
from tests.helpers.cli import set_current_build
from tests.helpers.stack import API_TOKEN, api_client, holder, new_enterprise, partner_body, unique_domain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTNERS = 200


@dataclass
class Processes:
    env: dict[str, str]
    workers: list[asyncio.subprocess.Process]
    apis: list[str]

    async def start_worker(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", cwd=ROOT, env=self.env, stdout=asyncio.subprocess.DEVNULL
        )


async def _ready(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http, asyncio.timeout(30):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _processes(dev_env: WorkflowEnvironment, postgres_dsn: str, mail: MailCatcher) -> AsyncIterator[Processes]:
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "DATABASE_URL": postgres_dsn,
        "DATABASE_POOL_SIZE": "4",
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": f"scale-{uuid.uuid4()}",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports[0]}",
        "PORTAL_API_TOKEN": API_TOKEN,
        "LINK_ATTEMPT_LIMIT": "4",
        "WORKER_METRICS_PORT": "0",
        "API_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "WORKFLOW_SANDBOX": "false",  # as in production
        "PYTHONWARNINGS": "ignore",
    }
    processes = Processes(env, [], [f"http://127.0.0.1:{port}" for port in ports])
    apis = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "starter.api", cwd=ROOT,
            env={**env, "API_PORT": str(port), "OPERATOR_PORT": str(free_port())},
            stdout=asyncio.subprocess.DEVNULL,
        )
        for port in ports
    ]  # fmt: skip
    try:
        processes.workers = [await processes.start_worker() for _ in range(3)]
        # Their build made current, as an operator does after a rollout: the dev server
        # dispatches nothing to a versioned worker until then (in a suite an earlier test's
        # stack may have done it already; this test must not count on that).
        address = dev_env.client.service_client.config.target_host
        await set_current_build(address, Settings.model_fields["worker_deployment_name"].default, package_version())
        await asyncio.gather(*(_ready(url) for url in processes.apis))
        yield processes
    finally:
        for process in [*processes.workers, *apis]:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in [*processes.workers, *apis]:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(40):
                    await process.wait()


async def test_three_workers_two_apis_a_worker_killed(
    dev_env: WorkflowEnvironment, postgres_dsn: str, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprises = [new_enterprise() for _ in range(PARTNERS // 10)]  # 10 partners each (R2)
    async with (
        _processes(dev_env, postgres_dsn, mail) as stack,
        api_client(stack.apis[0], timeout=60) as first,
        api_client(stack.apis[1], timeout=60) as second,
    ):
        apis = [first, second]
        gate = asyncio.Semaphore(20)

        async def onboard(i: int) -> tuple[str, str]:
            enterprise, domain = enterprises[i // 10], unique_domain()
            async with gate:
                # As a portal does: a 503 (a registration held by the killed worker) is
                # retried after Retry-After with the same Idempotency-Key.
                headers = {**holder(enterprise), "Idempotency-Key": f"onboard-{domain}"}
                for _ in range(5):
                    registered = await apis[i % 2].post(
                        f"/v1/enterprises/{enterprise}/partners", json=partner_body(domain), headers=headers
                    )
                    if registered.status_code != 503:
                        break
                    await asyncio.sleep(int(registered.headers["retry-after"]))
                assert registered.status_code == 201, registered.text
                [invitation] = await mail.wait_for(f"ada@{domain}", timeout=120)
                # The click lands on the other API.
                path = invitation.link.split("/", 3)[3]
                for _ in range(5):  # a person clicks again when the page says "try again"
                    accepted = await apis[(i + 1) % 2].post(f"/{path}/accept")
                    if accepted.status_code != 503:
                        break
                    await asyncio.sleep(int(accepted.headers["retry-after"]))
                # A click answered 503 may still have been applied once a worker took it.
                assert re.search(r'data-outcome="(already_)?accepted"', accepted.text), accepted.text
            return registered.json()["id"], f"ada@{domain}"

        async def kill_a_worker() -> int:
            async with asyncio.timeout(120):
                while (
                    await pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = ANY($1)", enterprises) < 60
                ):
                    await asyncio.sleep(0.2)
            stack.workers[0].send_signal(signal.SIGKILL)
            active: int = await pool.fetchval(
                "SELECT count(*) FROM partners WHERE enterprise_id = ANY($1) AND status = 'active'", enterprises
            )
            await stack.workers[0].wait()
            stack.workers[0] = await stack.start_worker()
            return active

        killed = asyncio.create_task(kill_a_worker())
        onboarded = await asyncio.gather(*(onboard(i) for i in range(PARTNERS)))
        assert await killed < PARTNERS, "the worker was killed while onboardings were under way"

        statuses = await pool.fetch(
            "SELECT status, count(*) FROM partners WHERE enterprise_id = ANY($1) GROUP BY status", enterprises
        )
        assert {r["status"]: r["count"] for r in statuses} == {"active": PARTNERS}
        ledger = await pool.fetch(
            "SELECT i.email, i.state, s.status, s.attempts FROM invitation_sends s"
            " JOIN invitations i ON i.id = s.invitation_id JOIN partners p ON p.id = i.partner_id"
            " WHERE p.enterprise_id = ANY($1)",
            enterprises,
        )
        assert len(ledger) == PARTNERS and {r["state"] for r in ledger} == {"accepted"}, "no mail lost"
        # 'sending' is an outcome the ledger could not learn: the killed worker had handed
        # the mail to SMTP, and the invitee accepted it before the retry came.
        for row in ledger:
            assert row["status"] == "sent" or mail.mails_to(row["email"]), row
        attempts = {r["email"]: r["attempts"] for r in ledger}
        for _, admin in onboarded:
            received = len(mail.mails_to(admin))
            assert 1 <= received <= attempts[admin], f"{admin}: {received} mails, {attempts[admin]} attempts"

        # The link limiter: four bad links through both APIs, then both refuse the next.
        unknown, client = "/invitations/" + "D" * 43, {"X-Forwarded-For": "198.51.100.7"}
        misses = [(await apis[i % 2].get(unknown, headers=client)).status_code for i in range(4)]
        assert misses == [404] * 4
        assert [(await api.get(unknown, headers=client)).status_code for api in apis] == [429, 429]
