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


async def set_current_build(address: str, deployment: str, build_id: str, *, within: float = 30) -> None:
    """The operator's rollout step (docs/operations.md, "Upgrading"), with the real CLI:
    `build_id` current for `deployment`, once its workers have polled every task queue
    (before, the server does not know the build, or would leave a queue unversioned, and
    the command fails)."""
    async with asyncio.timeout(within):
        while True:
            code, _, err = await temporal(
                address,
                *("worker", "deployment", "set-current-version", "--yes"),
                *("--deployment-name", deployment, "--build-id", build_id),
            )
            if code == 0:
                return
            # Not yet: the server has not seen the build (or any build of the deployment) poll,
            # or not on every task queue the current build polls (the webhook queue's first
            # poll may come a moment later).
            transient = ("not found", "no worker deployment found", "no pollers", "missing active task queues")
            assert any(words in err.lower() for words in transient), err
            await asyncio.sleep(0.2)
