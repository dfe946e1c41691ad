"""WebhookDelivery: the activities of `webhook-{endpoint_id}` (R15).

- `deliver_next`, one activity per wake-up, finds the endpoint's next events and POSTs
  them one at a time, in order, each signed as Standard Webhooks says, to an address
  checked at that connection, and records each attempt; a final answer also moves the
  endpoint's cursor, in the same transaction. Timeouts, connection errors, 429 and 5xx of
  the first event raise (Temporal retries it with backoff); of a later one, end the
  activity there. Another answer fails that event at once. With none left, it flags the
  endpoint asleep, and `WakeUps` (the worker's LISTEN) signals its workflow when its
  enterprise commits one: an idle endpoint costs no Action. Connections are kept alive
  per name and address between attempts.
- `next_events` and `deliver` are its two halves: a redelivery by hand, and the runs
  that started before `deliver_next` (they finish on them).
- `give_up` records the last failure after WEBHOOK_RETRY_FOR and disables the endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from uuid import UUID

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeats import heartbeating
from partners import destinations
from partners.activity_io import (
    DeliverInput,
    DeliverNextInput,
    DeliverNextOutput,
    DeliverOutput,
    GiveUpInput,
    NextEventsInput,
    NextEventsOutput,
)
from partners.codec import EncryptionCodec, PayloadKeyError
from partners.errors import Refused
from partners.metrics import count, gauge
from store.events import unseal_secret
from store.webhook_deliveries import WebhookDeliveries

RESPONSE_LIMIT = 64 * 1024
_CLIENTS_KEPT = 64
# One delivery activity posts events for up to this long, then hands back to the workflow.
BATCH_SECONDS = 20.0
# The system's trusted certificates, loaded once for every client: loading them is about
# 20 ms of CPU, which a client per destination would otherwise spend each time.
_TLS = httpx.create_ssl_context()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the whsec_ secret's key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(signed).decode()


class WebhookDelivery:
    def __init__(
        self,
        store: WebhookDeliveries,
        codec: EncryptionCodec,
        *,
        timeout: float,
        allow_http: bool,
        allow_private: bool,
    ) -> None:
        """`store`: what the deliveries read and record; `codec`: the payload keys, which
        open the signing secrets sealed at rest."""
        self._store = store
        self._codec = codec
        self._timeout = timeout
        self._allow_http = allow_http
        self._allow_private = allow_private
        self._clients: dict[tuple[str, str, str, int | None], httpx.AsyncClient] = {}
        self._levels = _Levels()

    async def close(self) -> None:
        while self._clients:
            await self._clients.popitem()[1].aclose()

    @activity.defn
    async def next_events(self, input: NextEventsInput) -> NextEventsOutput:
        """The endpoint's next events; none, and it is flagged asleep. The flag is set
        before the second look, so an event committed meanwhile is either seen here or
        finds the flag and wakes the workflow: no wake-up lost."""
        await self._store.clear_ended_overlap(input.endpoint_id)
        found = await self._store.pending(input.endpoint_id, input.limit)
        if not found.seqs and not found.stopped:
            await self._store.flag_asleep(input.endpoint_id, True)
            found = await self._store.pending(input.endpoint_id, input.limit)
            if found.seqs or found.stopped:
                await self._store.flag_asleep(input.endpoint_id, False)
            else:
                found = found.model_copy(update={"sleeping": True})
        self._levels.report(input.endpoint_id, backlog=found.backlog, lag=found.oldest_age, gone=found.stopped)
        return found

    @activity.defn
    async def deliver_next(self, input: DeliverNextInput) -> DeliverNextOutput:
        """One wake-up's work in one activity: the endpoint's next events, fetched and
        delivered in order for up to BATCH_SECONDS, looked for again until none is left,
        and then the endpoint flagged asleep (as `next_events` does). An event committed
        alone costs its wake-up signal and this activity; a burst is delivered in
        batches. The first event's failure (to retry) fails the activity: Temporal
        retries it with backoff. A later one's ends the activity; the next one starts
        from that event."""
        batch_ends = time.monotonic() + BATCH_SECONDS
        earlier_attempts = input.earlier_attempts
        last = DeliverNextOutput()
        async with heartbeating():
            while True:
                found = await self.next_events(input)
                if found.stopped or found.sleeping:
                    return last.model_copy(update={"stopped": found.stopped, "sleeping": found.sleeping})
                batch = DeliverInput(
                    endpoint_id=input.endpoint_id,
                    seqs=found.seqs,
                    backlog=found.backlog,
                    earlier_attempts=earlier_attempts,
                )
                outcome = await self._deliver(batch, batch_ends, first=last.done == 0)
                left = found.backlog - outcome.done
                update: dict[str, object] = {"done": last.done + outcome.done, "backlog": left}
                if outcome.seq is not None:
                    update |= {"status": outcome.status, "http_status": outcome.http_status, "seq": outcome.seq}
                last = last.model_copy(update=update | {"retry_next": outcome.retry_next})
                if outcome.retry_next or time.monotonic() >= batch_ends or activity.is_worker_shutdown():
                    return last
                earlier_attempts = 0

    @activity.defn
    async def deliver(self, input: DeliverInput) -> DeliverOutput:
        """POSTs the events in order, one at a time, for up to BATCH_SECONDS (a
        redelivery by hand, and the runs started before `deliver_next`). The first
        one's failure (to retry) fails the activity: Temporal retries it with backoff.
        A later one's ends the batch there; the workflow asks again from that event."""
        async with heartbeating():
            return await self._deliver(input, time.monotonic() + BATCH_SECONDS, first=True)

    async def _deliver(self, input: DeliverInput, batch_ends: float, *, first: bool) -> DeliverOutput:
        """The events of `input` POSTed in order until `batch_ends`. A failure to retry
        raises where it is this activity's `first` event, and ends the batch otherwise."""
        endpoint = await self._store.endpoint(input.endpoint_id)
        if endpoint is None:
            raise ApplicationError("the endpoint is gone", non_retryable=True)
        signing = self._secrets(input.endpoint_id, endpoint)
        # Only the endpoint's enterprise's events, whatever seqs the workflow was given.
        events = await self._store.events(input.seqs, endpoint)
        if input.backlog is None and not events:
            # A redelivery by hand of an event that is not this endpoint's (or is gone):
            # nothing to send; the workflow goes on with its own events.
            return DeliverOutput(done=len(input.seqs), status="none")
        if [e["seq"] for e in events] != input.seqs:
            raise ApplicationError("the endpoint or an event is gone", non_retryable=True)
        # A retried batch skips what an earlier attempt of it delivered: nothing goes out
        # again after its 2xx (a redelivery by hand, backlog None, is sent as asked).
        skipped = 0 if input.backlog is None else sum(e["passed"] for e in events)
        last = DeliverOutput(done=skipped, status="none")
        for position, event in enumerate(events[skipped:], start=skipped):
            attempt = input.earlier_attempts + activity.info().attempt if position == skipped and first else 1
            status, error, duration_ms = await self._attempt(endpoint, signing, event)
            retry = error is not None and (status is None or status == 429 or status >= 500)
            outcome = "delivered" if error is None else ("retrying" if retry else "failed")
            await self._store.record(input.endpoint_id, event, attempt, outcome, status, duration_ms, error)
            count("partners_webhook_attempts", "Webhook delivery attempts, by outcome.", outcome=outcome)
            if retry:  # stuck here: what waits behind, counted anew (attempts are spaced by backoff)
                waiting = await self._store.pending(input.endpoint_id, 1)
                self._levels.report(input.endpoint_id, backlog=waiting.backlog, lag=waiting.oldest_age)
                if position == skipped and first:
                    raise ApplicationError(error or "failed", type="WebhookAttemptFailed")
                return last.model_copy(update={"retry_next": True})
            last = DeliverOutput(done=position + 1, status=outcome, http_status=status, seq=event["seq"])
            if input.backlog is not None:  # draining: the count the batch was fetched with
                left = input.backlog - position - 1
                # the next one's age (beyond this batch, this one's: a little more than it)
                lag = events[min(position + 1, len(events) - 1)]["age"] if left > 0 else 0.0
                self._levels.report(input.endpoint_id, backlog=left, lag=lag)
            if time.monotonic() >= batch_ends or activity.is_worker_shutdown():
                break
        return last

    def _secrets(self, endpoint_id: UUID, endpoint: asyncpg.Record) -> list[str]:
        """The secrets that sign: the current one, and the previous one in its overlap."""
        try:
            sealed = [
                (endpoint["secret_key_id"], endpoint["secret"]),
                (endpoint["previous_key_id"], endpoint["previous"]),
            ]
            return [unseal_secret(self._codec, endpoint_id, kid, stored) for kid, stored in sealed if stored]
        except PayloadKeyError as err:
            # Not retried: no attempt would open it. The workflow fails the batch as final.
            raise ApplicationError(f"the endpoint's secret cannot be opened: {err}", non_retryable=True) from None

    async def _attempt(
        self, endpoint: asyncpg.Record, signing: list[str], event: asyncpg.Record
    ) -> tuple[int | None, str | None, int]:
        """One signed POST of one event: the receiver's status, what went wrong, how long
        it took (ms)."""
        body = json.dumps(
            {
                "id": event["id"],
                "type": event["type"],
                "created_at": event["created_at"].isoformat(),
                "enterprise_id": event["enterprise_id"],
                "partner_id": str(event["partner_id"]) if event["partner_id"] else None,
                "data": event["data"],
            },
            separators=(",", ":"),
        ).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "partner-onboarding-webhooks/1",
            "webhook-id": event["id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(s, event["id"], timestamp, body) for s in signing),
        }
        started = time.monotonic()
        status: int | None = None
        try:
            status = await self._post(endpoint["url"], headers, body)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Refused as err:
            error = err.detail
        except (httpx.HTTPError, OSError) as err:
            error = f"{type(err).__name__}: {err}"[:300]
        return status, error, int((time.monotonic() - started) * 1000)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        """One POST to an address checked now; no redirects; at most 64 KiB read."""
        target = destinations.parse(url, allow_http=self._allow_http)
        [address, *_] = await destinations.resolve(target, allow_private=self._allow_private)
        parts = httpx.URL(url)
        host = f"[{address}]" if address.version == 6 else str(address)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        client = await self._client((target.scheme, target.host, host, parts.port))
        async with (
            client.stream(
                "POST",
                parts.copy_with(host=host),
                content=body,
                headers={**headers, "host": parts.netloc.decode()},
                extensions=extensions,
            ) as response,
        ):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= RESPONSE_LIMIT:
                    break
            return response.status_code

    async def _client(self, key: tuple[str, str, str, int | None]) -> httpx.AsyncClient:
        """A client per name and checked address: its kept-alive connections (and their TLS
        sessions) serve only that name at that address. The oldest of too many is closed."""
        client = self._clients.pop(key, None) or httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, verify=_TLS
        )
        self._clients[key] = client  # the most recently used last
        if len(self._clients) > _CLIENTS_KEPT:
            oldest = next(iter(self._clients))
            await self._clients.pop(oldest).aclose()
        return client

    @activity.defn
    async def give_up(self, input: GiveUpInput) -> None:
        """After WEBHOOK_RETRY_FOR: the delivery failed, and the endpoint is disabled.
        Without a seq, of the endpoint's next event (the one `deliver_next` was stuck on)."""
        seq = input.seq
        if seq is None:
            seq = next(iter((await self._store.pending(input.endpoint_id, 1)).seqs), None)
        await self._store.give_up(input.endpoint_id, seq, input.error)
        count("partners_webhook_endpoints_disabled", "Webhook endpoints disabled after failing too long.")


