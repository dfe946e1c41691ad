"""An invitation's state inside a workflow, as data (workflows/invitation_loop.py runs it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from partners.errors import Refused
    from partners.models import InvitationState

# What the workflow running an invitation indexes beside each new state of it.
IndexedWith = Callable[[InvitationState], list[SearchAttributeUpdate[Any]]]


def indexed_alone(state: InvitationState) -> list[SearchAttributeUpdate[Any]]:
    return []


class Sending(Enum):
    IDLE = "idle"
    DUE = "due"  # a send is to start at the loop's next turn
    IN_FLIGHT = "in_flight"
    HELD = "held"  # its partner is suspended: nothing is mailed and it does not expire (R23)


# The fields of InvitationData that belong to one run and start anew in the next
# (continue-as-new); every other field is carried in CarriedInvitation, field by field
# (`Invitation.carry()`). tests/test_invitation_machine.py fails when a field is in
# neither: a new field cannot be reset without a word when a run continues as new.
RUN_ONLY = frozenset({"state", "ready", "refusal", "sending", "requested_by", "revival_unanswered", "rescheduled"})


@dataclass
class InvitationData:
    """Everything an invitation's run knows, in one place."""

    state: InvitationState = InvitationState.PENDING
    ready: bool = False  # its row exists (or it was refused): the handlers may act
    refusal: Refused | None = None  # every update is answered with it
    sends: int = 0  # every send of this invitation, over all runs: the ledger's key
    round_sends: int = 0  # sends since the invitation was created, revived or resent by hand
    sending: Sending = Sending.DUE
    requested_by: str | None = None  # who asked for the next send by hand
    deadline: datetime | None = None  # when the last send's time-to-live ends
    last_send_at: datetime | None = None
    manual_sends: list[datetime] = field(default_factory=list)  # sends by hand, for the 24 h limit
    revival_unanswered: bool = False  # the resend that revived this run has not been answered yet
    next_send_at: datetime | None = None
    expires_at: datetime | None = None
    last_error: str | None = None
    rescheduled: bool = False  # the schedule was read anew (a resume): the wait starts again
