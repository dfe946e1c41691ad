"""Business refusals of activities, carried to the portal as update failures."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ApplicationErrorCategory

from partners.models import Refusal

# How a database step fails: a normal activity's failure arrives as an ActivityError
# whose cause is the activity's ApplicationError, a local activity's as that
# ApplicationError itself (histories hold both kinds).
STEP_FAILURES = (ActivityError, ApplicationError)


def refusal_of(err: ActivityError | ApplicationError, codes: frozenset[str]) -> Refusal | None:
    """The business refusal an activity answered with, or None for any other failure."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if not (isinstance(cause, ApplicationError) and cause.type in codes):
        return None
    extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    return Refusal(code=cause.type or "", detail=cause.message, extra=extra)


def refused(refusal: Refusal) -> ApplicationError:
    """A refusal as an update's answer: an answer to the user, not a fault to log."""
    return ApplicationError(
        refusal.detail,
        refusal.extra,
        type=refusal.code,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )
