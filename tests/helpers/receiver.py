"""A webhook receiver on loopback, as a portal would run one: it verifies every request
with the `standardwebhooks` package (the specification's own verifier) and answers as
the test scripts it: 200, a status, or too late; it can go down and come back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks import Webhook

from devstack.net import free_port


@dataclass
class Receipt:
    id: str
    headers: dict[str, str]
    body: bytes
    answered: int | str  # the status answered, or "late" when it made the sender time out
    verified_by: list[str]  # the secrets whose signature verified

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    # What to answer next, one entry per request: a status, or a delay in seconds (float).
    script: list[int | float] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def delivered(self) -> list[Receipt]:
        """The receipts answered 2xx, in the order they arrived."""
        return [r for r in self.receipts if isinstance(r.answered, int) and 200 <= r.answered < 300]

    async def wait_for(self, count: int, timeout: float = 30) -> list[Receipt]:
        async with asyncio.timeout(timeout):
            while len(self.delivered()) < count:
                await asyncio.sleep(0.05)
        return self.delivered()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        verified = []
        for secret in self.secrets:
            with contextlib.suppress(Exception):
                Webhook(secret).verify(body, headers)
                verified.append(secret)
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, float):
            self.receipts.append(Receipt(headers.get("webhook-id", ""), headers, body, "late", verified))
            await asyncio.sleep(step)
            step = 200
        else:
            self.receipts.append(Receipt(headers.get("webhook-id", ""), headers, body, step, verified))
        await send({"type": "http.response.start", "status": step, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def start(self) -> None:
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        self._server = _QuietServer(config)
        self._serving = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._server = self._serving = None


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def receiving(**kwargs: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**kwargs)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