class _Levels:
    """The backlog (events committed, not yet delivered) and lag (how long ago the oldest
    of them committed; 0 when none waits) of the endpoints this process serves, exported
    as two gauges without an endpoint label: the backlog summed, the lag the largest.
    One series each however many endpoints come and go (R18: a label per endpoint would
    grow for as long as the process runs); a single endpoint's figures are in its
    workflow's current details and its deliveries. An endpoint not heard of for
    `STALE_SECONDS` (deleted, or served by another process now) no longer counts."""

    STALE_SECONDS = 900.0  # an idle endpoint reports at least every NextEventsInput.wait_seconds

    def __init__(self) -> None:
        self._by_endpoint: dict[UUID, tuple[int, float, float]] = {}

    def report(self, endpoint_id: UUID, *, backlog: int, lag: float, gone: bool = False) -> None:
        now = time.monotonic()
        if gone:
            self._by_endpoint.pop(endpoint_id, None)
        else:
            self._by_endpoint[endpoint_id] = (backlog, lag, now)
        for stale in [e for e, (_, _, at) in self._by_endpoint.items() if now - at > self.STALE_SECONDS]:
            del self._by_endpoint[stale]
        levels = self._by_endpoint.values()
        total, oldest = sum(b for b, _, _ in levels), max((lag for _, lag, _ in levels), default=0.0)
        gauge("partners_webhook_backlog", "Events waiting for delivery, over the endpoints served here.", total)
        gauge(
            "partners_webhook_lag_seconds", "Age of the oldest undelivered event of the endpoints served here.", oldest
        )


def webhook_task_queue(task_queue: str) -> str:
    """The webhook activities' own queue and worker: waiting endpoints hold a slot each
    (cheaply: they sleep), which must not starve the mail."""
    return f"{task_queue}-webhooks"
