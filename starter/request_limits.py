"""Every request is bounded before anything routes it (R18): its line and headers from
their lengths alone, its body as it arrives; and the bearer token is checked
before any body is read: an unauthenticated 300 MB POST costs neither memory nor time.

A pure ASGI middleware: it answers 401 from the headers alone, 413 from a declared
Content-Length, and counts the bytes of any body as they arrive (chunked ones
included), answering 413 the moment the bound is passed; the route then sees a
disconnected client and whatever it answers is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from partners.errors import ErrorCode
from partners.rules import LOGO_MAX_BYTES
from starter.auth import bearer_matches
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
        return scheme.lower() == b"bearer" and bearer_matches(token, expected)


# --- the request line and headers (R18) ----------------------------------------------
# uvicorn's parser lets a request line of about 64 KiB through, and every byte of it reaches
# the access log and the router. This pure ASGI middleware answers from lengths alone,
# before any route, body or authentication is looked at: 414 for a request target over
# `TARGET_MAX_BYTES`, 431 for headers over `HEADERS_MAX_BYTES` in all.

TARGET_MAX_BYTES = 8 * 1024
HEADERS_MAX_BYTES = 16 * 1024


class BoundedRequests:
    def __init__(self, app: App) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b"")) + 1
            if target > TARGET_MAX_BYTES:
                detail = f"The request line's target may be {TARGET_MAX_BYTES // 1024} KiB at most."
                await problem_answer(scope, receive, send, ErrorCode.URI_TOO_LONG, detail)
                return
            # Each header as it stands on the wire: name, ": ", value, CRLF.
            headers = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if headers > HEADERS_MAX_BYTES:
                detail = f"The request's headers may be {HEADERS_MAX_BYTES // 1024} KiB at most in all."
                await problem_answer(scope, receive, send, ErrorCode.HEADERS_TOO_LARGE, detail)
                return
        await self._app(scope, receive, send)


class KnownHosts:
    """The operators' listener answers only requests that name it as one of `hosts` (421
    otherwise): DNS rebinding points a name of an attacker's at 127.0.0.1, and the
    browser then sends that name, so a page an operator opens cannot reach /codec."""

    def __init__(self, app: App, hosts: frozenset[str]) -> None:
        self._app = app
        self._hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((value for name, value in scope["headers"] if name == b"host"), b"").decode("latin-1")
            name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":", 1)[0]
            if name.lower() not in self._hosts:
                detail = "The operators' listener answers only its own names; see OPERATOR_ALLOWED_HOSTS."
                await problem_answer(scope, receive, send, ErrorCode.UNKNOWN_HOST, detail)
                return
        await self._app(scope, receive, send)
