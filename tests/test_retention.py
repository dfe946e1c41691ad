"""R17: every kind of record is kept as long as its setting says, and no longer, removed
by the `partners-retention` schedule's workflow. Against the Temporal dev server, real
PostgreSQL and SMTP; retentions of an hour, and rows made older by moving their times
back (nothing else in the rows changes)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import ScheduleActionExecutionStartWorkflow, ScheduleIntervalSpec, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.models import PruneKind, RetentionInput, RetentionResult
from store.retention import PRUNED_ACTOR
from tests.helpers.cli import temporal
from tests.helpers.images import image
from tests.helpers.receiver import receiving
from tests.helpers.stack import (
    ActivePartner,
    Stack,
    holder,
    new_enterprise,
    partner_body,
    partner_user,
    running_stack,
    start_console,
    unique_domain,
)
from tests.helpers.waiting import eventually
from workflows.retention import RETENTION_SCHEDULE_ID, RetentionWorkflow

HOUR = 3600
RETENTIONS = {
    "events_retention": HOUR,
    "deliveries_retention": HOUR,
    "audit_retention": HOUR,
    "closed_invitations_retention": HOUR,
    "ended_memberships_retention": HOUR,
    "deactivated_partners_retention": HOUR,
    "idempotency_retention": HOUR,
    "suppressions_retention": HOUR,
}


@contextlib.asynccontextmanager
async def short_lived(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, **overrides: Any
) -> AsyncIterator[Stack]:
    # The link limiter counts per client, and every test's client is 127.0.0.1.
    settings = {**RETENTIONS, "link_attempt_limit": 10_000, **overrides}
    async with running_stack(dev_env, pool, mail, **settings) as stack:
        yield stack


async def prune(stack: Stack, **input: Any) -> RetentionResult:
    """A run of the workflow the schedule starts, waited for."""
    async with asyncio.timeout(60):
        return await stack.client.execute_workflow(
            RetentionWorkflow.run,
            RetentionInput(**input),
            id=f"retention-test-{uuid.uuid4()}",
            task_queue=stack.settings.temporal_task_queue,
        )


# Each time of a partner and its enterprise: (table, columns moved, whose rows).
_TIMES = (
    ("events", "created_at", "enterprise_id = $1"),
    ("audit_log", "at", "enterprise_id = $1"),
    ("webhook_deliveries", "at", "event_seq IN (SELECT seq FROM events WHERE enterprise_id = $1)"),
    ("idempotency_keys", "created_at", "enterprise_id = $1"),
    ("invitations", "closed_at", "partner_id = $2"),
    ("members", "ended_at", "partner_id = $2"),
    ("partners", "deactivated_at", "id = $2"),
)


async def age(pool: asyncpg.Pool, partner: ActivePartner, hours: float = 2) -> None:
    """Moves every time of the partner and its enterprise `hours` back, as if it all
    happened then."""
    for table, column, whose in _TIMES:
        await pool.execute(
            f"UPDATE {table} SET {column} = {column} - make_interval(secs => $3)"  # noqa: S608 (constants)
            f" WHERE {whose} AND $1::text IS NOT NULL AND $2::uuid IS NOT NULL",
            partner.enterprise,
            uuid.UUID(partner.id),
            hours * 3600,
        )


async def _json(response: Awaitable[httpx.Response]) -> Any:
    return (await response).json()


async def counts(pool: asyncpg.Pool, partner: ActivePartner) -> dict[str, int]:
    """What is stored of the partner and its enterprise, kind by kind."""
    ent, pid = partner.enterprise, uuid.UUID(partner.id)
    queries = {
        "events": ("SELECT count(*) FROM events WHERE enterprise_id = $1", ent),
        "audit": ("SELECT count(*) FROM audit_log WHERE enterprise_id = $1", ent),
        "closed_invitations": ("SELECT count(*) FROM invitations WHERE partner_id = $1 AND state <> 'pending'", pid),
        "pending_invitations": ("SELECT count(*) FROM invitations WHERE partner_id = $1 AND state = 'pending'", pid),
        "sends": (
            "SELECT count(*) FROM invitation_sends WHERE invitation_id IN"
            " (SELECT id FROM invitations WHERE partner_id = $1)",
            pid,
        ),
        "tokens": (
            "SELECT count(*) FROM invitation_tokens WHERE invitation_id IN"
            " (SELECT id FROM invitations WHERE partner_id = $1)",
            pid,
        ),
        "ended_members": ("SELECT count(*) FROM members WHERE partner_id = $1 AND NOT active", pid),
        "active_members": ("SELECT count(*) FROM members WHERE partner_id = $1 AND active", pid),
        "idempotency_keys": ("SELECT count(*) FROM idempotency_keys WHERE enterprise_id = $1", ent),
    }
    return {name: int(await pool.fetchval(sql, arg)) for name, (sql, arg) in queries.items()}


async def story(stack: Stack, *, idempotency_key: str | None = None) -> ActivePartner:
    """A partner with one of each: an accepted first admin, a member who joined and was
    removed, a cancelled invitation, a pending one, a grant."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    partner = await stack.active_partner()
    if idempotency_key:  # registered again with a key, so a key row exists
        await stack.http.post(
            f"/v1/enterprises/{partner.enterprise}/partners",
            json={
                "name": "Keyed",
                "domains": [f"k{partner.domain}"],
                "admin": {"first_name": "K", "last_name": "K", "email": f"k@k{partner.domain}"},
            },
            headers={**holder(partner.enterprise), **headers},
        )
    joined = f"mel@{partner.domain}"
    await stack.invite(partner, joined)
    [mail] = await stack.delivered(joined)
    assert 'data-outcome="accepted"' in (await stack.http.post(f"{mail.link}/accept")).text
    removed = await stack.http.delete(
        f"/v1/partners/{partner.id}/members/{joined}", headers=partner_user(partner.admin)
    )
    assert removed.status_code == 200, removed.text
    cancelled = (await stack.invite(partner, f"cancel@{partner.domain}")).json()
    await stack.delivered(f"cancel@{partner.domain}")
    await stack.http.post(f"/v1/invitations/{cancelled['id']}/cancel", headers=holder(partner.enterprise))
    await stack.invite(partner, f"waiting@{partner.domain}")
    await stack.delivered(f"waiting@{partner.domain}")
    return partner


