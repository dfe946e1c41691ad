"""RFC 9457 problem+json: every error the API answers, each with a stable `code`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from partners.errors import HTTP_STATUS, TITLES, DomainError, ErrorCode

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"


class ProblemError(DomainError):
    """Raised by a route to answer with a problem; same shape as a business refusal."""


def problem_response(code: ErrorCode, detail: str, **extra: Any) -> JSONResponse:
    status = HTTP_STATUS[code]
    body = {
        "type": f"https://partners.invalid/problems/{code.value}",
        "title": TITLES[code],
        "status": status,
        "detail": detail,
        "code": code.value,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if code is ErrorCode.UNAUTHORIZED else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _validation_errors(err: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and what: the rejected value itself is not echoed back.
    return [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in err.errors()]


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, err: DomainError) -> JSONResponse:
        return problem_response(err.code, err.detail, **err.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        return problem_response(ErrorCode.INVALID_INPUT, "The request is not valid.", errors=_validation_errors(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(
            err.status_code, ErrorCode.INVALID_INPUT
        )
        return problem_response(code, str(err.detail))

    @app.exception_handler(RPCError)
    async def _temporal(_: Request, err: RPCError) -> JSONResponse:
        log.warning("Temporal call failed: %s %s", err.status, err.message)
        return problem_response(ErrorCode.UNAVAILABLE, "The workflow service did not answer; try again.")
