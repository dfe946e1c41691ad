"""Request bodies are bounded before they are read, and the bearer token is checked
before any body is read: an unauthenticated 300 MB POST costs neither memory nor time.

A pure ASGI middleware: it answers 401 from the headers alone, 413 from a declared
Content-Length, and counts the bytes of any body as they arrive (chunked ones
included), answering 413 the moment the bound is passed; the route then sees a
disconnected client and whatever it answers is dropped.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from partners.errors import ErrorCode
from partners.rules import LOGO_MAX_BYTES
from starter.problems import problem_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_BODY_LIMIT = 64 * 1024
# The console's partner form carries the logo: a logo too large by up to this much is
# refused beside its field (starter/console/register.py); beyond it, here.
CONSOLE_LOGO_FORM_LIMIT = 2 * 1024 * 1024
_LOGO = re.compile(r"^/v1/partners/[^/]+/logo$")


def _limit(method: str, path: str) -> tuple[int, ErrorCode]:
    if method == "PUT" and _LOGO.match(path):
        return LOGO_MAX_BYTES, ErrorCode.LOGO_TOO_LARGE
    if path == "/console/register/info":
        return CONSOLE_LOGO_FORM_LIMIT, ErrorCode.LOGO_TOO_LARGE
    return JSON_BODY_LIMIT, ErrorCode.PAYLOAD_TOO_LARGE


async def problem_answer(scope: Scope, receive: Receive, send: Send, code: ErrorCode, detail: str) -> None:
    # Connection: close, or the server would read (and drop) the rest of the body to keep
    # the connection alive: the very cost this avoids.
    await problem_response(code, detail, headers={"Connection": "close"})(scope, receive, send)


class BoundedBodies:
    def __init__(self, app: App) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path: str = scope["path"]
        if path.startswith("/v1/") and not self._authorized(scope, headers.get(b"authorization", b"")):
            await problem_answer(scope, receive, send, ErrorCode.UNAUTHORIZED, "A valid bearer token is required.")
            return
        limit, code = _limit(scope["method"], path)
        detail = f"The request body may be {limit // 1024} KiB at most."
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await problem_answer(scope, receive, send, code, detail)
            return
        answered = False
        received = 0

        async def bounded_receive() -> Message:
            nonlocal answered, received
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    answered = True
                    await problem_answer(scope, receive, send, code, detail)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:  # after a 413, what the route answers is dropped
                await send(message)

        await self._app(scope, bounded_receive, guarded_send)

    @staticmethod
    def _authorized(scope: Scope, authorization: bytes) -> bool:
        state = getattr(scope.get("app"), "state", None)
        services = getattr(state, "services", None)
        expected: bytes = getattr(services, "api_token", b"")
        scheme, _, token = authorization.partition(b" ")
        return bool(expected) and scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected)
