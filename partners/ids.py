"""Workflow ids carry the business id, so an operator can type them."""

from __future__ import annotations

from uuid import UUID

# An enterprise account's id in the portal, as every route takes it.
ENTERPRISE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"


def onboarding_workflow_id(partner_id: UUID | str) -> str:
    return f"partner-onboarding-{partner_id}"


def invitation_workflow_id(invitation_id: UUID | str) -> str:
    return f"invitation-{invitation_id}"


def replacement_workflow_id(partner_id: UUID | str) -> str:
    return f"partner-admin-replacement-{partner_id}"


def deactivation_workflow_id(partner_id: UUID | str) -> str:
    return f"partner-deactivation-{partner_id}"


# The signal that wakes a sleeping endpoint's delivery (activities/wakeups.py): by name, so
# the worker's listener needs no import of the workflow.
WEBHOOK_WAKE_SIGNAL = "wake"


def webhook_workflow_id(endpoint_id: UUID | str) -> str:
    return f"webhook-{endpoint_id}"
