"""The services as FastAPI dependencies: one per aggregate, built per request over the
process's `Wiring` (cheap: no connection is opened)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from starter.service.base import Service
from starter.service.console import Console
from starter.service.invitations import Invitations
from starter.service.members import Members
from starter.service.partners import Partners
from starter.service.webhooks import Webhooks

S = TypeVar("S", bound=Service)


def _provide(service: type[S]) -> Callable[[Request], Awaitable[S]]:
    # A coroutine: FastAPI runs a plain function in its thread pool, a thread hop per
    # request for nothing.
    async def build(request: Request) -> S:
        return service(request.app.state.services)

    return build


PartnersDep = Annotated[Partners, Depends(_provide(Partners))]
InvitationsDep = Annotated[Invitations, Depends(_provide(Invitations))]
MembersDep = Annotated[Members, Depends(_provide(Members))]
WebhooksDep = Annotated[Webhooks, Depends(_provide(Webhooks))]
ConsoleDep = Annotated[Console, Depends(_provide(Console))]
