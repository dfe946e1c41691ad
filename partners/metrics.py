"""Business counters, exported with the SDK's own metrics on the worker's Prometheus port:
counted by the activity running now (a store's write that a workflow's step makes, a
delivery), on its meter."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity


def count(name: str, description: str, amount: int = 1, **labels: str) -> None:
    """Counts `amount` events of the activity running now (callers count real changes
    only, not the idempotent answers of a retry)."""
    activity.metric_meter().create_counter(name, description).add(amount, labels)


def delay(name: str, description: str, value: timedelta, **labels: str) -> None:
    """Records how long something took (a histogram), as the running activity saw it."""
    activity.metric_meter().create_histogram_timedelta(name, description).record(value, labels)


def gauge(name: str, description: str, value: float, **labels: str) -> None:
    """Sets a level (a backlog, a lag) as the running activity sees it now."""
    activity.metric_meter().create_gauge_float(name, description).set(value, labels)
