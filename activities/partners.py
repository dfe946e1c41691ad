"""PartnerActivities: the partner aggregate's steps as the workflows run them, thin over
`store/partners.py` (registration and deactivation, each one transaction)."""

from __future__ import annotations

from temporalio import activity

from partners.activity_io import DeactivatePartnerInput, DeactivatePartnerOutput, RegisterPartnerInput
from partners.models import Registration
from store.partners import PartnerStore


class PartnerActivities:
    def __init__(self, store: PartnerStore) -> None:
        self._store = store

    @activity.defn
    async def register_partner(self, input: RegisterPartnerInput) -> Registration:
        return await self._store.register_partner(input)

    @activity.defn
    async def deactivate_partner(self, input: DeactivatePartnerInput) -> DeactivatePartnerOutput:
        return await self._store.deactivate_partner(input)
