"""Mailer: issues an invitation link and sends the invitation e-mail over SMTP."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import aiosmtplib
import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.store import PartnerStore, SendTicket
from partners.models import SendInvitationInput, SendInvitationOutput, SendOutcome
from partners.rules import token_hash
from partners.settings import Settings

# The error type of a refusal by the receiving server (5xx): sending again cannot help.
UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    timeout: float
    mail_from: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        assert settings.smtp_host is not None and settings.smtp_port is not None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
            mail_from=settings.mail_from,
        )


class Mailer:
    def __init__(self, store: PartnerStore, smtp: SmtpSettings, *, link_base: str) -> None:
        self._store = store
        self._smtp = smtp
        self._link_base = link_base.rstrip("/")
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("activities", "templates"),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
        )

    @activity.defn
    async def send_invitation(self, input: SendInvitationInput) -> SendInvitationOutput:
        """One send of one invitation, at most once per (invitation, send number).

        The token is made here and leaves this method only inside the e-mail: it is
        never an activity input or output, so never in a workflow history.
        """
        token = secrets.token_urlsafe(32)
        ticket = await self._store.begin_send(
            input.invitation_id,
            input.send_number,
            token_hash(token),
            input.next_send_at,
            input.expires_at,
        )
        if ticket.closed:
            return SendInvitationOutput(outcome=SendOutcome.CLOSED, state=ticket.state)
        if ticket.already_sent:
            return SendInvitationOutput(outcome=SendOutcome.ALREADY_SENT)
        message = self._compose(ticket, f"{self._link_base}/invitations/{token}", input)
        await self._deliver(message)
        await self._store.finish_send(input.invitation_id, input.send_number)
        return SendInvitationOutput(outcome=SendOutcome.SENT)

    def _compose(self, ticket: SendTicket, link: str, input: SendInvitationInput) -> EmailMessage:
        context = {
            "first_name": ticket.first_name,
            "last_name": ticket.last_name,
            "role": ticket.role.value,
            "partner_name": ticket.partner_name,
            "enterprise_name": ticket.enterprise_name,
            "invited_by": ticket.invited_by,
            "expires_at": ticket.expires_at,
            "link": link,
            "send_number": input.send_number,
        }
        message = EmailMessage()
        message["From"] = self._smtp.mail_from
        message["To"] = formataddr((f"{ticket.first_name} {ticket.last_name}", ticket.email))
        subject = f"{ticket.enterprise_name} invites you to {ticket.partner_name}"
        message["Subject"] = subject if input.send_number == 1 else f"Reminder: {subject}"
        message["Date"] = format_datetime(datetime.now(UTC))
        # One Message-ID per send: a duplicate after a crash is recognisably the same mail.
        message["Message-ID"] = f"<{input.invitation_id}.{input.send_number}@partners.invalid>"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self._templates.get_template("invitation.txt").render(context))
        message.add_alternative(
            self._templates.get_template("invitation.html").render(context), subtype="html"
        )
        return message

    async def _deliver(self, message: EmailMessage) -> None:
        smtp = self._smtp
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password,
                start_tls=smtp.starttls,
                timeout=smtp.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            refusal = err.recipients[0]
            if refusal.code >= 500:
                raise _undeliverable(refusal.code, refusal.message) from None
            raise
        except aiosmtplib.SMTPResponseException as err:
            if err.code >= 500:
                raise _undeliverable(err.code, err.message) from None
            raise


def _undeliverable(code: int, message: str) -> ApplicationError:
    return ApplicationError(f"{code} {message}", type=UNDELIVERABLE, non_retryable=True)
