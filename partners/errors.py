"""Stable error codes and the one refusal type that carries them, end to end.

A business rule refuses by raising `Refused(ErrorCode.X, detail, **extra)`, wherever it
is checked: in an activity, a workflow, the API or the CLI. `Refused` is an
`ApplicationError`, so Temporal carries it as a failure of that type (non-retryable,
benign) without any conversion, and `Refused.found_in` turns any failure chain back into
it. Every `ErrorCode` knows its HTTP status and title, so a new code is a refusal by
construction: there is no list of the codes a workflow may refuse with.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError, ApplicationError, ApplicationErrorCategory, ChildWorkflowError


class ErrorCode(StrEnum):
    """The contract the portal backend programs against: value, HTTP status, title."""

    http_status: int
    problem_title: str

    def __new__(cls, value: str, http_status: int, problem_title: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.http_status = http_status
        member.problem_title = problem_title
        return member

    UNAUTHORIZED = ("unauthorized", 401, "Missing or wrong API token")
    FORBIDDEN = ("forbidden", 403, "Not allowed for this actor")
    NOT_FOUND = ("not_found", 404, "Not found")
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405, "Method not allowed")
    INVALID_INPUT = ("invalid_input", 422, "Invalid input")
    PARTNER_LIMIT_REACHED = ("partner_limit_reached", 409, "Partner limit reached")
    DOMAIN_TAKEN = ("domain_taken", 409, "Domain already registered for another partner")
    DOMAIN_NOT_REGISTERED = ("domain_not_registered", 422, "E-mail domain not registered for the partner")
    DOMAIN_NOT_ALLOWED = ("domain_not_allowed", 422, "A public mail provider's domain is never a partner's domain")
    ALREADY_INVITED = ("already_invited", 409, "A pending invitation exists for this address")
    ALREADY_MEMBER = ("already_member", 409, "Already a member of the partner")
    PARTNER_NOT_ACTIVE = ("partner_not_active", 409, "The partner is not active yet")
    PARTNER_DEACTIVATED = ("partner_deactivated", 409, "The partner is deactivated")
    PARTNER_SUSPENDED = ("partner_suspended", 409, "The partner's access is suspended")
    PARTNER_NOT_SUSPENDED = ("partner_not_suspended", 409, "The partner is not suspended")
    ADDRESS_SUPPRESSED = ("address_suppressed", 409, "The mailbox reported our mail as unwanted")
    INVITATION_ACCEPTED = ("invitation_accepted", 409, "The invitation was accepted")
    INVITATION_EXPIRED = ("invitation_expired", 409, "The invitation expired")
    INVITATION_CANCELLED = ("invitation_cancelled", 409, "The invitation was cancelled")
    INVITATION_SUPERSEDED = ("invitation_superseded", 409, "The invitation was superseded")
    INVITATION_UNDELIVERABLE = ("invitation_undeliverable", 409, "The invitation could not be delivered")
    ALREADY_ADMIN = ("already_admin", 409, "Already the partner's Admin")
    NOT_A_MEMBER = ("not_a_member", 404, "Not an active member of the partner")
    CANNOT_REMOVE_ADMIN = ("cannot_remove_admin", 409, "The Admin is replaced, never removed")
    SUCCESSOR_PENDING = ("successor_pending", 409, "The person is named as the partner's next Admin")
    TOO_MANY_REGISTRATIONS = ("too_many_registrations", 429, "Too many partners registered today; see Retry-After")
    INVITEE_MISMATCH = ("invitee_mismatch", 403, "The invitation is for someone else")
    UNSAFE_WEBHOOK_URL = ("unsafe_webhook_url", 422, "Webhooks may not be delivered there")
    WEBHOOK_DISABLED = ("webhook_disabled", 409, "The webhook endpoint is disabled")
    WEBHOOK_LIMIT_REACHED = ("webhook_limit_reached", 409, "The enterprise has its limit of webhook endpoints")
    WEBHOOK_URL_TAKEN = ("webhook_url_taken", 409, "An endpoint already receives events at this URL")
    UNDECODABLE_PAYLOAD = ("undecodable_payload", 422, "The payload cannot be decrypted here")
    PERSON_IS_ADMIN = ("person_is_admin", 409, "The person is the active Admin of a partner")
    ALREADY_GRANTED = ("already_granted", 409, "Already granted to the partner")
    API_ACCESS_GRANTED = ("api_access_granted", 409, "API access is still granted")
    LOGO_TOO_LARGE = ("logo_too_large", 413, "Logo too large")
    UNSUPPORTED_LOGO = ("unsupported_logo", 415, "Logo must be a PNG, JPEG or WebP image")
    LOGO_DIMENSIONS = ("logo_dimensions", 422, "Logo over 2048 x 2048 pixels")
    PAYLOAD_TOO_LARGE = ("payload_too_large", 413, "Request body too large")
    URI_TOO_LONG = ("uri_too_long", 414, "Request target too long")
    HEADERS_TOO_LARGE = ("headers_too_large", 431, "Request headers too large")
    UNKNOWN_HOST = ("unknown_host", 421, "This listener does not answer for that host")
    TOO_MANY_INVITATIONS = ("too_many_invitations", 429, "Too many invitations to this address; see Retry-After")
    RESEND_TOO_SOON = ("resend_too_soon", 429, "Resent too recently or too often; see Retry-After")
    INVALID_LINK = ("invalid_link", 404, "Not a valid invitation link")
    IDEMPOTENCY_KEY_REUSED = ("idempotency_key_reused", 422, "Idempotency-Key used with another request")
    CONFLICT = ("conflict", 409, "Conflict")
    CURSOR_EXPIRED = ("cursor_expired", 410, "The cursor points to events no longer kept")
    UNAVAILABLE = ("unavailable", 503, "Service temporarily unavailable")

    @staticmethod
    def closed_invitation(state: str) -> ErrorCode:
        """The code that names the state a closed invitation is in."""
        return _CODES[f"invitation_{state}"]


_CODES = {code.value: code for code in ErrorCode}


class Refused(ApplicationError):
    """A refusal by a business rule: an answer to the user, not a fault.

    Non-retryable (retrying would only refuse again) and benign (no error log, no failure
    metric in the SDK). `extra` travels as the failure's details and ends up as extra
    fields of the problem+json answer (`domains`, `apis`, `limit`, ...).
    """

    def __init__(self, code: ErrorCode, detail: str, **extra: Any) -> None:
        super().__init__(detail, extra, type=code.value, non_retryable=True, category=ApplicationErrorCategory.BENIGN)
        self.code = code
        self.detail = detail
        self.extra = extra

    @classmethod
    def found_in(cls, err: BaseException | None) -> Refused | None:
        """The refusal somewhere in a Temporal failure chain (an activity's, a local
        activity's, a child workflow's or an update's), or None for any other failure."""
        while err is not None:
            if isinstance(err, Refused):
                return err
            if isinstance(err, ApplicationError) and err.type in _CODES:
                details = err.details[0] if err.details and isinstance(err.details[0], dict) else {}
                return cls(_CODES[err.type], err.message, **details)
            if not isinstance(err, ActivityError | ChildWorkflowError | WorkflowUpdateFailedError):
                return None
            err = err.cause
        return None


class _Invalid(Protocol):
    """A validation failure: pydantic's `ValidationError`, FastAPI's `RequestValidationError`."""

    def errors(self) -> Sequence[Any]: ...


def validation_errors(err: _Invalid) -> list[dict[str, Any]]:
    """Where and what, for each error: the rejected value itself is never echoed back."""
    return [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in err.errors()]


def validation_detail(err: _Invalid) -> str:
    """A body part's validation errors in one line, from the same where and what."""
    return "; ".join(f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in validation_errors(err))
