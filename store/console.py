"""ConsoleSessions (R19): the links the portal mints and the sessions they open.

A link is single-use: it is redeemed by one statement that marks it used, so two tabs
opening it race to one session. Only SHA-256 hashes of the link and session tokens are
stored; the session row also holds the CSRF token its forms carry and the registration
being typed (the draft), so nothing typed is lost between steps or on a refusal.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from partners.rules import token_hash

_COLUMNS = "actor_email, actor_role, enterprise_id, locale, return_to"


@dataclass(frozen=True)
class ConsoleSession:
    id_hash: bytes
    actor_email: str
    actor_role: str
    enterprise_id: str | None
    locale: str
    return_to: str | None
    csrf: str
    draft: dict[str, Any]
    draft_logo: bytes | None
    draft_logo_type: str | None


class ConsoleSessions:
    def __init__(self, pool: asyncpg.Pool, *, link_ttl: int, idle: int, absolute: int) -> None:
        self._pool = pool
        self._link_ttl, self._idle, self._absolute = link_ttl, idle, absolute

    async def mint(
        self, email: str, role: str, enterprise_id: str | None, locale: str, return_to: str | None
    ) -> tuple[str, datetime]:
        """A new link's token (shown once) and when it expires."""
        token = secrets.token_urlsafe(32)
        expires_at = await self._pool.fetchval(
            f"INSERT INTO console_links (token_hash, {_COLUMNS}, expires_at)"  # noqa: S608 (constant)
            " VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) RETURNING expires_at",
            token_hash(token),
            email,
            role,
            enterprise_id,
            locale,
            return_to,
            self._link_ttl,
        )
        return token, expires_at

    async def peek(self, token: str) -> tuple[str, str] | None:
        """Whom a live, unused link is for, and its locale, without using it up: what the
        page that asks the person to continue shows (a mail scanner's GET uses nothing)."""
        row = await self._pool.fetchrow(
            "SELECT actor_email, locale FROM console_links"
            " WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
            token_hash(token),
        )
        return None if row is None else (row["actor_email"], row["locale"])

    async def end_all(self, email: str) -> int:
        """Ends every live session of the person, and uses up their unused links (the
        portal signed them out, or a role of theirs ended): answers how many sessions."""
        ended: int = await self._pool.fetchval(
            "WITH links AS (UPDATE console_links SET used_at = now()"
            " WHERE lower(actor_email) = lower($1) AND used_at IS NULL AND expires_at > now() RETURNING 1),"
            " sessions AS (UPDATE console_sessions SET ended_at = now()"
            " WHERE lower(actor_email) = lower($1) AND ended_at IS NULL"
            " AND created_at > now() - make_interval(secs => $2) RETURNING 1)"
            " SELECT count(*) FROM sessions",  # a data-modifying WITH runs whether read or not
            email,
            self._absolute,
        )
        return ended

    async def redeem(self, token: str) -> str | None:
        """The new session's token for a live, unused link (which is used up), else None."""
        session = secrets.token_urlsafe(32)
        opened = await self._pool.fetchval(
            f"WITH link AS (UPDATE console_links SET used_at = now()"  # noqa: S608 (constant)
            f" WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING {_COLUMNS})"
            f" INSERT INTO console_sessions (id_hash, {_COLUMNS}, csrf)"
            f" SELECT $2, {_COLUMNS}, $3 FROM link RETURNING 1",
            token_hash(token),
            token_hash(session),
            secrets.token_urlsafe(32),
        )
        return session if opened else None

    async def find(self, session: str) -> ConsoleSession | None:
        """The live session, its idle clock restarted; None once it ended, idled out or
        reached its absolute limit."""
        row = await self._pool.fetchrow(
            f"UPDATE console_sessions SET last_seen_at = now()"  # noqa: S608 (constant)
            " WHERE id_hash = $1 AND ended_at IS NULL"
            " AND last_seen_at > now() - make_interval(secs => $2)"
            " AND created_at > now() - make_interval(secs => $3)"
            f" RETURNING id_hash, {_COLUMNS}, csrf, draft, draft_logo, draft_logo_type",
            token_hash(session),
            self._idle,
            self._absolute,
        )
        if row is None:
            return None
        values = dict(row)
        values["draft"] = json.loads(values["draft"]) if isinstance(values["draft"], str) else values["draft"]
        return ConsoleSession(**values)

    async def end(self, id_hash: bytes) -> None:
        await self._pool.execute("UPDATE console_sessions SET ended_at = now() WHERE id_hash = $1", id_hash)

    async def save_draft(
        self, id_hash: bytes, draft: dict[str, Any], logo: tuple[bytes, str] | None = None, *, clear_logo: bool = False
    ) -> None:
        """The registration typed so far; a logo given replaces the kept one."""
        if logo is not None or clear_logo:
            data, kind = logo if logo is not None else (None, None)
            await self._pool.execute(
                "UPDATE console_sessions SET draft = $2::jsonb, draft_logo = $3, draft_logo_type = $4"
                " WHERE id_hash = $1",
                id_hash,
                json.dumps(draft),
                data,
                kind,
            )
        else:
            await self._pool.execute(
                "UPDATE console_sessions SET draft = $2::jsonb WHERE id_hash = $1", id_hash, json.dumps(draft)
            )
