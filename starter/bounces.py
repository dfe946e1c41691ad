"""The bounce listener (R24): delivery reports and complaints, received over SMTP on
BOUNCE_SMTP_PORT (the MX of the bounce domain, or where the relay forwards them), in the
API's process beside its two HTTP listeners.

It takes mail only for our return paths (`bounces+<tag>@<bounce domain>`, 550 for any
other recipient), at most BOUNCE_MAX_BYTES a message and BOUNCE_REPORTS_PER_MINUTE per
sending address (421 beyond: a real MTA tries again later). Each report is applied by the
service layer (`MailFeedbackService`) and counted by kind and outcome. Where the database
or Temporal does not answer, 451: the reporting server keeps the report and retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from prometheus_client import CollectorRegistry, Counter

from partners.mail_feedback import ReturnPath
from starter.service.mail_feedback import MailFeedbackService
from starter.wiring import Wiring
from store.mail_feedback import FeedbackOutcome

log = logging.getLogger(__name__)
# One report is applied within this long, or the reporting server is told to retry.
APPLY_TIMEOUT = 20.0


class BounceListener:
    def __init__(self, services: Wiring, registry: CollectorRegistry | None = None) -> None:
        settings = services.settings
        self._services = services
        self._settings = settings
        self.registry = registry
        self._return_path = ReturnPath.of(settings)
        self.reports = Counter(
            "partners_mail_feedback",
            "Delivery reports and complaints received, by what they said and what they changed.",
            ["kind", "outcome"],
            registry=registry,
        )
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        settings = self._settings
        assert settings.bounce_smtp_port is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                _Handler(self),
                data_size_limit=settings.bounce_max_bytes,
                hostname=settings.bounce_address.rsplit("@", 1)[1] if settings.bounce_address else None,
                ident="partners bounce listener",
                timeout=60,
            ),
            host=settings.bounce_smtp_host,
            port=settings.bounce_smtp_port,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def allowed(self, peer: str) -> bool:
        """At most BOUNCE_REPORTS_PER_MINUTE reports a minute from one address."""
        now, recent = time.monotonic(), self._recent[peer]
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= self._settings.bounce_reports_per_minute:
            return False
        recent.append(now)
        if len(self._recent) > 10_000:  # bounded whoever connects: forget the idle ones
            for address in [a for a, times in self._recent.items() if not times]:
                del self._recent[address]
        return True

    def tag_of(self, recipient: str) -> str | None:
        return self._return_path.tag_in(recipient)

    async def apply(self, tags: list[str], data: bytes) -> None:
        feedback = MailFeedbackService(self._services)
        for tag in tags:
            report, outcome = await feedback.receive(tag, data)
            self.reports.labels(report.kind.value, outcome.value).inc()
            if outcome is FeedbackOutcome.UNMATCHED:
                log.info("a %s matched no send of ours", report.kind.value)


class _Handler:
    def __init__(self, listener: BounceListener) -> None:
        self._listener = listener

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        if not self._listener.allowed(peer):
            return "421 4.7.0 Too many reports from this address; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self._listener.tag_of(address) is None:
            return "550 5.1.1 No such mailbox: this server takes reports for our return paths only"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        tags = [tag for address in envelope.rcpt_tos if (tag := self._listener.tag_of(address)) is not None]
        data: Any = envelope.original_content or envelope.content or b""
        try:
            async with asyncio.timeout(APPLY_TIMEOUT):
                await self._listener.apply(tags, data if isinstance(data, bytes) else str(data).encode())
        except Exception as err:  # the database or Temporal did not answer: the MTA retries
            log.warning("a delivery report was not applied (%s); the sender will retry", type(err).__name__)
            return "451 4.3.0 Could not take the report now; try again later"
        return "250 OK: report received"
