"""Mail feedback (R24), the pure part: each send's return path, and what a delivery report
or a complaint that comes back to it says.

The mature mailers do it this way (Mailman and listmonk process bounces; Amazon SES and
Postmark feed bounces and complaints back): every mail goes out with an envelope sender
of its own, `bounces+<tag>@<bounce domain>` (VERP), so a report names its send however
the reporting server writes it. The tag is an HMAC of the send's id: unguessable, so a
forged report matches nothing. Reports are read with flufl.bounce (Mailman's parser of
the many MTA formats, RFC 3464 delivery status among them) and complaints by their
RFC 5965 `message/feedback-report` part, which the standard library reads.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum
from uuid import UUID

from flufl.bounce import all_failures

from partners.settings import Settings

# 100 bits of HMAC, in lower-case base32: fits a local part, reads back case-insensitively.
_TAG_CHARACTERS = 20


class ReturnPath:
    """The envelope sender of each send, from BOUNCE_ADDRESS (`bounces@bounces.example`)."""

    def __init__(self, bounce_address: str | None, key: bytes) -> None:
        self._address = bounce_address
        self._key = hmac.new(key, b"partners return path", hashlib.sha256).digest() if key else b""

    @classmethod
    def of(cls, settings: Settings) -> ReturnPath:
        """The service's, keyed by its first payload key (the worker's and the listener's)."""
        return cls(settings.bounce_address, next(iter(settings.payload_key_map.values()), b""))

    def tag(self, invitation_id: UUID, send_number: int) -> str | None:
        """The send's tag; None without a bounce address (the envelope sender is then MAIL_FROM)."""
        if not self._address or not self._key:
            return None
        digest = hmac.new(self._key, f"{invitation_id}/{send_number}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode().lower()[:_TAG_CHARACTERS]

    def sender(self, tag: str | None) -> str | None:
        if tag is None or not self._address:
            return None
        local, domain = self._address.rsplit("@", 1)
        return f"{local}+{tag}@{domain}"

    def tag_in(self, recipient: str) -> str | None:
        """The tag of a report's recipient, when it is one of our return paths."""
        if not self._address or "@" not in recipient:
            return None
        local, domain = self._address.lower().rsplit("@", 1)
        their_local, their_domain = recipient.strip("<>").lower().rsplit("@", 1)
        prefix = f"{local}+"
        if their_domain != domain or not their_local.startswith(prefix):
            return None
        tag = their_local.removeprefix(prefix)
        return tag if len(tag) == _TAG_CHARACTERS and tag.isalnum() else None


class ReportKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"  # 5.x.x: that mailbox will not take the mail
    SOFT_BOUNCE = "soft_bounce"  # 4.x.x: the reporting server tries again, or gave up for now
    COMPLAINT = "complaint"  # ARF Feedback-Type: abuse
    UNREADABLE = "unreadable"  # neither: a vacation reply, say


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    detail: str  # what the report says, in a line, without the recipient's address


def read_report(data: bytes) -> Report:
    """What a message that came back to a return path says."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    complaint = _feedback_type(message)
    if complaint is not None:
        if complaint == "abuse":
            return Report(ReportKind.COMPLAINT, "the recipient reported the mail as abuse")
        return Report(ReportKind.UNREADABLE, f"a feedback report of type {complaint[:40]}")
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a parser's surprise on a malformed report: read as nothing
        return Report(ReportKind.UNREADABLE, "a report the parsers could not read")
    status = _dsn_status(message)
    if permanent:
        return Report(ReportKind.HARD_BOUNCE, f"bounced: {status or 'permanent failure'}")
    if temporary:
        return Report(ReportKind.SOFT_BOUNCE, f"delayed: {status or 'temporary failure'}")
    if status is not None:  # a DSN the detectors did not name a recipient in
        kind = ReportKind.HARD_BOUNCE if status.startswith("5") else ReportKind.SOFT_BOUNCE
        return Report(kind, f"{'bounced' if status.startswith('5') else 'delayed'}: {status}")
    return Report(ReportKind.UNREADABLE, "not a delivery report")


def _feedback_type(message: Message) -> str | None:
    """RFC 5965: the Feedback-Type of a `message/feedback-report` part, lower-cased."""
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        fields = payload[0] if isinstance(payload, list) and payload else None
        if fields is None and isinstance(payload, str):
            fields = email.message_from_string(payload)
        if isinstance(fields, Message):
            return str(fields.get("Feedback-Type", "")).strip().lower() or None
    return None


def _dsn_status(message: Message) -> str | None:
    """RFC 3464: the first recipient's Status (`5.1.1`), where the report has one."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks:
            status = block.get("Status") if isinstance(block, Message) else None
            if status:
                code = str(status).strip().split()[0]
                if len(code) <= 16 and code[:1] in ("2", "4", "5"):
                    return code
    return None
