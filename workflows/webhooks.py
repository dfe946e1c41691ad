"""WebhookDeliveryWorkflow: one endpoint's events, delivered at least once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import timedelta
from uuid import UUID

from temporalio import workflow
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkflowIDConflictPolicy
from temporalio.exceptions import ActivityError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.webhook_delivery import BATCH_SECONDS, WebhookDelivery, webhook_task_queue
    from partners import search
    from partners.activity_io import (
        DeliverInput,
        DeliverNextInput,
        DeliverOutput,
        GiveUpInput,
        NextEventsInput,
        WebhookInput,
    )
    from partners.ids import WEBHOOK_WAKE_SIGNAL, webhook_workflow_id
    from partners.settings import Settings

from workflows.activity_options import DATABASE_STEP, WEBHOOK_LOOKUP, webhook_delivery

# Rounds of waiting and delivering before a new run carries on from the database cursor.
_ROUNDS_PER_RUN = 500
# An asleep endpoint looks again after this long even unwoken: a wake-up lost (a worker
# down between a commit and its signal) delays delivery by a day at most.
_SLEEP_AT_MOST = timedelta(days=1)
# Runs started since take one activity per wake-up (`deliver_next`); earlier ones go on
# with `next_events` and `deliver` until they continue as new.
_ONE_ACTIVITY_PER_WAKE = "deliver-next"
# Beyond WEBHOOK_TIMEOUT, an attempt's time for its database reads and writes.
_ATTEMPT_MARGIN_SECONDS = 5.0


@workflow.defn(versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class WebhookDeliveryWorkflow:
    """`webhook-{endpoint_id}`: delivers the endpoint's next events one at a time in commit
    order, each retried with backoff for WEBHOOK_RETRY_FOR, in one activity per wake-up;
    with none left, sleeps until its enterprise commits one (the worker's LISTEN signals
    `wake`: an idle endpoint costs no Action). A delivery that runs out of time is failed and
    the endpoint disabled: the run ends. Where it got to lives in the database (the
    endpoint's cursor), so a new run, a crash or a restart goes on from there."""

    @workflow.init
    def __init__(self, input: WebhookInput) -> None:
        self._input = input
        self._redeliver: list[int] = []
        self._wakes = 0
        self._last = "no delivery yet"
        self._daily: asyncio.Future[None] | None = None
        self._earlier_attempts = 0  # the next event's attempts in an earlier activity

    @workflow.run
    async def run(self, input: WebhookInput) -> str:
        # Runs started since take one activity per wake-up; a run started before it (its
        # history has no marker) goes on as it began.
        one_activity = workflow.patched(_ONE_ACTIVITY_PER_WAKE)
        for _ in range(_ROUNDS_PER_RUN):
            if self._redeliver:
                if not await self._deliver([self._redeliver.pop(0)]):
                    return self._last
                continue
            wakes = self._wakes
            ended = await (self._deliver_as_woken(wakes) if one_activity else self._look_then_deliver(wakes))
            if ended is not None:
                return ended
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input)

    async def _look_then_deliver(self, wakes: int) -> str | None:
        """A round of the runs started before `deliver_next`: asks for the next events,
        delivers them, or sleeps on a new day's timer. What the run ends with, if it ends."""
        found = await workflow.execute_activity_method(
            WebhookDelivery.next_events,
            NextEventsInput(endpoint_id=self._input.endpoint_id),
            **WEBHOOK_LOOKUP,
            summary="next events",
            task_queue=webhook_task_queue(workflow.info().task_queue),
        )
        if found.stopped:
            return self._stopped()
        if found.sleeping:
            workflow.set_current_details(f"asleep, nothing to deliver; last: {self._last}")
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(functools.partial(self._woken, wakes), timeout=_SLEEP_AT_MOST)
            return None
        if not await self._deliver(found.seqs, backlog=found.backlog):
            return self._last
        self._describe(backlog=0)
        return None

    async def _deliver_as_woken(self, wakes: int) -> str | None:
        """One activity per wake-up (`deliver_next`: finds, delivers, flags asleep), then
        asleep on the day's timer, started once a day rather than once a sleep: an event
        committed alone costs its wake-up signal and one activity, two Actions. What the
        run ends with, if it ends."""
        input = self._input
        # Not "asleep" while its events are delivered, or retried for hours: the pending
        # activity shows the attempts and the last failure.
        workflow.set_current_details(f"delivering the next events; last: {self._last}")
        try:
            done = await workflow.execute_activity_method(
                WebhookDelivery.deliver_next,
                DeliverNextInput(endpoint_id=input.endpoint_id, earlier_attempts=self._earlier_attempts),
                **webhook_delivery(BATCH_SECONDS, input.attempt_seconds, input.retry_for_seconds),
                summary="deliver the next events",
                task_queue=webhook_task_queue(workflow.info().task_queue),
            )
        except ActivityError as err:
            if err.retry_state is not RetryState.TIMEOUT:
                raise
            await self._give_up(None, err)
            return self._last
        self._note(done)
        self._earlier_attempts = 1 if done.retry_next else 0
        if done.stopped:
            return self._stopped()
        if done.sleeping:
            workflow.set_current_details(f"asleep, nothing to deliver; last: {self._last}")
            await self._sleep(wakes)
        else:
            self._describe(backlog=done.backlog)
        return None

    def _stopped(self) -> str:
        workflow.set_current_details(f"stopped: the endpoint is disabled or deleted; {self._last}")
        return "stopped"

    async def _sleep(self, wakes: int) -> None:
        """Until its enterprise commits an event (a `wake` signal), a redelivery is asked,
        or the day's timer fires: a safety net for a wake-up lost, one Action a day."""
        if self._daily is None or self._daily.done():
            self._daily = asyncio.ensure_future(
                workflow.sleep(_SLEEP_AT_MOST, summary="look for events once a day, woken or not")
            )
        daily = self._daily
        await workflow.wait_condition(lambda: self._woken(wakes) or daily.done())

    def _woken(self, wakes: int) -> bool:
        return self._wakes > wakes or bool(self._redeliver)

    @workflow.signal(name=WEBHOOK_WAKE_SIGNAL)
    def wake(self) -> None:
        """An event of the endpoint's enterprise committed (activities/wakeups.py)."""
        self._wakes += 1

    @workflow.signal
    def redeliver(self, seq: int) -> None:
        """POST .../deliveries/{id}/retry: that event once more, before the next ones."""
        self._redeliver.append(seq)

    async def _deliver(self, seqs: list[int], *, backlog: int | None = None) -> bool:
        """Delivers `seqs` in order, in batches; False once the endpoint is disabled for
        failing too long."""
        earlier_attempts = 0
        while seqs:
            if backlog is not None:
                self._describe(backlog=backlog)
            try:
                outcome = await workflow.execute_activity_method(
                    WebhookDelivery.deliver,
                    DeliverInput(
                        endpoint_id=self._input.endpoint_id,
                        seqs=seqs,
                        backlog=backlog,
                        earlier_attempts=earlier_attempts,
                    ),
                    **webhook_delivery(BATCH_SECONDS, self._input.attempt_seconds, self._input.retry_for_seconds),
                    summary=f"deliver events {seqs[0]}" + (f" to {seqs[-1]}" if len(seqs) > 1 else ""),
                    task_queue=webhook_task_queue(workflow.info().task_queue),
                )
            except ActivityError as err:
                if err.retry_state is not RetryState.TIMEOUT:
                    raise
                await self._give_up(seqs[0], err)
                return False
            self._note(outcome)
            seqs = seqs[outcome.done :]
            earlier_attempts = 1 if outcome.retry_next else 0
            if backlog is not None:
                backlog -= outcome.done
        return True

    def _note(self, outcome: DeliverOutput) -> None:
        """The last event's outcome, for the workflow's current details."""
        if outcome.seq is not None:
            self._last = f"event {outcome.seq}: {outcome.status}" + (
                f" ({outcome.http_status})" if outcome.http_status else ""
            )

    async def _give_up(self, seq: int | None, err: ActivityError) -> None:
        """Out of time: the last attempt's failure, or the timeout when none was left."""
        which = seq if seq is not None else "next"
        cause = err.cause
        if isinstance(cause, ActivityTimeout) and cause.cause is not None:
            cause = cause.cause
        await workflow.execute_activity_method(
            WebhookDelivery.give_up,
            GiveUpInput(endpoint_id=self._input.endpoint_id, seq=seq, error=str(cause or "timed out")),
            summary=f"give up on event {which}; disable the endpoint",
            **DATABASE_STEP,
        )
        self._last = f"disabled: event {which} failed for {self._input.retry_for_seconds} s ({cause})"
        workflow.set_current_details(self._last)

    def _describe(self, *, backlog: int) -> None:
        workflow.set_current_details(f"last: {self._last}; backlog: {backlog}")


async def start_delivery(client: Client, settings: Settings, endpoint_id: UUID, enterprise_id: str | None) -> None:
    """Starts the endpoint's delivery workflow, or finds it running (from the API and the
    worker's start-up, outside any workflow)."""
    await client.start_workflow(
        WebhookDeliveryWorkflow.run,
        WebhookInput(
            endpoint_id=endpoint_id,
            retry_for_seconds=settings.webhook_retry_for,
            attempt_seconds=settings.webhook_timeout + _ATTEMPT_MARGIN_SECONDS,
        ),
        id=webhook_workflow_id(endpoint_id),
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=search.webhook_attributes(enterprise_id, endpoint_id),
        static_summary=f"Webhook deliveries to endpoint {endpoint_id}",
    )
