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
    ALREADY_INVITED = "already_invited"
    ALREADY_MEMBER = "already_member"
    PARTNER_NOT_ACTIVE = "partner_not_active"
    PARTNER_DEACTIVATED = "partner_deactivated"
    INVITATION_ACCEPTED = "invitation_accepted"
    INVITATION_EXPIRED = "invitation_expired"
    INVITATION_CANCELLED = "invitation_cancelled"
    INVITATION_SUPERSEDED = "invitation_superseded"
    INVITATION_UNDELIVERABLE = "invitation_undeliverable"
    ALREADY_ADMIN = "already_admin"
    ALREADY_GRANTED = "already_granted"
    API_ACCESS_GRANTED = "api_access_granted"
    LOGO_TOO_LARGE = "logo_too_large"
    UNSUPPORTED_LOGO = "unsupported_logo"
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
    ErrorCode.ALREADY_INVITED: 409,
    ErrorCode.ALREADY_MEMBER: 409,
    ErrorCode.PARTNER_NOT_ACTIVE: 409,
    ErrorCode.PARTNER_DEACTIVATED: 409,
    ErrorCode.INVITATION_ACCEPTED: 409,
    ErrorCode.INVITATION_EXPIRED: 409,
    ErrorCode.INVITATION_CANCELLED: 409,
    ErrorCode.INVITATION_SUPERSEDED: 409,
    ErrorCode.INVITATION_UNDELIVERABLE: 409,
    ErrorCode.ALREADY_ADMIN: 409,
    ErrorCode.ALREADY_GRANTED: 409,
    ErrorCode.API_ACCESS_GRANTED: 409,
    ErrorCode.LOGO_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_LOGO: 415,
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
    ErrorCode.ALREADY_INVITED: "A pending invitation exists for this address",
    ErrorCode.ALREADY_MEMBER: "Already a member of the partner",
    ErrorCode.PARTNER_NOT_ACTIVE: "The partner is not active yet",
    ErrorCode.PARTNER_DEACTIVATED: "The partner is deactivated",
    ErrorCode.INVITATION_ACCEPTED: "The invitation was accepted",
    ErrorCode.INVITATION_EXPIRED: "The invitation expired",
    ErrorCode.INVITATION_CANCELLED: "The invitation was cancelled",
    ErrorCode.INVITATION_SUPERSEDED: "The invitation was superseded",
    ErrorCode.INVITATION_UNDELIVERABLE: "The invitation could not be delivered",
    ErrorCode.ALREADY_ADMIN: "Already the partner's Admin",
    ErrorCode.ALREADY_GRANTED: "Already granted to the partner",
    ErrorCode.API_ACCESS_GRANTED: "API access is still granted",
    ErrorCode.LOGO_TOO_LARGE: "Logo too large",
    ErrorCode.UNSUPPORTED_LOGO: "Logo must be a PNG, JPEG or WebP image",
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


def closed_invitation(state: str) -> ErrorCode:
    """The code that names the state a closed invitation is in."""
    return ErrorCode(f"invitation_{state}")
