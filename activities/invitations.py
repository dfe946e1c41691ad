"""InvitationActivities: the invitation aggregate's steps as the workflows run them.

Thin: each reads its input, calls the store (`store/invitations.py`, where every check
and transaction is), and returns its output, as the money-transfer template's
`BankingActivities` calls its banking service."""

from __future__ import annotations

from temporalio import activity

from partners.activity_io import (
    AcceptInvitationInput,
    AcceptInvitationOutput,
    CloseInvitationInput,
    CloseInvitationOutput,
    CreateInvitationInput,
    CreateInvitationOutput,
    InvitationRef,
    ReopenInvitationInput,
    ReopenInvitationOutput,
    StoredSchedule,
)
from store.invitations import InvitationStore


class InvitationActivities:
    def __init__(self, store: InvitationStore) -> None:
        self._store = store

    @activity.defn
    async def create_invitation(self, input: CreateInvitationInput) -> CreateInvitationOutput:
        return await self._store.create_invitation(input)

    @activity.defn
    async def reopen_invitation(self, input: ReopenInvitationInput) -> ReopenInvitationOutput:
        return await self._store.reopen_invitation(input)

    @activity.defn
    async def accept_invitation(self, input: AcceptInvitationInput) -> AcceptInvitationOutput:
        return await self._store.accept_invitation(input)

    @activity.defn
    async def stored_state(self, input: InvitationRef) -> CloseInvitationOutput:
        return await self._store.stored_state(input)

    @activity.defn
    async def stored_schedule(self, input: InvitationRef) -> StoredSchedule:
        return await self._store.stored_schedule(input)

    @activity.defn
    async def close_invitation(self, input: CloseInvitationInput) -> CloseInvitationOutput:
        return await self._store.close_invitation(input)
