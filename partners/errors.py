"""Stable error codes: the contract the portal backend programs against."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_INPUT = "invalid_input"
    PARTNER_LIMIT_REACHED = "partner_limit_reached"
    DOMAIN_TAKEN = "domain_taken"
    DOMAIN_NOT_REGISTERED = "domain_not_registered"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.PARTNER_LIMIT_REACHED: 409,
    ErrorCode.DOMAIN_TAKEN: 409,
    ErrorCode.DOMAIN_NOT_REGISTERED: 422,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNAVAILABLE: 503,
}

TITLES: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHORIZED: "Missing or wrong API token",
    ErrorCode.FORBIDDEN: "Not allowed for this actor",
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.METHOD_NOT_ALLOWED: "Method not allowed",
    ErrorCode.INVALID_INPUT: "Invalid input",
    ErrorCode.PARTNER_LIMIT_REACHED: "Partner limit reached",
    ErrorCode.DOMAIN_TAKEN: "Domain already registered for another partner",
    ErrorCode.DOMAIN_NOT_REGISTERED: "E-mail domain not registered for the partner",
    ErrorCode.CONFLICT: "Conflict",
    ErrorCode.UNAVAILABLE: "Service temporarily unavailable",
}


class DomainError(Exception):
    """A refusal by a business rule, raised where the rule is checked.

    Activities turn it into a non-retryable ApplicationError whose type is the code;
    the API turns it (or that ApplicationError) into problem+json.
    """

    def __init__(self, code: ErrorCode, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra
