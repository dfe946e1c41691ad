"""Command lines as an operator runs them: the real `temporal` CLI, our `partners` CLI."""

from __future__ import annotations

import asyncio
import os

from devstack.binaries import temporal_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """Runs a command from the project's root: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def temporal(address: str, *args: str, codec: str | None = None) -> tuple[int, str, str]:
    """The real `temporal` CLI against a server; with `codec`, through that codec endpoint
    (payloads, summaries and failures are encrypted: an operator reads them through /codec)."""
    through = ("--codec-endpoint", codec) if codec else ()
    return await run(temporal_cli(), *args, "--address", address, *through)
