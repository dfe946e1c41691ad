"""An SMTP server (aiosmtpd) that keeps every mail it receives, for the local run and tests.

It can also be told to refuse: a recipient with a permanent 5xx, or the next N messages
with a temporary 4xx, so that delivery failures are tested against a real SMTP dialogue.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from devstack.net import free_port

_LINK = re.compile(r"https?://\S+/invitations/[A-Za-z0-9_-]+")
# The link's token, on this service's page or in a portal's ACCEPT_URL (?token=...).
_TOKEN = re.compile(r"https?://\S*?(?:/invitations/|[?&]token=)([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class ReceivedMail:
    recipients: list[str]
    data: bytes
    received_at: datetime
    tls: bool = False  # the conversation was encrypted (STARTTLS or implicit TLS)
    sender: str = ""  # the envelope sender (MAIL FROM): where a bounce would go

    @functools.cached_property
    def message(self) -> EmailMessage:
        # Parsed when first read: the benchmark receives thousands nobody reads whole.
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def _part(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())

    @property
    def text(self) -> str:
        return self._part("plain")

    @property
    def html(self) -> str:
        return self._part("html")

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def link(self) -> str:
        found = _LINK.search(self.text)
        if found is None:
            raise AssertionError(f"no invitation link in the mail to {self.recipients}")
        return found.group(0)

    @property
    def token(self) -> str:
        found = _TOKEN.search(self.text)
        if found is None:
            raise AssertionError(f"no invitation token in the mail to {self.recipients}")
        return found.group(1)


@dataclass
class _Faults:
    refused_recipients: dict[str, str] = field(default_factory=dict)
    temporary_failures: int = 0
    refused_senders: int = 0
    delay: float = 0.0


class MailCatcher:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        store_dir: Path | None = None,
        on_mail: Callable[[ReceivedMail], None] | None = None,
        tls: ssl.SSLContext | None = None,
        tls_mode: str = "starttls",
    ) -> None:
        """`tls`: serve TLS with this context, offered as STARTTLS (and required before
        MAIL) or, with `tls_mode="implicit"`, from the first byte."""
        self._tls = tls
        self._tls_mode = tls_mode
        self._host = host
        self._port = port or free_port()
        self._store_dir = store_dir
        self._on_mail = on_mail
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self._by_recipient: dict[str, list[ReceivedMail]] = {}
        self._faults = _Faults()
        self._conversations = 0
        self._connections = 0
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self._store_dir is not None:
            self._store_dir.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {}
        if self._tls is not None and self._tls_mode == "implicit":
            options["ssl_context"] = self._tls
        elif self._tls is not None:
            options.update(tls_context=self._tls, require_starttls=True)
        self._controller = Controller(_Handler(self), hostname=self._host, port=self._port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- faults, for tests ------------------------------------------------------------

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 mailbox unavailable") -> None:
        with self._lock:
            self._faults.refused_recipients[address.lower()] = reply

    def accept_recipient(self, address: str) -> None:
        """The mailbox is back."""
        with self._lock:
            self._faults.refused_recipients.pop(address.lower(), None)

    def delay_next(self, seconds: float) -> None:
        """The next message is kept at once but answered only after `seconds`: a server
        that took the mail and whose "250" is late (or, if the client dies, never heard)."""
        with self._lock:
            self._faults.delay = seconds

    @property
    def conversations(self) -> int:
        """DATA commands begun, delivered or not."""
        with self._lock:
            return self._conversations

    @property
    def connections(self) -> int:
        """SMTP connections that began at least one mail (MAIL FROM)."""
        with self._lock:
            return self._connections

    def fail_next(self, count: int) -> None:
        """The next `count` messages are answered 421 (try again later)."""
        with self._lock:
            self._faults.temporary_failures = count

    def refuse_next_senders(self, count: int) -> None:
        """The next `count` MAIL FROM commands are answered 553: a relay that does not
        let us send from our address (our configuration, not the recipient's mailbox)."""
        with self._lock:
            self._faults.refused_senders = count

    # --- what was received ------------------------------------------------------------

    @property
    def received(self) -> int:
        with self._lock:
            return len(self._mails)

    def mails_to(self, address: str) -> list[ReceivedMail]:
        with self._lock:
            return list(self._by_recipient.get(address.lower(), ()))

    async def wait_for(self, address: str, count: int = 1, timeout: float = 20) -> list[ReceivedMail]:
        """Waits until `count` mails to `address` arrived; fails after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            # The SMTP server runs in its own thread: polling is the simple bridge.
            while len(found := self.mails_to(address)) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return found

    def _receive(self, recipients: list[str], data: bytes, tls: bool = False, sender: str = "") -> None:
        mail = ReceivedMail([r.lower() for r in recipients], data, datetime.now(UTC), tls, sender)
        with self._lock:
            self._mails.append(mail)
            for recipient in mail.recipients:
                self._by_recipient.setdefault(recipient, []).append(mail)
            number = len(self._mails)
        if self._store_dir is not None:
            stamp = mail.received_at.strftime("%Y%m%dT%H%M%S")
            (self._store_dir / f"{stamp}-{number:05d}.eml").write_bytes(data)
        if self._on_mail is not None:
            self._on_mail(mail)


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        with self._catcher._lock:
            if not getattr(session, "counted", False):  # a connection's first mail
                session.counted = True
                self._catcher._connections += 1
            if self._catcher._faults.refused_senders > 0:
                self._catcher._faults.refused_senders -= 1
                return "553 5.7.1 sender address not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        with self._catcher._lock:
            refusal = self._catcher._faults.refused_recipients.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._catcher._lock:
            self._catcher._conversations += 1
            delay, self._catcher._faults.delay = self._catcher._faults.delay, 0.0
            if self._catcher._faults.temporary_failures > 0:
                self._catcher._faults.temporary_failures -= 1
                return "421 4.3.2 service not available, try again later"
        self._catcher._receive(
            list(envelope.rcpt_tos),
            envelope.original_content or envelope.content,
            # STARTTLS sets session.ssl; implicit TLS shows only on the transport.
            session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            envelope.mail_from or "",
        )
        if delay:
            await asyncio.sleep(delay)
        return "250 OK: queued"
