"""Audited actions are typed: each one the portal hears names its event type (R15)."""

from __future__ import annotations

import pytest

from partners.events import EVENT_TYPES, AuditAction, event_of
from partners.models import InvitationState


@pytest.mark.parametrize("state", [s for s in InvitationState if s is not InvitationState.PENDING])
def test_every_closing_state_has_its_audited_action_and_event(state: InvitationState) -> None:
    action = AuditAction.closing(state.value)
    found = event_of(action, {"invitation_id": "i-1", "secret": "never carried"})
    assert found == (f"invitation.{state.value}", {"invitation_id": "i-1", "state": state.value})


def test_an_action_not_pushed_has_no_event_and_a_typo_is_no_action() -> None:
    assert event_of(AuditAction.WEBHOOK_CREATED, {"url": "https://x"}) is None
    with pytest.raises(ValueError, match="invitation_expird"):
        AuditAction("invitation_expird")
    assert {"member.added", "member.removed", "grant.revoked"} <= EVENT_TYPES
