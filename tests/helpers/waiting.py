"""One way to wait in a test: `eventually`, as sdk-python's tests have it.

A test that waits for something another process does (a mail, a row, a workflow's
state) asks again until the answer is the one it waits for, within a bound; when the
bound passes it fails saying what it waited for and the last answer it got, not with a
bare TimeoutError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = 20,
    interval: float = 0.05,
    what: str | None = None,
) -> T:
    """`check()` again every `interval` seconds until `until(answer)` holds: that answer.
    After `timeout` seconds, AssertionError with the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await check()
        if until(answer):
            return answer
        if loop.time() >= deadline:
            name = what or getattr(check, "__qualname__", repr(check))
            raise AssertionError(f"{name}: still {answer!r} after {timeout:g} s")
        await asyncio.sleep(interval)


def now(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """A plain read (an attribute another thread keeps, say) as a check for `eventually`."""

    async def check() -> T:
        return read()

    return check
