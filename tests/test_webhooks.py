"""Events for the portal (R15): the feed, and signed webhooks delivered by a workflow,
received by a real HTTP receiver that verifies with the `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import aiodns
import asyncpg
import httpx
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.webhook_delivery import WebhookDelivery
from devstack.deployment import make_current
from devstack.mailcatcher import MailCatcher
from devstack.net import free_port
from partners import destinations
from partners.activity_io import DeliverInput
from partners.codec import EncryptionCodec, new_key_entry, parse_keys
from partners.events import AuditAction
from partners.settings import Settings
from partners.temporal_client import connect_client, metrics_runtime
from store.events import EventStore
from store.sql import audit
from store.webhook_deliveries import WebhookDeliveries
from tests.helpers.codec import TEST_PAYLOAD_KEYS
from tests.helpers.metrics import scrape, value
from tests.helpers.receiver import Receiver, receiving
from tests.helpers.stack import Stack, holder, new_enterprise, partner_user, running_stack, unique_domain
from tests.helpers.waiting import eventually, now

ONBOARDING = ["partner.registered", "invitation.sent", "invitation.accepted", "member.added", "partner.activated"]


async def _webhook(stack: Stack, enterprise: str, receiver: Receiver, **body: Any) -> dict[str, Any]:
    created = await stack.http.post(
        f"/v1/enterprises/{enterprise}/webhooks", json={"url": receiver.url, **body}, headers=holder(enterprise)
    )
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    assert answer["secret"].startswith("whsec_")
    receiver.secrets.append(answer["secret"])
    return answer


async def _onboard(stack: Stack, enterprise: str) -> tuple[str, str]:
    domain = unique_domain()
    created = await stack.register(enterprise, domain)
    assert created.status_code == 201, created.text
    [mail] = await stack.delivered(f"ada@{domain}")
    assert 'data-outcome="accepted"' in (await stack.http.post(f"{mail.link}/accept")).text
    return created.json()["id"], mail.token


async def test_every_change_is_in_the_feed_and_pushed_signed_in_commit_order(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    async with receiving() as receiver:
        hook = await _webhook(dev_stack, enterprise, receiver)
        partner_id, token = await _onboard(dev_stack, enterprise)

        received = await receiver.wait_for(len(ONBOARDING))

        assert [r.event["type"] for r in received] == ONBOARDING
        assert all(r.verified_by == [hook["secret"]] for r in received), "every signature verifies"
        assert all(r.id == r.event["id"] for r in received), "webhook-id is the event's id"
        assert {r.event["partner_id"] for r in received} == {partner_id}
        assert all(token not in r.body.decode() and "Ada" not in r.body.decode() for r in received)
        assert received[3].event["data"]["email"].startswith("ada@")  # who joined: the portal needs it
        # The feed: the same events, the same order, paged without repeats or gaps.
        events: list[dict[str, Any]] = []
        cursor = "0"
        for _ in range(10):
            page = await dev_stack.http.get(
                f"/v1/enterprises/{enterprise}/events?after={cursor}&limit=2", headers=holder(enterprise)
            )
            assert page.status_code == 200, page.text
            if not page.json()["events"]:
                break
            events += page.json()["events"]
            cursor = page.json()["next_cursor"]
        assert [e["id"] for e in events] == [r.id for r in received]
        assert [e["type"] for e in events] == ONBOARDING
        # Nothing delivered twice after its 2xx; every attempt listed.
        assert len(receiver.receipts) == len(ONBOARDING)
        listed = await dev_stack.http.get(
            f"/v1/enterprises/{enterprise}/webhooks/{hook['id']}/deliveries", headers=holder(enterprise)
        )
        assert [(d["event_id"], d["status"]) for d in reversed(listed.json()["deliveries"])] == [
            (r.id, "delivered") for r in received
        ]
        other = new_enterprise()
        refused = await dev_stack.http.get(f"/v1/enterprises/{enterprise}/events", headers=holder(other))
        assert refused.status_code == 403


async def test_failed_attempts_are_retried_in_order_and_a_retry_redelivers(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprise = new_enterprise()
    async with (
        running_stack(dev_env, pool, mail, webhook_timeout=1.0) as stack,
        receiving(script=[500, 429, 1.5, 503, 200, 500]) as receiver,
    ):
        hook = await _webhook(stack, enterprise, receiver)
        await _onboard(stack, enterprise)
        # While its first event is retried (seconds apart), the Temporal UI's current
        # details say it delivers, not that it sleeps.
        await eventually(now(lambda: receiver.receipts), timeout=30, interval=0.02)
        details = await stack.client.get_workflow_handle(f"webhook-{hook['id']}").query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        assert details.current_details.startswith("delivering the next events"), details.current_details

        received = await receiver.wait_for(len(ONBOARDING), timeout=60)

        assert [r.event["type"] for r in received] == ONBOARDING, "in commit order, whatever failed"
        first = [r for r in receiver.receipts if r.id == received[0].id]
        assert [r.answered for r in first] == [500, 429, "late", 503, 200], "the same webhook-id on every retry"
        assert len({r.headers["webhook-timestamp"] for r in first}) >= 2
        url = f"/v1/enterprises/{enterprise}/webhooks/{hook['id']}/deliveries"
        attempts = list(reversed((await stack.http.get(url, headers=holder(enterprise))).json()["deliveries"]))
        assert [(a["attempt"], a["status"], a["http_status"]) for a in attempts[:5]] == [
            (1, "retrying", 500),
            (2, "retrying", 429),
            (3, "retrying", None),
            (4, "retrying", 503),
            (5, "delivered", 200),
        ]
        assert "Timeout" in attempts[2]["error"]
        # A later event's failure (wherever it fell in a batch) is retried on its own count.
        second = [r.answered for r in receiver.receipts if r.id == received[1].id]
        assert second == [500, 200]
        assert [(a["attempt"], a["status"]) for a in attempts if a["event_id"] == received[1].id] == [
            (1, "retrying"),
            (2, "delivered"),
        ]
        # By hand: one delivery again, the same event, after the ones already sent.
        retried = await stack.http.post(f"{url}/{attempts[4]['id']}/retry", headers=holder(enterprise))
        assert retried.status_code == 202, retried.text
        again = await receiver.wait_for(len(ONBOARDING) + 1)
        assert again[-1].id == received[0].id


async def test_a_receiver_down_then_back_and_the_stack_restarted_receive_the_backlog_in_order(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprise, receiver = new_enterprise(), Receiver()
    queue = f"test-restart-{enterprise}"
    async with running_stack(dev_env, pool, mail, temporal_task_queue=queue) as stack:
        await receiver.start()
        await _webhook(stack, enterprise, receiver)
        await receiver.stop()  # down: every attempt fails to connect
        await _onboard(stack, enterprise)
        await _onboard(stack, enterprise)
    # The whole service restarts with the backlog; the receiver comes back meanwhile.
    async with running_stack(dev_env, pool, mail, temporal_task_queue=queue):
        await receiver.start()
        try:
            received = await receiver.wait_for(2 * len(ONBOARDING), timeout=60)
        finally:
            await receiver.stop()
    assert [r.event["type"] for r in received] == ONBOARDING * 2
    seqs = await pool.fetch("SELECT id FROM events WHERE enterprise_id = $1 ORDER BY seq", enterprise)
    assert [r.id for r in received] == [s["id"] for s in seqs], "every event, once, in commit order"


async def test_a_worker_killed_mid_delivery_is_replaced_and_the_event_delivered_again_once(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, postgres_dsn: str
) -> None:
    """SIGKILL while the receiver holds the POST: the attempt's time runs out, the next
    worker sends the same event again (the same webhook-id: the receiver can tell), then
    the rest in order; nothing acknowledged is sent twice."""
    enterprise = new_enterprise()
    async with (
        running_stack(dev_env, pool, mail, with_worker=False, webhook_timeout=2.0) as api,
        receiving(script=[1.5]) as receiver,
    ):
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker",
            cwd=Path(__file__).parent.parent,
            env={
                **os.environ,
                "DATABASE_URL": postgres_dsn,
                "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                "TEMPORAL_TASK_QUEUE": api.settings.temporal_task_queue,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(mail.port),
                "PUBLIC_BASE_URL": api.base_url,
                "WORKER_METRICS_PORT": "0",
                "WEBHOOK_TIMEOUT": "2",
                "WEBHOOK_ALLOW_HTTP": "true",
                "WEBHOOK_ALLOW_PRIVATE": "true",
            },
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            # The dev server dispatches to a build once it is current (Worker Versioning):
            # run alone, no earlier test has made it so.
            await make_current(api.client, api.settings)
            hook = await _webhook(api, enterprise, receiver)
            domain = unique_domain()
            assert (await api.register(enterprise, domain)).status_code == 201
            # The first POST is being held.
            await eventually(now(lambda: receiver.receipts), timeout=30, interval=0.02)
        finally:
            worker.kill()
            await worker.wait()
        assert receiver.delivered() == []
        async with running_stack(dev_env, pool, mail, temporal_task_queue=api.settings.temporal_task_queue):
            received = await receiver.wait_for(2, timeout=60)
            await asyncio.sleep(1)  # whatever else would come
    assert [r.event["type"] for r in received] == ["partner.registered", "invitation.sent"]
    interrupted = receiver.receipts[0]
    assert interrupted.answered == "late" and interrupted.id == received[0].id, "sent again, the same webhook-id"
    assert len(receiver.receipts) == 3, "nothing acknowledged was sent twice"
    attempts = await pool.fetch(
        "SELECT attempt, status FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", UUID(hook["id"])
    )
    assert (attempts[0]["attempt"], attempts[0]["status"]) == (2, "delivered"), "the killed attempt left no row"


async def test_operators_see_the_backlog_and_the_lag_in_the_metrics(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    port, enterprise, receiver = free_port(), new_enterprise(), Receiver()
    client = await connect_client(
        Settings(temporal_address=dev_env.client.service_client.config.target_host),
        metrics_runtime(port, "127.0.0.1"),
    )
    async with running_stack(dev_env, pool, mail, client=client) as stack:
        await receiver.start()
        await _webhook(stack, enterprise, receiver)
        await receiver.stop()  # down: the events wait
        await _onboard(stack, enterprise)
        labels: dict[str, str] = {}  # one series, whatever the endpoints (R18); this worker serves one
        async with asyncio.timeout(30):  # the SDK exports on its own schedule
            # The backlog is reported as the events are fetched, the first attempt's count
            # once it failed, in the same activity a moment later: both are awaited.
            while (
                value(metrics := await scrape(port), "partners_webhook_backlog", **labels) < len(ONBOARDING) - 1
                or value(metrics, "partners_webhook_attempts_total", outcome="retrying") < 1
            ):
                await asyncio.sleep(0.5)
        assert value(metrics, "partners_webhook_lag_seconds", **labels) > 0
        levels = [line for line in metrics.splitlines() if line.startswith("partners_webhook_")]
        assert levels and not any("endpoint_id" in line for line in levels), "no series per endpoint"
        assert value(metrics, "partners_webhook_attempts_total", outcome="retrying") >= 1

        await receiver.start()
        try:
            await receiver.wait_for(len(ONBOARDING), timeout=60)
            async with asyncio.timeout(30):
                while value(metrics := await scrape(port), "partners_webhook_backlog", **labels) > 0:
                    await asyncio.sleep(0.5)
        finally:
            await receiver.stop()
    assert value(metrics, "partners_webhook_lag_seconds", **labels) == 0
    assert value(metrics, "partners_webhook_attempts_total", outcome="delivered") >= len(ONBOARDING)


async def test_a_batch_retried_after_a_crash_skips_what_it_delivered(pool: asyncpg.Pool) -> None:
    """A batch's activity that dies after some 2xx (a worker killed mid-batch) is retried
    with the same events: the retry sends only those not yet acknowledged."""
    enterprise = new_enterprise()
    codec = EncryptionCodec(parse_keys(TEST_PAYLOAD_KEYS))
    store = EventStore(pool, codec)
    delivery = WebhookDelivery(WebhookDeliveries(pool), codec, timeout=5, allow_http=True, allow_private=True)
    async with receiving() as receiver:
        view, secret = await store.create_endpoint(enterprise, receiver.url, None, "test")
        receiver.secrets.append(secret)
        for size in range(3):
            async with pool.acquire() as db, db.transaction():
                await audit(db, enterprise, None, "test", AuditAction.LOGO_SET, content_type="image/png", size=size)
        seqs = [r["seq"] for r in await pool.fetch("SELECT seq FROM events WHERE enterprise_id = $1", enterprise)]
        # The first attempt delivered the first event, then died.
        await pool.execute("UPDATE webhook_endpoints SET delivered_through = $2 WHERE id = $1", view.id, seqs[0])
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=2)
        try:
            done = await environment.run(delivery.deliver, DeliverInput(endpoint_id=view.id, seqs=seqs, backlog=3))
        finally:
            await delivery.close()
        assert done.done == 3 and done.status == "delivered"
        assert [r.event["data"]["size"] for r in receiver.receipts] == [1, 2], "the acknowledged one is not resent"
        assert all(r.verified_by == [secret] for r in receiver.receipts)
        attempts = await pool.fetch(
            "SELECT attempt FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id", view.id
        )
        assert [a["attempt"] for a in attempts] == [2, 1], "the batch's second attempt, the next one's first"


async def test_a_rotated_secret_signs_beside_the_old_one(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    async with receiving() as receiver:
        hook = await _webhook(dev_stack, enterprise, receiver)
        rotated = await dev_stack.http.post(
            f"/v1/enterprises/{enterprise}/webhooks/{hook['id']}/rotate-secret", headers=holder(enterprise)
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != hook["secret"] and rotated.json()["previous_secret_expires_at"] is not None
        receiver.secrets.append(new)

        await _onboard(dev_stack, enterprise)
        received = await receiver.wait_for(len(ONBOARDING))

        assert all(sorted(r.verified_by) == sorted([hook["secret"], new]) for r in received)
        listed = (await dev_stack.http.get(f"/v1/enterprises/{enterprise}/webhooks", headers=holder(enterprise))).json()
        assert [w["id"] for w in listed["webhooks"]] == [hook["id"]] and "secret" not in listed["webhooks"][0]
        deleted = await dev_stack.http.delete(
            f"/v1/enterprises/{enterprise}/webhooks/{hook['id']}", headers=holder(enterprise)
        )
        assert deleted.json()["status"] == "deleted"


async def test_an_endpoint_failing_past_the_retry_period_is_disabled(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprise = new_enterprise()
    async with (
        running_stack(dev_env, pool, mail, webhook_retry_for=4) as stack,
        receiving(script=[500] * 100) as receiver,
    ):
        hook = await _webhook(stack, enterprise, receiver)
        await _onboard(stack, enterprise)
        handle = stack.client.get_workflow_handle(f"webhook-{hook['id']}")
        assert (await stack.result(handle, timeout=30)).startswith("disabled")
        listed = (await stack.http.get(f"/v1/enterprises/{enterprise}/webhooks", headers=holder(enterprise))).json()
        assert listed["webhooks"][0]["status"] == "disabled"
        assert "failing" in listed["webhooks"][0]["disabled_reason"]
        audit = await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE enterprise_id = $1 AND action = 'webhook_disabled'", enterprise
        )
        assert audit == 1


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("http://partner.example/hooks", True),  # http, not allowed here
        ("https://127.0.0.1/hooks", False),
        ("https://localhost/hooks", False),
        ("https://10.1.2.3/hooks", False),
        ("https://[::1]/hooks", False),
        ("https://169.254.169.254/latest/meta-data", True),  # cloud metadata: always
        ("https://[fe80::1]/hooks", True),
        ("https://[::ffff:169.254.169.254]/hooks", True),
        # IPv6 forms that carry 169.254.169.254 (they pass is_global): NAT64 (both
        # prefixes), 6to4, Teredo (the client's address XOR-ed) and IPv4-compatible.
        ("https://[64:ff9b::a9fe:a9fe]/hooks", True),
        ("https://[64:ff9b:1:a9fe:a9:fe00::]/hooks", True),
        ("https://[2002:a9fe:a9fe::1]/hooks", True),
        ("https://[2001:0:4136:e378:8000:63bf:5601:5601]/hooks", True),
        ("https://[::a9fe:a9fe]/hooks", True),
        # ... and a private or loopback address, where private ones are not allowed.
        ("https://[64:ff9b::a00:1]/hooks", False),
        ("https://[2002:7f00:1::1]/hooks", False),
        ("https://user:pw@partner.example/hooks", True),
        ("ftp://partner.example/hooks", True),
    ],
)
async def test_unsafe_destinations_are_refused(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, url: str, allow_private: bool
) -> None:
    enterprise = new_enterprise()
    async with running_stack(
        dev_env, pool, mail, with_worker=False, webhook_allow_http=False, webhook_allow_private=allow_private
    ) as stack:
        refused = await stack.http.post(
            f"/v1/enterprises/{enterprise}/webhooks", json={"url": url}, headers=holder(enterprise)
        )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] in ("unsafe_webhook_url", "invalid_input")
    assert await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE url = $1", url) == 0


async def test_the_address_is_checked_again_at_every_connection(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """An endpoint whose name now resolves to a private address (DNS rebinding) is not
    reached: stored as if its check had passed, then delivered by a worker that refuses
    private addresses."""
    enterprise = new_enterprise()
    async with (
        running_stack(dev_env, pool, mail, webhook_allow_private=False, webhook_retry_for=3) as stack,
        receiving() as receiver,
    ):
        view, _ = await stack.stores.events.create_endpoint(enterprise, receiver.url, None, "test")
        from workflows.webhooks import start_delivery

        await start_delivery(stack.client, stack.settings, view.id, enterprise)
        await _onboard(stack, enterprise)
        handle = stack.client.get_workflow_handle(f"webhook-{view.id}")
        assert (await stack.result(handle, timeout=30)).startswith("disabled")
    assert receiver.receipts == [], "never reached"
    errors = await pool.fetch("SELECT error FROM webhook_deliveries WHERE endpoint_id = $1", view.id)
    assert errors and all("may not reach" in (e["error"] or "") or "gave up" in e["error"] for e in errors)


async def test_feed_input_is_checked(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    for query in ("after=-1", "after=x", "limit=0", "limit=501"):
        response = await dev_stack.http.get(f"/v1/enterprises/{enterprise}/events?{query}", headers=holder(enterprise))
        assert response.status_code == 422, query
    bad = await dev_stack.http.post(
        f"/v1/enterprises/{enterprise}/webhooks",
        json={"url": "http://127.0.0.1:9/x", "events": ["partner.exploded"]},
        headers=holder(enterprise),
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")
    assert isinstance(bad, httpx.Response)


async def test_an_enterprise_has_a_bounded_number_of_endpoints_and_one_per_url(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """Each endpoint POSTs every event once: endpoints on one URL would amplify what a
    third party receives, and endpoints without number would each wait for every event."""
    enterprise = new_enterprise()
    async with running_stack(dev_env, pool, mail, with_worker=False, webhook_endpoint_limit=3) as stack:

        async def create(url: str) -> httpx.Response:
            return await stack.http.post(
                f"/v1/enterprises/{enterprise}/webhooks", json={"url": url}, headers=holder(enterprise)
            )

        first = await create("http://127.0.0.1:9/hooks")
        assert first.status_code == 201, first.text
        # The same URL however it is spelled: scheme and host case, the default port.
        for same in ("http://127.0.0.1:9/hooks", "HTTP://127.0.0.1:9/hooks#x"):
            taken = await create(same)
            assert (taken.status_code, taken.json()["code"]) == (409, "webhook_url_taken"), same
            assert taken.json()["webhook_id"] == first.json()["id"]
        for n in (2, 3):
            assert (await create(f"http://127.0.0.1:9/hooks/{n}")).status_code == 201
        full = await create("http://127.0.0.1:9/hooks/4")
        assert (full.status_code, full.json()["code"], full.json()["limit"]) == (409, "webhook_limit_reached", 3)
        kept = await pool.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE enterprise_id = $1 AND status <> 'deleted'", enterprise
        )
        assert kept == 3
        # A deleted endpoint frees its place and its URL.
        deleted = await stack.http.delete(
            f"/v1/enterprises/{enterprise}/webhooks/{first.json()['id']}", headers=holder(enterprise)
        )
        assert deleted.status_code in (200, 204), deleted.text
        assert (await create("http://127.0.0.1:9/hooks")).status_code == 201


async def test_secrets_are_sealed_at_rest_resealed_after_a_key_rotation_and_the_old_one_cleared(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprise = new_enterprise()
    rotated_keys = f"{new_key_entry('test-next')},{TEST_PAYLOAD_KEYS}"
    async with receiving() as receiver:
        async with running_stack(dev_env, pool, mail) as stack:
            hook = await _webhook(stack, enterprise, receiver)
            rotated = await stack.http.post(
                f"/v1/enterprises/{enterprise}/webhooks/{hook['id']}/rotate-secret", headers=holder(enterprise)
            )
            new = rotated.json()["secret"]
            receiver.secrets.append(new)
            stored = await pool.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1::uuid", hook["id"])
            assert stored is not None
            as_text = " ".join(str(v) for v in dict(stored).values())
            assert "whsec_" not in as_text and new not in as_text and hook["secret"] not in as_text, "sealed"
            for secret in (new, hook["secret"]):  # nor the key inside the whsec_ wrapping
                assert secret.removeprefix("whsec_") not in as_text
            assert stored["secret_key_id"] == stored["previous_key_id"] == TEST_PAYLOAD_KEYS.split(":", 1)[0]
            # The overlap ends (as 24 hours would end it).
            await pool.execute(
                "UPDATE webhook_endpoints SET previous_expires_at = now() - interval '1 second' WHERE id = $1::uuid",
                hook["id"],
            )

        # PAYLOAD_KEYS rotated: a new key first, the old one after it. A worker's start
        # seals every secret anew and clears the previous secret whose overlap ended.
        queue = stack.settings.temporal_task_queue  # where the endpoint's workflow waits
        async with running_stack(dev_env, pool, mail, payload_keys=rotated_keys, temporal_task_queue=queue) as stack:
            resealed = await pool.fetchrow(
                "SELECT secret_key_id, previous_secret, previous_key_id FROM webhook_endpoints WHERE id = $1::uuid",
                hook["id"],
            )
            assert resealed is not None and tuple(resealed) == ("test-next", None, None)
            await _onboard(stack, enterprise)
            received = await receiver.wait_for(len(ONBOARDING))
            assert all(r.verified_by == [new] for r in received), "signed by the new secret alone"


class _SilentDns(asyncio.DatagramProtocol):
    """A name server on loopback that takes every question and never answers."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.asked = getattr(self, "asked", 0) + 1


