"""RFC 9457 problem+json: every error the API answers, each with a stable `code`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from temporalio.service import RPCError

from partners.errors import ErrorCode, Refused, validation_errors

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is the stable part to program against. Some codes
    add fields (`domains`, `apis`, `limit`, `invitation_id`, `errors`)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: ErrorCode


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring these statuses as problem+json."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"description": HTTPStatus(status).phrase, "content": {MEDIA_TYPE: {"schema": schema}}}
        for status in statuses
    }


def problem_response(
    code: ErrorCode, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    status = code.http_status
    body = {
        "type": f"https://partners.invalid/problems/{code.value}",
        "title": code.problem_title,
        "status": status,
        "detail": detail,
        "code": code.value,
        **extra,
    }
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if code is ErrorCode.UNAUTHORIZED else {})}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


# An answer for people rather than programs: an HTML page for a refusal under a path prefix.
PageFor = Callable[[Request, Refused], Response]


def install(app: FastAPI, pages: Mapping[str, PageFor] | None = None) -> None:
    """Problem+json for every refusal; under a prefix of `pages` (the console), a page
    that says what to do instead."""
    original = app.openapi
    pages = dict(pages or {})

    def page_for(request: Request) -> PageFor | None:
        path = request.url.path
        return next((page for prefix, page in pages.items() if path == prefix or path.startswith(prefix + "/")), None)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            # Its definitions (ErrorCode) go beside it, where its $refs point.
            schemas.update(problem.pop("$defs", {}))
            schemas["Problem"] = problem
            # Security stated on every operation: the ones without the bearer token (the
            # invitation pages, the public logo, the probes) say they are public.
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.setdefault("security", [])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(Refused)
    async def _refused(request: Request, err: Refused) -> Response:
        if page := page_for(request):
            return page(request, err)
        return problem_response(err.code, err.detail, **err.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> Response:
        if page := page_for(request):  # a made-up path parameter: what a missing page gets
            return page(request, Refused(ErrorCode.NOT_FOUND, "No such page."))
        return problem_response(ErrorCode.INVALID_INPUT, "The request is not valid.", errors=validation_errors(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(
            err.status_code, ErrorCode.INVALID_INPUT
        )
        if page := page_for(request):
            return page(request, Refused(code, str(err.detail)))
        headers = err.headers
        if err.status_code == 405:
            # RFC 9110: Allow lists every method of the resource; Starlette names only
            # those of one of the routes sharing the path.
            methods = {
                method
                for route in app.routes
                if isinstance(route, Route) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            }
            headers = {"Allow": ", ".join(sorted(methods))}
        return problem_response(code, str(err.detail), headers=headers)

    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.CannotConnectNowError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(OSError)
    async def _database(request: Request, err: Exception) -> Response:
        log.warning("a server did not answer: %s", type(err).__name__)
        if page := page_for(request):
            return page(request, Refused(ErrorCode.UNAVAILABLE, "A server did not answer."))
        return problem_response(ErrorCode.UNAVAILABLE, "A server did not answer; try again.", retry_after=5)

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, err: RPCError) -> Response:
        log.warning("Temporal call failed: %s %s", err.status, err.message)
        if page := page_for(request):
            return page(request, Refused(ErrorCode.UNAVAILABLE, "A server did not answer."))
        return problem_response(ErrorCode.UNAVAILABLE, "The workflow service did not answer; try again.", retry_after=5)
