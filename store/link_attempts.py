"""LinkAttempts: bad invitation links per client, counted in PostgreSQL.

A 256-bit token cannot be guessed; this keeps scanners from hammering the database and
makes a leaked-link search loud. Counted in the database, so every API process shares
one count (N replicas do not allow N times the attempts), and bounded: a client's row
lives one window, and old rows are deleted as new misses come.
"""

from __future__ import annotations

import ipaddress
import math

import asyncpg


def client_key(address: str) -> str:
    """Who a limit applies to: an IPv4 address, or an IPv6 /64 (one subscriber's
    network: a client rotating addresses inside it is still one client)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


class LinkAttempts:
    def __init__(self, pool: asyncpg.Pool, *, limit: int, window_seconds: int) -> None:
        self._pool = pool
        self._limit = limit
        self._window = window_seconds

    async def retry_after(self, address: str) -> int | None:
        """Seconds until the client may try again, or None if it may now."""
        wait = await self._pool.fetchval(
            "SELECT extract(epoch FROM window_start + make_interval(secs => $3) - now()) FROM link_attempts"
            " WHERE client = $1 AND misses >= $2 AND window_start > now() - make_interval(secs => $3)",
            client_key(address),
            self._limit,
            self._window,
        )
        return None if wait is None else max(1, math.ceil(wait))

    async def miss(self, address: str) -> None:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute(
                "INSERT INTO link_attempts (client, window_start, misses) VALUES ($1, now(), 1)"
                " ON CONFLICT (client) DO UPDATE SET"
                " misses = CASE WHEN link_attempts.window_start > now() - make_interval(secs => $2)"
                " THEN link_attempts.misses + 1 ELSE 1 END,"
                " window_start = CASE WHEN link_attempts.window_start > now() - make_interval(secs => $2)"
                " THEN link_attempts.window_start ELSE now() END",
                client_key(address),
                self._window,
            )
            # Bounded: rows of past windows go, a few at a time.
            await db.execute(
                "DELETE FROM link_attempts WHERE client IN (SELECT client FROM link_attempts"
                " WHERE window_start < now() - make_interval(secs => $1) LIMIT 100)",
                self._window,
            )
