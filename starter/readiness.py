"""Readiness: whether this process can serve, and why not.

The operators' listener answers in detail, checking every part at each call. The public
/readyz is asked by load balancers and by anyone on the internet: it answers from the
state of the last check, refreshed by one task at most once a second however many ask,
so that a flood of it costs the service what a flood of /healthz costs (no Temporal call,
no query per request), whatever the size of the tables or the namespace's rate limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from starter.wiring import Wiring

# The public answer is at most this old.
FRESH_FOR_SECONDS = 1.0


async def readiness(services: Wiring, *, mail: bool = True) -> tuple[bool, dict[str, str]]:
    """Whether this process can serve, and each part's state with its reason; `mail`:
    also whether the relay refuses us (an indexed query), which never makes it unready."""
    checks = {
        "database": await _check(services.stores.reads.ping()),
        "temporal": await _check(services.client.service_client.check_health()),
        "workers": await _check(_has_poller(services)),
    }
    ready = all(v == "ok" for v in checks.values())
    if mail:
        fault = await services.stores.reads.mail_fault() if checks["database"] == "ok" else None
        checks["mail"] = "ok" if fault is None else f"degraded: the SMTP relay refuses us: {fault}"
    return ready, checks


class PublicReadiness:
    """Ready or not, as last checked: one check in flight at a time, started when the
    state is older than FRESH_FOR_SECONDS; only the very first request waits for it."""

    def __init__(self, services: Wiring) -> None:
        self._services = services
        self._ready: bool | None = None
        self._checked_at = 0.0
        self._checking: asyncio.Task[None] | None = None

    async def ready(self) -> bool:
        if self._checking is None and time.monotonic() - self._checked_at >= FRESH_FOR_SECONDS:
            self._checking = asyncio.create_task(self._check())
        if self._ready is None and self._checking is not None:
            await asyncio.shield(self._checking)
        return bool(self._ready)

    async def _check(self) -> None:
        try:
            self._ready, _ = await readiness(self._services, mail=False)
        finally:
            self._checked_at = time.monotonic()
            self._checking = None


async def _check(call: Awaitable[Any]) -> str:
    try:
        async with asyncio.timeout(2):
            await call
        return "ok"
    except Exception as err:  # any failure is "not ready"; the reason is the answer
        return f"failing: {type(err).__name__}: {err}"[:200]


async def _has_poller(services: Wiring) -> None:
    described = await services.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=services.client.namespace,
            task_queue=TaskQueue(name=services.settings.temporal_task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    if not described.pollers:
        raise LookupError(f"no worker polls the task queue {services.settings.temporal_task_queue}")
