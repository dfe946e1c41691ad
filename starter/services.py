"""What the API's routes use, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client

from activities.store import PartnerStore
from partners.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    client: Client
    store: PartnerStore
    api_token: bytes