async def test_each_kind_is_pruned_past_its_retention_and_kept_before_it(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack:
        old = await story(stack, idempotency_key=f"key-{uuid.uuid4()}")
        young = await story(stack, idempotency_key=f"key-{uuid.uuid4()}")
        # Half an hour old: inside the hour it is kept.
        await age(pool, old, hours=2)
        await age(pool, young, hours=0.5)
        before_old, before_young = await counts(pool, old), await counts(pool, young)
        assert all(before_old[k] > 0 for k in ("events", "audit", "closed_invitations", "ended_members", "tokens"))
        assert before_old["idempotency_keys"] == 1

        result = await prune(stack)

        after_old = await counts(pool, old)
        assert after_old["events"] == after_old["audit"] == 0
        assert after_old["closed_invitations"] == after_old["ended_members"] == after_old["idempotency_keys"] == 0
        # The pending invitation stays, with its send and token; the active Admin stays.
        assert after_old["pending_invitations"] == 1
        assert after_old["sends"] == after_old["tokens"] == 1
        assert after_old["active_members"] == 1
        assert await counts(pool, young) == before_young
        counted = {
            PruneKind.EVENTS: "events",
            PruneKind.AUDIT: "audit",
            PruneKind.INVITATIONS: "closed_invitations",
            PruneKind.MEMBERSHIPS: "ended_members",
            PruneKind.IDEMPOTENCY_KEYS: "idempotency_keys",
        }
        assert all(result.pruned[kind] >= before_old[name] for kind, name in counted.items())
        # The pruned invitation's link is what any unknown link is.
        [cancelled_mail] = stack.mail.mails_to(f"cancel@{old.domain}")
        pruned_link = await stack.http.get(cancelled_mail.link)
        unknown = await stack.http.get(cancelled_mail.link.rsplit("/", 1)[0] + "/" + "A" * 43)
        assert pruned_link.status_code == unknown.status_code == 404
        # The partner and its Admin are live: nothing of theirs went.
        assert (await stack.http.get(f"/v1/partners/{old.id}", headers=holder(old.enterprise))).status_code == 200

        # A run after it finds nothing more.
        again = await prune(stack)
        assert sum(again.pruned.values()) == 0
        assert await counts(pool, old) == after_old


async def test_an_enterprise_keeps_its_audit_as_long_as_its_own_setting_says(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack:
        longer, shorter = await stack.active_partner(), await stack.active_partner()
        await pool.execute("UPDATE enterprises SET audit_retention = $2 WHERE id = $1", longer.enterprise, 3 * HOUR)
        await pool.execute("UPDATE enterprises SET audit_retention = $2 WHERE id = $1", shorter.enterprise, 60)
        for partner in (longer, shorter):
            await pool.execute(
                "UPDATE audit_log SET at = at - interval '2 hours' WHERE enterprise_id = $1", partner.enterprise
            )
        kept = await pool.fetchval("SELECT count(*) FROM audit_log WHERE enterprise_id = $1", longer.enterprise)
        await prune(stack)
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE enterprise_id = $1", longer.enterprise) == kept
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE enterprise_id = $1", shorter.enterprise) == 0


async def test_a_deactivated_partner_past_its_retention_keeps_its_row_without_logo_or_people(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    png = image("PNG")
    async with short_lived(dev_env, pool, mail, closed_invitations_retention=100 * HOUR) as stack:
        gone, kept = await stack.active_partner(), await stack.active_partner()
        for partner in (gone, kept):
            headers = {**holder(partner.enterprise), "Content-Type": "image/png"}
            assert (await stack.http.put(f"/v1/partners/{partner.id}/logo", content=png, headers=headers)).is_success
            grant = await stack.http.post(
                f"/v1/partners/{partner.id}/grants",
                json={"kind": "product", "ref": "maps", "name": "Maps"},
                headers=holder(partner.enterprise),
            )
            assert grant.status_code == 201
            done = await stack.http.post(f"/v1/partners/{partner.id}/deactivate", headers=holder(partner.enterprise))
            assert done.json()["status"] == "deactivated"
        await pool.execute(
            "UPDATE partners SET deactivated_at = deactivated_at - interval '2 hours' WHERE id = $1", uuid.UUID(gone.id)
        )
        result = await prune(stack)
        assert result.pruned[PruneKind.DEACTIVATED_PARTNERS] == 1
        row = await pool.fetchrow("SELECT * FROM partners WHERE id = $1", uuid.UUID(gone.id))
        assert row is not None and row["status"] == "deactivated" and row["name"]
        assert row["logo"] is None and row["created_by"] == PRUNED_ACTOR
        people = await pool.fetch(
            "SELECT email, first_name FROM members WHERE partner_id = $1"
            " UNION ALL SELECT email, first_name FROM invitations WHERE partner_id = $1",
            uuid.UUID(gone.id),
        )
        assert people and all(p["email"].endswith("@erased.invalid") and p["first_name"] == "Erased" for p in people)
        granted = await pool.fetchval("SELECT granted_by FROM partner_grants WHERE partner_id = $1", uuid.UUID(gone.id))
        assert granted == PRUNED_ACTOR
        # The other, deactivated within the hour, keeps everything.
        other = await pool.fetchrow("SELECT logo, created_by FROM partners WHERE id = $1", uuid.UUID(kept.id))
        assert other is not None and other["logo"] is not None and other["created_by"] != PRUNED_ACTOR
        assert await pool.fetchval(
            "SELECT count(*) FROM members WHERE partner_id = $1 AND email = $2", uuid.UUID(kept.id), kept.admin
        )
        # The logo of the pruned one is gone from the API as well.
        logo = await stack.http.get(f"/v1/partners/{gone.id}/logo", headers=holder(gone.enterprise))
        assert logo.status_code == 404


async def test_a_cursor_into_pruned_events_is_told_so_and_after_0_reads_the_oldest_kept(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack:
        partner = await stack.active_partner()
        feed = f"/v1/enterprises/{partner.enterprise}/events"
        headers = holder(partner.enterprise)
        everything = (await stack.http.get(feed, headers=headers)).json()["events"]
        assert len(everything) >= 3
        first = (await stack.http.get(feed, params={"limit": 1}, headers=headers)).json()["next_cursor"]
        seqs = [
            r["seq"]
            for r in await pool.fetch(
                "SELECT seq FROM events WHERE enterprise_id = $1 ORDER BY seq", partner.enterprise
            )
        ]
        # The first two are past their retention.
        await pool.execute(
            "UPDATE events SET created_at = created_at - interval '2 hours' WHERE seq = ANY($1)", seqs[:2]
        )
        await prune(stack)
        expired = await stack.http.get(feed, params={"after": first}, headers=headers)
        assert expired.status_code == 410, expired.text
        assert expired.json()["code"] == "cursor_expired"
        assert expired.headers["content-type"] == "application/problem+json"
        resync = (await stack.http.get(feed, params={"after": 0}, headers=headers)).json()
        assert [e["id"] for e in resync["events"]] == [e["id"] for e in everything[2:]]
        # A reader who had read past the pruned ones missed nothing.
        caught_up = await stack.http.get(feed, params={"after": seqs[1]}, headers=headers)
        assert caught_up.status_code == 200
        assert [e["id"] for e in caught_up.json()["events"]] == [e["id"] for e in everything[2:]]


async def test_a_pruned_event_cannot_be_redelivered_and_its_attempts_go_with_it(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack, receiving() as receiver:
        enterprise = new_enterprise()
        headers = holder(enterprise)
        hook = (
            await stack.http.post(f"/v1/enterprises/{enterprise}/webhooks", json={"url": receiver.url}, headers=headers)
        ).json()
        domain = f"p{uuid.uuid4().hex[:8]}.example"
        await stack.register(enterprise, domain)
        # Every event of the registration written (the mail's among them) and delivered:
        # none may arrive after the ageing below and be left unpruned.
        await stack.delivered(f"ada@{domain}")
        written = await pool.fetchval("SELECT count(*) FROM events WHERE enterprise_id = $1", enterprise)
        deliveries = f"/v1/enterprises/{enterprise}/webhooks/{hook['id']}/deliveries"
        listed = await eventually(
            lambda: _json(stack.http.get(deliveries, headers=headers)),
            lambda page: len(page["deliveries"]) >= written,
        )
        listed = listed["deliveries"]
        delivery = listed[0]["id"]
        await pool.execute(
            "UPDATE events SET created_at = created_at - interval '2 hours' WHERE enterprise_id = $1", enterprise
        )
        result = await prune(stack)
        assert result.pruned[PruneKind.DELIVERIES] >= 1
        assert (await stack.http.get(deliveries, headers=headers)).json()["deliveries"] == []
        retry = await stack.http.post(f"{deliveries}/{delivery}/retry", headers=headers)
        assert retry.status_code == 404, retry.text


async def test_a_row_a_request_holds_is_left_for_the_next_run_and_the_prune_does_not_wait(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail, retention_batch=1) as stack:
        partner = await stack.active_partner()
        await age(pool, partner)
        first = await pool.fetchval(
            "SELECT min(seq) FROM events WHERE enterprise_id = $1", partner.enterprise
        )  # what a request reads and holds
        async with pool.acquire() as db, db.transaction():
            await db.execute("SELECT * FROM events WHERE seq = $1 FOR UPDATE", first)
            result = await prune(stack)  # bounded by prune()'s timeout: it does not wait for the lock
            assert await db.fetchval("SELECT count(*) FROM events WHERE seq = $1", first) == 1
        left = await pool.fetchval("SELECT count(*) FROM events WHERE enterprise_id = $1", partner.enterprise)
        assert left == 1 and result.pruned[PruneKind.EVENTS] >= 1
        await prune(stack)
        assert await pool.fetchval("SELECT count(*) FROM events WHERE enterprise_id = $1", partner.enterprise) == 0


async def test_a_long_prune_continues_as_new_and_shows_its_progress(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail, retention_batch=1) as stack:
        partner = await stack.active_partner()
        await age(pool, partner)
        handle = await stack.client.start_workflow(
            RetentionWorkflow.run,
            RetentionInput(history_limit=10, budget_seconds=0),
            id=f"retention-test-{uuid.uuid4()}",
            task_queue=stack.settings.temporal_task_queue,
        )
        async with asyncio.timeout(60):
            result = await handle.result()
        assert result.pruned[PruneKind.EVENTS] > 0
        first_run = await stack.client.get_workflow_handle(handle.id, run_id=handle.result_run_id).describe()
        assert first_run.status is not None and first_run.status.name == "CONTINUED_AS_NEW"
        assert await pool.fetchval("SELECT count(*) FROM events WHERE enterprise_id = $1", partner.enterprise) == 0
        # What the Temporal UI shows as its current details (it asks the same query).
        metadata = await stack.client.get_workflow_handle(handle.id).query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        assert metadata.current_details.startswith("done; rows removed: events: ")
        assert f"events: {result.pruned[PruneKind.EVENTS]}," in metadata.current_details


async def test_the_schedule_exists_once_a_worker_starts_and_an_operator_triggers_it(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail, retention_interval=2 * HOUR, schedules=True) as stack:
        described = await stack.client.get_schedule_handle(RETENTION_SCHEDULE_ID).describe()
        assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
        [interval] = described.schedule.spec.intervals
        assert isinstance(interval, ScheduleIntervalSpec) and interval.every.total_seconds() == 2 * HOUR
        partner = await stack.active_partner()
        await age(pool, partner)
        # The schedule fires at every hour of the clock: a run it started for an earlier
        # test's stack waits on that stack's task queue, and would have this trigger skipped.
        for running in described.info.running_actions:
            assert isinstance(running, ScheduleActionExecutionStartWorkflow)
            await stack.client.get_workflow_handle(running.workflow_id).terminate("an earlier test's run")
        address = stack.client.service_client.config.target_host
        code, out, err = await temporal(address, "schedule", "trigger", "--schedule-id", RETENTION_SCHEDULE_ID)
        assert code == 0, out + err
        await eventually(
            lambda: pool.fetchval("SELECT count(*) FROM events WHERE enterprise_id = $1", partner.enterprise),
            lambda left: left == 0,
            timeout=30,
            interval=0.2,
        )


@pytest.mark.parametrize("kind", list(PruneKind))
def test_every_kind_has_a_retention_and_a_statement(kind: PruneKind) -> None:
    from partners.settings import Settings
    from store.retention import Retention

    assert Retention(None, Settings())._retention(kind) > 0  # type: ignore[arg-type]


async def test_an_idempotency_key_pruned_is_free_again_and_registers_a_partner_of_its_own(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack:
        enterprise, key = new_enterprise(), f"key-{uuid.uuid4()}"
        headers = {**holder(enterprise), "Idempotency-Key": key}

        async def register(domain: str) -> dict[str, Any]:
            answer = await stack.http.post(
                f"/v1/enterprises/{enterprise}/partners", json=partner_body(domain), headers=headers
            )
            assert answer.status_code == 201, answer.text
            return dict(answer.json())

        first = await register(unique_domain())
        await pool.execute(
            "UPDATE idempotency_keys SET created_at = created_at - interval '2 hours' WHERE enterprise_id = $1",
            enterprise,
        )
        await prune(stack)
        assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE enterprise_id = $1", enterprise) == 0
        second = await register(unique_domain())
        assert second["id"] != first["id"] and second["name"] != first["name"]


async def test_console_links_and_sessions_go_a_day_after_they_ended(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack:
        enterprise = new_enterprise()
        for _ in range(2):
            minted = await stack.http.post("/v1/console/sessions", headers=holder(enterprise))
            assert minted.status_code == 201
            async with httpx.AsyncClient() as browser:
                assert (await start_console(browser, minted.json()["url"])).status_code == 303
        live = await pool.fetchval("SELECT count(*) FROM console_sessions WHERE enterprise_id = $1", enterprise)
        assert live == 2
        # One session and its link ended two days ago; the other is live.
        await pool.execute(
            "UPDATE console_sessions SET ended_at = now() - interval '2 days' WHERE id_hash ="
            " (SELECT id_hash FROM console_sessions WHERE enterprise_id = $1 LIMIT 1)",
            enterprise,
        )
        await pool.execute(
            "UPDATE console_links SET expires_at = now() - interval '2 days' WHERE token_hash ="
            " (SELECT token_hash FROM console_links WHERE enterprise_id = $1 LIMIT 1)",
            enterprise,
        )
        result = await prune(stack)
        assert result.pruned[PruneKind.CONSOLE] >= 2
        assert await pool.fetchval("SELECT count(*) FROM console_sessions WHERE enterprise_id = $1", enterprise) == 1
        assert await pool.fetchval("SELECT count(*) FROM console_links WHERE enterprise_id = $1", enterprise) == 1


async def test_a_deleted_endpoint_goes_with_its_attempts_its_retention_after_its_deletion(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with short_lived(dev_env, pool, mail) as stack, receiving() as receiver:
        enterprise = new_enterprise()
        headers = holder(enterprise)
        hooks = f"/v1/enterprises/{enterprise}/webhooks"
        hook = (await stack.http.post(hooks, json={"url": receiver.url}, headers=headers)).json()
        await stack.register(enterprise, unique_domain())
        await receiver.wait_for(1)
        attempts = "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1::uuid"
        # The attempt is recorded once the receiver has answered: a moment after it has the event.
        await eventually(lambda: pool.fetchval(attempts, hook["id"]), lambda n: n >= 1)
        deleted = await stack.http.delete(f"{hooks}/{hook['id']}", headers=headers)
        assert deleted.status_code == 200, deleted.text
        # Deleted now: kept for its retention.
        await prune(stack)
        assert await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE id = $1::uuid", hook["id"]) == 1
        # Deleted two hours ago (its attempts are recent: they go because the endpoint goes).
        await pool.execute(
            "UPDATE webhook_endpoints SET deleted_at = deleted_at - interval '2 hours' WHERE id = $1::uuid", hook["id"]
        )
        await prune(stack)
        await prune(stack)
        assert await pool.fetchval(attempts, hook["id"]) == 0
        assert await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE id = $1::uuid", hook["id"]) == 0


async def test_a_suppression_is_kept_its_retention_after_the_complaint(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """R17, R24: a complained mailbox stays suppressed SUPPRESSIONS_RETENTION, then goes."""
    async with short_lived(dev_env, pool, mail) as stack:
        old, young = f"old-{uuid.uuid4().hex[:8]}@x.example", f"young-{uuid.uuid4().hex[:8]}@x.example"
        for mailbox, age_hours in ((old, 2), (young, 0.5)):
            await pool.execute(
                "INSERT INTO suppressions (mailbox, reason, enterprise_id, created_at)"
                " VALUES ($1, 'complaint', 'ent-x', now() - make_interval(secs => $2))",
                mailbox,
                age_hours * HOUR,
            )

        result = await prune(stack)

        assert result.pruned[PruneKind.SUPPRESSIONS] >= 1
        left = {
            r["mailbox"]
            for r in await pool.fetch("SELECT mailbox FROM suppressions WHERE mailbox IN ($1, $2)", old, young)
        }
        assert left == {young}
