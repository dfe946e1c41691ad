"""Mailer: issues an invitation link and sends the invitation e-mail over SMTP."""

from __future__ import annotations

import asyncio
import functools
import secrets
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr

import aiosmtplib
import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeats import heartbeating
from activities.smtp_pool import SmtpPool, SmtpSettings
from partners import texts, tracing
from partners.activity_io import (
    InviterNoticeInput,
    SendFailure,
    SendInvitationInput,
    SendInvitationOutput,
    SendOutcome,
)
from partners.logs import redact
from partners.mail_feedback import ReturnPath
from partners.metrics import count
from partners.models import InvitationPurpose, InvitationState
from partners.rules import mask_email, token_hash
from partners.settings import link_for
from store.sends import NoticeTicket, SendLedger, SendTicket

# The error type of a refusal by the receiving server (5xx): sending again cannot help.
UNDELIVERABLE = "undeliverable"

# The parts' charset: UTF-8, quoted-printable (readable where the text is mostly ASCII).
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP
# The mails' templates, compiled once for the process (each Mailer would compile its own).
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("activities", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


class Mailer:
    def __init__(
        self,
        ledger: SendLedger,
        smtp: SmtpSettings,
        *,
        link_base: str,
        accept_link: str,
        return_path: ReturnPath | None = None,
        notify_inviters: bool = False,
        portal_url: str | None = None,
    ) -> None:
        """`accept_link`: where the mail's link goes, a template with {token};
        `return_path`: each send's envelope sender (R24; None: MAIL_FROM);
        `notify_inviters`: tell inviters how their invitations ended (R24), linking
        `portal_url` where one is set."""
        self._ledger = ledger
        self._notify_inviters = notify_inviters
        self._portal_url = portal_url
        self._return_path = return_path or ReturnPath(None, b"")
        self._smtp = smtp
        self._connections = SmtpPool(smtp)
        self._link_base = link_base.rstrip("/")
        self._accept_link = accept_link
        self._templates = _TEMPLATES

    async def close(self) -> None:
        """Closes the SMTP connections it keeps (the worker's shutdown)."""
        await self._connections.close()

    @activity.defn
    async def send_invitation(self, input: SendInvitationInput) -> SendInvitationOutput:
        """One send of one invitation, at most once per (invitation, send number).

        The token is made here and leaves this method only inside the e-mail: it is
        never an activity input or output, so never in a workflow history.
        """
        token = secrets.token_urlsafe(32)
        tag = self._return_path.tag(input.invitation_id, input.send_number)
        ticket = await self._ledger.begin_send(
            input.invitation_id,
            input.send_number,
            token_hash(token),
            input.next_send_at,
            input.expires_at,
            input.requested_by,
            return_tag=tag,
        )
        if ticket.closed:
            return SendInvitationOutput(outcome=SendOutcome.CLOSED, state=ticket.state)
        if ticket.already_sent:
            return SendInvitationOutput(outcome=SendOutcome.ALREADY_SENT)
        if ticket.held:
            return SendInvitationOutput(outcome=SendOutcome.HELD)
        message = self._compose(ticket, link_for(self._accept_link, token), input)
        async with heartbeating():
            try:
                with tracing.tracer().start_as_current_span(
                    "smtp send",
                    attributes={"partners.invitation_id": str(input.invitation_id), "partners.send": input.send_number},
                ):
                    await self._deliver(message, self._return_path.sender(tag))
            except (aiosmtplib.SMTPException, OSError) as err:
                # Retried by Temporal; meanwhile the partner view says why the mail is late.
                # The failure Temporal keeps says it as scrubbed as the view does.
                failure = SendFailure(invitation_id=input.invitation_id, error=_describe(err))
                await self._ledger.record_send_failure(failure, token_hash(token))
                raise ApplicationError(failure.error, type=type(err).__name__) from None
            # The server has the mail: record it even if this attempt is being cancelled
            # (a heartbeat lost under load), or the retry would find the send unrecorded
            # and mail the invitee again.
            await asyncio.shield(self._ledger.finish_send(input.invitation_id, input.send_number, input.requested_by))
        activity.logger.info(
            "invitation e-mail %d sent to %s",
            input.send_number,
            mask_email(ticket.email),
            extra={"invitation_id": input.invitation_id, "send_number": input.send_number},
        )
        kind = "resend" if input.requested_by else ("first" if input.send_number == 1 else "reminder")
        count("partners_invitation_emails_sent", "Invitation e-mails the SMTP server accepted.", kind=kind)
        return SendInvitationOutput(outcome=SendOutcome.SENT)

    @activity.defn
    async def notify_inviter(self, input: InviterNoticeInput) -> bool:
        """The one mail that tells the inviter how their invitation ended; False where
        there is none to send (turned off, told already, an operator, a quota reached)."""
        if not self._notify_inviters:
            return False
        ticket = await self._ledger.begin_notice(input.invitation_id, input.state)
        if ticket is None:
            return False
        mail_from, portal = self._smtp.mail_from, self._portal_url
        message = compose_notice(self._templates, ticket, input, mail_from=mail_from, portal=portal)
        async with heartbeating():
            try:
                await self._deliver(message, None)
            except (aiosmtplib.SMTPException, OSError) as err:
                raise ApplicationError(_describe(err), type=type(err).__name__) from None
            await asyncio.shield(self._ledger.finish_notice(input.invitation_id, input.state))
        count("partners_inviter_notices", "Mails telling an inviter how the invitation ended.", state=input.state.value)
        return True

    def _compose(self, ticket: SendTicket, link: str, input: SendInvitationInput) -> Message:
        locale = ticket.locale
        context = {
            "first_name": ticket.first_name,
            "role": ticket.role.value,
            "role_name": texts.text(locale, f"role_{ticket.role.value}"),
            "partner_name": ticket.partner_name,
            "enterprise_name": ticket.enterprise_name,
            "invited_by": ticket.invited_by,
            "expires": texts.when(ticket.expires_at or input.expires_at, locale),
            "link": link,
            "lang": locale.value,
            "logo": f"{self._link_base}/partners/{ticket.partner_id}/logo" if ticket.has_logo else None,
        }
        # email's legacy (compat32) classes: the modern EmailMessage parses every header
        # it is given and refolds it when sent, four times the CPU of this
        # (bench/HISTORY.md#its-cuts). Addresses are ASCII (normalize_email); names and subjects that
        # are not are encoded here (RFC 2047).
        message = MIMEMultipart("alternative")
        message["From"] = self._smtp.mail_from
        message["To"] = formataddr((f"{ticket.first_name} {ticket.last_name}", ticket.email), charset="utf-8")
        subject = texts.text(locale, "subject", enterprise=ticket.enterprise_name, partner=ticket.partner_name)
        if input.send_number > 1:
            subject = texts.text(locale, "reminder", subject=subject)
        message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject").encode()
        message["Date"] = format_datetime(datetime.now(UTC))
        # One Message-ID per send: a duplicate after a crash is recognisably the same mail.
        message["Message-ID"] = f"<{input.invitation_id}.{input.send_number}@partners.invalid>"
        message["Auto-Submitted"] = "auto-generated"
        message["Content-Language"] = locale.value
        text = self._templates.get_template("invitation.txt")
        html = self._templates.get_template("invitation.html")
        message.attach(_text_part("plain", text.render(context, t=functools.partial(texts.text, locale))))
        message.attach(
            _text_part("html", html.render(context, t=functools.partial(texts.html, locale), strong=texts.strong))
        )
        return message

    async def _deliver(self, message: Message, sender: str | None) -> None:
        """Only the relay's permanent refusal of the recipient (5xx at RCPT) is final:
        that mailbox will not take the mail. A 5xx anywhere else (greeting, STARTTLS,
        authentication, MAIL FROM, DATA) says our side is misconfigured; it is raised
        as it is, retried with backoff, and goes out once the relay is fixed."""
        try:
            await self._connections.send(message, sender)
        except aiosmtplib.SMTPRecipientsRefused as err:
            refusal = err.recipients[0]
            if refusal.code >= 500:
                raise _undeliverable(refusal.code, refusal.message) from None
            raise
        except aiosmtplib.SMTPResponseException as err:
            if err.code >= 500:
                count("partners_mail_configuration_faults", "Permanent SMTP errors not about the recipient.")
            raise


def compose_notice(
    templates: jinja2.Environment,
    ticket: NoticeTicket,
    input: InviterNoticeInput,
    *,
    mail_from: str,
    portal: str | None,
) -> Message:
    """The inviter's mail (R24), in the language the invitation was asked in: what
    happened, and the next step or what to do."""
    locale, state = ticket.locale, input.state
    if state is InvitationState.ACCEPTED:
        kind = "replacement" if ticket.purpose == InvitationPurpose.ADMIN_REPLACEMENT else "first_admin"
        todo = "notice_next_step" if kind == "first_admin" else None
    else:
        kind, todo = state.value, f"notice_{state.value}_todo"
    context = {
        "kind": kind,
        "todo": todo,
        "name": f"{ticket.first_name} {ticket.last_name}".strip() or ticket.email,
        "email": ticket.email,
        "partner_name": ticket.partner_name,
        "enterprise_name": ticket.enterprise_name,
        "portal_url": portal,
        "lang": locale.value,
    }
    message = MIMEMultipart("alternative")
    message["From"] = mail_from
    message["To"] = ticket.inviter
    subject = texts.text(locale, f"notice_{kind}_subject", name=context["name"], email=ticket.email,
                         partner=ticket.partner_name)  # fmt: skip
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject").encode()
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<{input.invitation_id}.{state.value}.notice@partners.invalid>"
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = locale.value
    text, html = templates.get_template("notice.txt"), templates.get_template("notice.html")
    message.attach(_text_part("plain", text.render(context, t=functools.partial(texts.text, locale))))
    message.attach(
        _text_part("html", html.render(context, t=functools.partial(texts.html, locale), strong=texts.strong))
    )
    return message


def _text_part(subtype: str, body: str) -> MIMENonMultipart:
    """A text part in UTF-8, quoted-printable."""
    part = MIMENonMultipart("text", subtype)
    part.set_payload(body, _UTF8)
    return part


def _describe(err: BaseException) -> str:
    """The relay's reply or the connection's error, with any address in it masked (R16):
    relays quote the recipient ("550 5.1.1 <ana@x>: unknown user")."""
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return redact(f"{err.code} {err.message}")
    return redact(f"{type(err).__name__}: {err}")


def _undeliverable(code: int, message: str) -> ApplicationError:
    return ApplicationError(redact(f"{code} {message}"), type=UNDELIVERABLE, non_retryable=True)