@contextlib.asynccontextmanager
async def _stalling_dns() -> AsyncIterator[_SilentDns]:
    """This process's webhook destinations resolved through a name server that stalls."""
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(_SilentDns, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    destinations._RESOLVERS[loop] = aiodns.DNSResolver(loop=loop, nameservers=[f"127.0.0.1:{port}"])
    try:
        yield server
    finally:
        destinations._RESOLVERS.pop(loop, None)
        transport.close()


async def test_a_destination_whose_dns_stalls_fails_its_attempt_and_holds_no_one_up(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprise = new_enterprise()
    async with running_stack(dev_env, pool, mail, webhook_retry_for=600) as stack, _stalling_dns() as dns:
        hooks = f"/v1/enterprises/{enterprise}/webhooks"

        async def create() -> httpx.Response:
            return await stack.http.post(hooks, json={"url": "http://stalls.example/hooks"}, headers=holder(enterprise))

        async def meanwhile() -> float:
            started = asyncio.get_running_loop().time()
            assert (await stack.http.get("/v1/access", headers=partner_user("x@y.example"))).status_code == 200
            return asyncio.get_running_loop().time() - started

        async with asyncio.timeout(20):
            creations = [asyncio.create_task(create()) for _ in range(12)]
            await asyncio.sleep(0.5)
            waits = [await meanwhile() for _ in range(5)]
            answers = await asyncio.gather(*creations)
        assert dns.asked > 0
        assert max(waits) < 2.0, waits
        for answer in answers:
            assert (answer.status_code, answer.json()["code"]) == (422, "unsafe_webhook_url")
            assert "did not resolve within 5 s" in answer.json()["detail"]
        # At delivery: the stall is one failed attempt, retried like any other.
        view, _ = await stack.stores.events.create_endpoint(enterprise, "http://stalls.example/hooks", None, "test")
        from workflows.webhooks import start_delivery

        await start_delivery(stack.client, stack.settings, view.id, enterprise)
        await _onboard(stack, enterprise)
        failed = await eventually(
            lambda: pool.fetch("SELECT status, error FROM webhook_deliveries WHERE endpoint_id = $1", view.id),
            timeout=30,
            interval=0.2,
        )
        assert failed[0]["status"] == "retrying" and "did not resolve within" in failed[0]["error"]


async def test_a_refused_destination_is_not_told_what_its_name_resolved_to(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    enterprise = new_enterprise()
    async with running_stack(dev_env, pool, mail, with_worker=False, webhook_allow_private=False) as stack:
        for url in ("http://localhost:9/hooks", "http://localhost./x"):
            refused = await stack.http.post(
                f"/v1/enterprises/{enterprise}/webhooks", json={"url": url}, headers=holder(enterprise)
            )
            assert refused.status_code == 422, refused.text
            assert "127.0.0.1" not in refused.text and "::1" not in refused.text
