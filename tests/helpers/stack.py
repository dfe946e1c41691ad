"""The service as a user meets it: a worker and the HTTP API on a real port."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devstack.deployment import make_current
from devstack.mailcatcher import MailCatcher, ReceivedMail
from devstack.net import free_port
from partners.settings import Settings
from starter.api import bounce_listener, servers
from starter.bounces import BounceListener
from starter.wiring import Wiring
from store.stores import Stores
from tests.helpers.waiting import eventually
from worker import running_workers

API_TOKEN = "test-portal-token"
# Loaded once: httpx would load the trusted certificates for each client (about 20 ms of
# CPU), two clients a stack, hundreds of stacks a suite.
TLS = httpx.create_ssl_context()


def api_client(base_url: str, timeout: float = 30) -> httpx.AsyncClient:
    """A client of one of our listeners, as a portal keeps one. Its idle connections expire
    before uvicorn closes them (5 s): a request sent on a connection the server is closing
    fails with ReadError, and a POST is not retried."""
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=httpx.Limits(keepalive_expiry=2.0), verify=TLS)


T = TypeVar("T")

# How long, in the time-skipping servers' time, each workflow a test waited for lived: the
# simulated days the suite covers (the servers' clocks are no measure: with nothing left
# to wait for, they jump years ahead).
SIMULATED_LIVES: dict[str, timedelta] = {}


def new_enterprise() -> str:
    return f"ent-{uuid.uuid4().hex[:12]}"


def holder(enterprise: str, email: str = "holder@enterprise.example") -> dict[str, str]:
    """Headers of an account holder of `enterprise`, as the portal backend sends them."""
    return {
        "Authorization": f"Bearer {API_TOKEN}",
        "X-Actor-Email": email,
        "X-Actor-Role": "account_holder",
        "X-Actor-Enterprise": enterprise,
    }


def partner_user(email: str) -> dict[str, str]:
    """Headers of a person of a partner company (its Admin, say), as the portal sends them."""
    return {"Authorization": f"Bearer {API_TOKEN}", "X-Actor-Email": email, "X-Actor-Role": "partner_user"}


def partner_body(
    domain: str, *, admin: str | None = None, name: str | None = None, enterprise_name: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name or f"Partner {domain}",
        "domains": [domain],
        "admin": {"first_name": "Ada", "last_name": "Admin", "email": admin or f"ada@{domain}"},
    }
    if enterprise_name is not None:
        body["enterprise_name"] = enterprise_name
    return body


def unique_domain() -> str:
    return f"p{uuid.uuid4().hex[:10]}.example"


@dataclass(frozen=True)
class ActivePartner:
    enterprise: str
    id: str
    domain: str
    admin: str


@dataclass
class Stack:
    env: WorkflowEnvironment
    settings: Settings
    client: Client
    stores: Stores
    pool: asyncpg.Pool
    mail: MailCatcher
    http: httpx.AsyncClient
    base_url: str
    # The operators' listener: /codec and readiness in detail.
    operator: httpx.AsyncClient
    operator_url: str
    # The service layer the API and the console call, for tests that drive it directly.
    services: Wiring
    # Where delivery reports and complaints come back over SMTP (R24).
    bounces: BounceListener | None = None

    async def result(self, handle: WorkflowHandle[Any, T], timeout: float = 60) -> T:
        """The workflow's result; on the time-skipping server, timers are skipped meanwhile."""
        async with asyncio.timeout(timeout):
            if not self.env.supports_time_skipping:
                return await handle.result()
            # Only handles the environment started itself skip time on their own.
            async with self.env.time_skipping_unlocked():  # type: ignore[attr-defined]
                result = await handle.result()
            described = await handle.describe()
            if described.close_time is not None:
                SIMULATED_LIVES[f"{handle.id}/{described.run_id}"] = described.close_time - described.start_time
            return result

    async def delivered(self, address: str, count: int = 1, timeout: float = 20) -> list[ReceivedMail]:
        """The mails to `address`, once the send ledger also records them as sent."""
        mails = await self.mail.wait_for(address, count, timeout)
        async with asyncio.timeout(timeout):
            while (
                await self.pool.fetchval(
                    "SELECT count(*) FROM invitation_sends s JOIN invitations i ON i.id = s.invitation_id"
                    " WHERE i.email = $1 AND s.status = 'sent'",
                    address.lower(),
                )
                < count
            ):
                await asyncio.sleep(0.05)
        return mails

    async def active_partner(self, **kwargs: Any) -> ActivePartner:
        """A partner whose first admin accepted: the starting point of most stories."""
        enterprise, domain = new_enterprise(), unique_domain()
        created = await self.register(enterprise, domain, **kwargs)
        assert created.status_code == 201, created.text
        admin = f"ada@{domain}"
        [mail] = await self.mail.wait_for(admin)
        accepted = await self.http.post(f"{mail.link}/accept")
        assert 'data-outcome="accepted"' in accepted.text
        if self.settings.notify_inviters:
            # The account holder's notice is out (R24) before the story goes on: a test that
            # counts mails, or makes the next ones fail, is not disturbed by it.
            told = "SELECT n.status FROM inviter_notices n JOIN invitations i ON i.id = n.invitation_id"
            told += " WHERE i.partner_id = $1::uuid AND n.outcome = 'accepted'"
            partner_id = created.json()["id"]
            await eventually(lambda: self.pool.fetchval(told, partner_id), lambda s: s in ("sent", "skipped"))
        return ActivePartner(enterprise, created.json()["id"], domain, admin)

    async def invite(self, partner: ActivePartner, email: str, **body: Any) -> httpx.Response:
        """The partner's Admin invites a member."""
        return await self.http.post(
            f"/v1/partners/{partner.id}/invitations",
            json={"first_name": "Mel", "last_name": "Member", "email": email, **body},
            headers=partner_user(partner.admin),
        )

    async def invitations(self, partner_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
        """Every invitation of the partner, newest first, from the paged list: the
        partner's view shows the pending ones only."""
        found: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(100):
            page = await self.http.get(
                f"/v1/partners/{partner_id}/invitations", params={"cursor": cursor} if cursor else {}, headers=headers
            )
            assert page.status_code == 200, page.text
            found += page.json()["invitations"]
            if not (cursor := page.json()["next_cursor"]):
                return found
        raise AssertionError("the invitation list did not end")

    async def register(self, enterprise: str, domain: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(
            f"/v1/enterprises/{enterprise}/partners",
            json=partner_body(domain, **kwargs),
            headers=holder(enterprise),
        )


@contextlib.asynccontextmanager
async def running_stack(
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    mail: MailCatcher,
    client: Client | None = None,
    with_worker: bool = True,
    stores: dict[str, Any] | None = None,
    schedules: bool = False,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    """The API on a real port and, unless `with_worker` is False, a worker in this process.
    `stores` swaps store classes for subclasses (see `Stores.build`). With `schedules`, the
    worker keeps the service's schedules as at every production start: for the tests that
    read them. Elsewhere they are left alone, as each stack would point them at its own task
    queue, an update of both that costs the dev server more than the rest of a stack's start."""
    client = client or env.client
    port, operator_port = free_port(), free_port()
    base_url, operator_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{operator_port}"
    settings = Settings(
        database_url=SecretStr("postgresql://unused-the-pool-is-given"),
        smtp_host="127.0.0.1",
        smtp_port=mail.port,
        public_base_url=base_url,
        portal_api_token=SecretStr(API_TOKEN),
        **{
            "api_metrics_port": 0,
            "api_port": port,
            "operator_port": operator_port,
            "temporal_task_queue": f"test-{uuid.uuid4()}",
            # Receivers of the tests listen on loopback, over http.
            "webhook_allow_http": True,
            "webhook_allow_private": True,
            # Every mail's return path, and where reports to it are received (R24).
            "bounce_address": "bounces@bounces.example",
            "bounce_smtp_host": "127.0.0.1",
            "bounce_smtp_port": free_port(),
            **overrides,
        },
    )
    services = Wiring.build(settings, client, pool, **(stores or {}))
    # As in production: both listeners; uvicorn's loggers, its access log too, go to the root.
    listeners = servers(services)
    async with contextlib.AsyncExitStack() as running:
        if with_worker:
            schedules = schedules and not env.supports_time_skipping  # the test server has none
            await running.enter_async_context(running_workers(client, settings, services.stores, schedules=schedules))
            if not env.supports_time_skipping:  # the time-skipping server does not route by build
                await make_current(client, settings)
        bounces = await running.enter_async_context(bounce_listener(services, listeners))
        serving = [asyncio.create_task(server.serve()) for server in listeners]
        try:
            async with asyncio.timeout(10):
                while not all(server.started for server in listeners):
                    await asyncio.sleep(0.02)
            async with api_client(base_url) as http, api_client(operator_url) as operator:
                yield Stack(
                    env,
                    settings,
                    client,
                    services.stores,
                    pool,
                    mail,
                    http,
                    base_url,
                    operator,
                    operator_url,
                    services,
                    bounces,
                )
        finally:
            for server in listeners:
                server.should_exit = True
            await asyncio.gather(*serving)


async def start_console(browser: httpx.AsyncClient, url: str) -> httpx.Response:
    """What a person's browser does with a console link: opens the page that names them,
    and presses its button (a POST from the console's own origin)."""
    shown = await browser.get(url)
    if shown.status_code != 200:
        return shown
    origin = url.split("/console/", 1)[0]
    token = parse_qs(urlsplit(url).query)["token"][0]
    return await browser.post(
        f"{origin}/console/start", data={"token": token}, headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"}
    )


async def fresh_database(postgres_dsn: str, prefix: str) -> str:
    """A new, empty database in the suite's PostgreSQL: its DSN (no migration applied)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlunsplit(urlsplit(postgres_dsn)._replace(path=f"/{name}"))
