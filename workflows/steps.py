"""Timeouts and retry policies of the activities, one place for every workflow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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
