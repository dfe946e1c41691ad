"""The request line and headers are bounded before anything routes them (R18).

uvicorn's parser lets a request line of about 64 KiB through, and every byte of it reaches
the access log and the router. This pure ASGI middleware answers from lengths alone,
before any route, body or authentication is looked at: 414 for a request target over
`TARGET_MAX_BYTES`, 431 for headers over `HEADERS_MAX_BYTES` in all.
"""

from __future__ import annotations

from partners.errors import ErrorCode
from starter.bodies import App, Receive, Scope, Send, problem_answer

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
