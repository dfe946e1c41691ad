"""Timeouts and retry policies of the activities, one place for every workflow (the webhook
delivery's too, which follow its endpoint's settings)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

# Short transactions. Retried without limit: a database that is down comes back, and
# the steps are idempotent (unique keys, guarded updates).
DATABASE_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
    ),
}

# One SMTP conversation. A refused recipient (5xx) fails for good (non-retryable error);
# a server that is down or answers 4xx is tried again, ever more slowly.
MAIL_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=60),
    # The activity heartbeats while it talks to SMTP: a worker that dies mid-send is
    # noticed in seconds, not after the whole minute.
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=5),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=10),
    ),
}

# One kind of record pruned for a bounded while (R17): batches until none is full or the
# budget is spent, a heartbeat after each. Retried without limit: deleting what is past its
# retention again deletes nothing more.
PRUNE_STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=2),
    "heartbeat_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)),
}

# The webhook delivery's look for its next events: a read of a few rows.
WEBHOOK_LOOKUP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(seconds=30)),
}


def webhook_delivery(batch_seconds: float, attempt_seconds: float, retry_for_seconds: int) -> dict[str, Any]:
    """A batch of POSTs for up to `batch_seconds`, each at most `attempt_seconds` (the
    endpoint's WEBHOOK_TIMEOUT and a margin), retried with backoff for
    `retry_for_seconds` (WEBHOOK_RETRY_FOR). The activity heartbeats after each POST: a
    worker lost mid-POST is noticed when the attempt's time is up."""
    return {
        "start_to_close_timeout": timedelta(seconds=batch_seconds + attempt_seconds),
        "heartbeat_timeout": timedelta(seconds=attempt_seconds),
        "schedule_to_close_timeout": timedelta(seconds=retry_for_seconds),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=1),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=10),
        ),
    }


def history_is_long(limit: int) -> bool:
    """Whether the running workflow hands over to a new run (continue-as-new): the server
    suggests it, or its history reached `limit` events (replaying it stays cheap)."""
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit


Store = TypeVar("Store")
Input = TypeVar("Input")
Output = TypeVar("Output")


async def database_step(
    method: Callable[[Store, Input], Awaitable[Output]], arg: Input, *, summary: str | None = None
) -> Output:
    """One short transaction, run as a local activity: it executes in the worker that
    holds the workflow task and its result lands in that task's completion, which saves
    three server round trips (schedule, poll, complete) and a workflow task per step
    (bench/HISTORY.md#earlier-harness-2026-11-23-to-25). Only for steps of a few milliseconds: a long local
    activity holds the workflow task. A refusal arrives as the `ApplicationError` itself
    (no `ActivityError` around it): `Refused.found_in` reads it.

    `summary`: what the operator reads beside the step in the Temporal UI, where the
    activity's name does not say it. Each one is a payload the worker converts and
    encrypts at every schedule (about 0.7 ms: bench/HISTORY.md#its-cuts), so the
    onboarding's two steps (`register_partner`, `accept_invitation`) go without."""
    return await workflow.execute_local_activity_method(method, arg, summary=summary, **DATABASE_STEP)
