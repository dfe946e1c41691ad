"""Heartbeats only for activities that run long: each one sent is a billed Action."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating(every: float = 2.0) -> AsyncIterator[None]:
    """Tells Temporal this worker is alive while the block runs, from `every` seconds on:
    a block that ends sooner (a mail sent, one webhook event delivered: nearly all) sends
    no heartbeat, each a billed Action (the SDK sends the first one at once). `every` is
    well under the activity's heartbeat timeout, so a worker lost mid-block is noticed
    when that timeout is up."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
