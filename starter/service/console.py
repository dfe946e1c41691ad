"""The console's sessions (R19): the portal mints a single-use link for the person signed
in; opening it starts a session of that person, who then acts through the same services
and authorisation as the API."""

from __future__ import annotations

from urllib.parse import urlsplit

from partners.errors import ErrorCode, Refused
from partners.requests import ConsoleSessionRequest
from partners.texts import Locale
from partners.views import ConsoleLink, ConsoleSessionsEnded
from starter.actors import Actor, ActorRole
from starter.service.base import Service
from store.console import ConsoleSession

CONSOLE_START_PATH = "/console/start"


class Console(Service):
    async def mint(self, actor: Actor, body: ConsoleSessionRequest) -> ConsoleLink:
        """A link valid CONSOLE_LINK_TTL, once, for the actor the portal says is signed in."""
        if actor.role not in (ActorRole.ACCOUNT_HOLDER, ActorRole.PARTNER_USER):
            raise Refused(ErrorCode.FORBIDDEN, "The console opens for people signed in to the portal.")
        locale = body.locale or await self._locale_of(actor)
        if body.return_to is not None and not same_origin(body.return_to, self._settings.portal_url):
            # The console links back there from our origin: anywhere else is an open redirect.
            raise Refused(
                ErrorCode.INVALID_INPUT,
                "return_to must be an address of the portal (PORTAL_URL's origin)."
                if self._settings.portal_url
                else "return_to is accepted once PORTAL_URL names the portal; leave it out.",
                field="return_to",
            )
        return_to = body.return_to or self._settings.portal_url or None
        token, expires_at = await self._stores.console.mint(
            actor.email, actor.role.value, actor.enterprise, locale.value, return_to
        )
        return ConsoleLink(url=f"{self._settings.link_base}{CONSOLE_START_PATH}?token={token}", expires_at=expires_at)

    async def _locale_of(self, actor: Actor) -> Locale:
        stored = None
        if actor.enterprise is not None:
            stored = await self._reads.enterprise_locale(actor.enterprise)
        return Locale(stored) if stored else self._settings.default_locale

    async def open(self, token: str) -> str | None:
        """The session a link opens (its cookie's value), or None for a used, expired or
        unknown link, which all look the same."""
        if not token or len(token) > 100:
            return None
        return await self._stores.console.redeem(token)

    async def whom(self, token: str) -> tuple[str, Locale] | None:
        """Whom a live link is for and in which language, without using it up."""
        if not token or len(token) > 100:
            return None
        found = await self._stores.console.peek(token)
        return None if found is None else (found[0], Locale(found[1]))

    async def end_sessions(self, actor: Actor) -> ConsoleSessionsEnded:
        """The portal signed the person out, or a role of theirs ended: every console
        session of theirs ends now, and every unused link of theirs is void."""
        if actor.role not in (ActorRole.ACCOUNT_HOLDER, ActorRole.PARTNER_USER):
            raise Refused(ErrorCode.FORBIDDEN, "Console sessions are ended for people of the portal.")
        return ConsoleSessionsEnded(ended=await self._stores.console.end_all(actor.email))

    async def session(self, cookie: str | None) -> ConsoleSession | None:
        if not cookie or len(cookie) > 100:
            return None
        return await self._stores.console.find(cookie)

    async def close(self, session: ConsoleSession) -> None:
        await self._stores.console.end(session.id_hash)


def same_origin(address: str, base: str) -> bool:
    """Whether `address` is on `base`'s origin (scheme, host and port); never for no base."""
    if not base:
        return False
    given, ours = urlsplit(address), urlsplit(base)
    return (given.scheme, given.netloc.lower()) == (ours.scheme, ours.netloc.lower())


def actor_of(session: ConsoleSession) -> Actor:
    """Who acts in a console session: the person the portal minted its link for."""
    return Actor(email=session.actor_email, role=ActorRole(session.actor_role), enterprise=session.enterprise_id)
