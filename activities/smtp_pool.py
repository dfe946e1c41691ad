"""A few SMTP connections kept open between mails.

aiosmtplib's `send()` opens a connection per mail: connect, greeting, EHLO, STARTTLS
and login where configured, then MAIL, RCPT, DATA and QUIT. A mail on a kept connection
is MAIL, RCPT and DATA alone. A connection goes back to the pool only after a mail it
carried was accepted; any error closes it, so a connection in doubt is never reused. It
is recycled after `recycle_after` mails and dropped once idle for `max_idle` seconds,
before a relay's own idle timeout would close it under us.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

import aiosmtplib

if TYPE_CHECKING:
    from partners.settings import Settings


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: str  # opportunistic | none | starttls | implicit
    ca_file: str | None
    timeout: float
    mail_from: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        assert settings.smtp_host is not None and settings.smtp_port is not None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            # Empty (as compose files set them) means unset: no login, the system's CAs.
            username=settings.smtp_username or None,
            password=(settings.smtp_password.get_secret_value() or None) if settings.smtp_password else None,
            tls=settings.smtp_tls,
            ca_file=settings.smtp_ca_file or None,
            timeout=settings.smtp_timeout,
            mail_from=settings.mail_from,
        )


@dataclass
class _Kept:
    smtp: aiosmtplib.SMTP
    sent: int = 0
    idle_since: float = 0.0


class SmtpPool:
    def __init__(self, settings: SmtpSettings, *, keep: int = 4, recycle_after: int = 50, max_idle: float = 10.0):
        self._settings = settings
        self._keep = keep
        self._recycle_after = recycle_after
        self._max_idle = max_idle
        self._idle: list[_Kept] = []

    async def send(self, message: Message, sender: str | None = None) -> None:
        """`sender`: the envelope sender (MAIL FROM), where it is not the From header's."""
        async with self._connection() as kept:
            await kept.smtp.send_message(message, sender=sender)
            kept.sent += 1

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Kept]:
        kept = self._take() or _Kept(await self._connect())
        try:
            yield kept
        except BaseException:
            kept.smtp.close()  # in doubt (a refusal mid-conversation, a timeout): never reused
            raise
        await self._give_back(kept)

    def _take(self) -> _Kept | None:
        now = time.monotonic()
        while self._idle:
            kept = self._idle.pop()
            if kept.smtp.is_connected and now - kept.idle_since < self._max_idle:
                return kept
            kept.smtp.close()
        return None

    async def _give_back(self, kept: _Kept) -> None:
        if kept.sent >= self._recycle_after or len(self._idle) >= self._keep:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await kept.smtp.quit()
            return
        kept.idle_since = time.monotonic()
        self._idle.append(kept)

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            use_tls=settings.tls == "implicit",
            # None: STARTTLS when the server offers it.
            start_tls={"starttls": True, "none": False, "implicit": False}.get(settings.tls),
            cert_bundle=settings.ca_file,
            timeout=settings.timeout,
        )
        await smtp.connect()
        return smtp

    async def close(self) -> None:
        """Says goodbye on every kept connection (the worker's shutdown)."""
        idle, self._idle = self._idle, []
        for kept in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await kept.smtp.quit()
