"""R24: delivery reports and complaints sent over SMTP to the running service's bounce
listener, as a receiving MTA and a mailbox provider's feedback loop send them."""

from __future__ import annotations

import secrets
import sys
import uuid
from email.message import EmailMessage

import aiosmtplib
import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from partners.ids import invitation_workflow_id
from partners.mail_feedback import ReportKind, ReturnPath, read_report
from partners.models import InvitationState
from tests.helpers.cli import run
from tests.helpers.stack import Stack, api_client, holder, partner_user, running_stack, start_console
from tests.helpers.waiting import eventually
from workflows.invitation import InvitationWorkflow


def dsn(return_path: str, recipient: str, status: str) -> bytes:
    """An RFC 3464 delivery status notification, as Postfix writes one."""
    action = "failed" if status.startswith("5") else "delayed"
    return (
        f"From: MAILER-DAEMON@mx.partner.example\r\nTo: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.partner.example.\r\n\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.partner.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} <{recipient}>: mailbox problem\r\n\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: ACME invites you\r\n\r\n--b1--\r\n"
    ).encode()


def arf(return_path: str, recipient: str, feedback_type: str = "abuse") -> bytes:
    """An RFC 5965 abuse report, as a mailbox provider's feedback loop sends one."""
    return (
        f"From: fbl@provider.example\r\nTo: {return_path}\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="a1"\r\n\r\n'
        "--a1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n"
        "--a1\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: ProviderFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n\r\n"
        f"--a1\r\nContent-Type: message/rfc822\r\n\r\nFrom: no-reply@partners.localhost\r\nTo: {recipient}\r\n"
        "Subject: ACME invites you\r\n\r\nHello\r\n\r\n--a1--\r\n"
    ).encode()


async def report(stack: Stack, to: str, data: bytes) -> None:
    """Sends a report to the bounce listener, as the partner's MX would: from <> (RFC 5321)."""
    assert stack.bounces is not None
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=stack.bounces.port, timeout=20) as smtp:
        await smtp.sendmail("", [to], data)


def counted(stack: Stack, kind: str, outcome: str) -> float:
    assert stack.bounces is not None and stack.bounces.registry is not None
    labels = {"kind": kind, "outcome": outcome}
    return stack.bounces.registry.get_sample_value("partners_mail_feedback_total", labels) or 0.0


async def test_a_hard_bounce_makes_its_invitation_undeliverable_and_a_soft_one_changes_nothing(
    dev_stack: Stack,
) -> None:
    partner = await dev_stack.active_partner()
    invitee = f"nobody@{partner.domain}"
    invitation = (await dev_stack.invite(partner, invitee)).json()
    [mail] = await dev_stack.delivered(invitee)
    # The envelope sender names this send: the return path with its tag.
    assert mail.sender.startswith("bounces+") and mail.sender.endswith("@bounces.example"), mail.sender
    admin_mail = (await dev_stack.mail.wait_for(partner.admin))[0]
    assert admin_mail.sender != mail.sender, "each send its own tag"
    handle = dev_stack.client.get_workflow_handle(invitation_workflow_id(invitation["id"]))

    await report(dev_stack, mail.sender, dsn(mail.sender, invitee, "4.2.2"))

    assert counted(dev_stack, "soft_bounce", "unchanged") == 1
    assert await dev_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", invitation["id"]) == (
        "pending"
    )

    await report(dev_stack, mail.sender, dsn(mail.sender, invitee, "5.1.1"))

    row = await dev_stack.pool.fetchrow(
        "SELECT state, last_error FROM invitations WHERE id = $1::uuid", invitation["id"]
    )
    assert row is not None and row["state"] == "undeliverable" and "5.1.1" in row["last_error"]
    assert invitee not in row["last_error"], "what the report says, not whom"
    assert counted(dev_stack, "hard_bounce", "undeliverable") == 1
    # Its reminders end: the workflow mirrors the stored state and finishes.
    result = await dev_stack.result(handle, timeout=20)
    assert result["state"] == "undeliverable"
    event = await dev_stack.pool.fetchval(
        "SELECT data FROM events WHERE type = 'invitation.undeliverable' AND data->>'invitation_id' = $1",
        invitation["id"],
    )
    assert event == {"invitation_id": invitation["id"], "state": "undeliverable"}
    view = (await dev_stack.http.get(f"/v1/invitations/{invitation['id']}", headers=holder(partner.enterprise))).json()
    assert view["state"] == "undeliverable"
    # The Admin who asked for it is told, with what to do.
    told = await dev_stack.mail.wait_for(partner.admin, 2)  # their own invitation, then this notice
    [notice] = [m for m in told if "não pôde ser entregue" in m.subject]
    assert notice.subject == f"O convite para {invitee} não pôde ser entregue"
    assert "Corrija o endereço e convide de novo." in notice.text
    # The account holder's console says it where they look, with what to do.
    minted = await dev_stack.http.post("/v1/console/sessions", headers=holder(partner.enterprise))
    async with api_client(dev_stack.base_url) as browser:
        assert (await start_console(browser, minted.json()["url"])).status_code == 303
        page = (await browser.get(f"/console/partners/{partner.id}")).text
    assert "O e-mail não chegou: confira o endereço e convide de novo." in page
    assert "O e-mail para Mel Member não pôde ser entregue. Confira o endereço e convide de novo." in page
    # The same report again, and one about no send of ours: nothing changes, both counted.
    await report(dev_stack, mail.sender, dsn(mail.sender, invitee, "5.1.1"))
    assert counted(dev_stack, "hard_bounce", "closed") == 1
    forged = f"bounces+{secrets.token_hex(10)}@bounces.example"
    await report(dev_stack, forged, dsn(forged, invitee, "5.1.1"))
    assert counted(dev_stack, "hard_bounce", "unmatched") == 1
    # A recipient that is not a return path of ours is refused at RCPT; so is a report too large.
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await report(dev_stack, f"postmaster@{partner.domain}", dsn(mail.sender, invitee, "5.1.1"))
    with pytest.raises(aiosmtplib.SMTPResponseException) as too_large:
        await report(dev_stack, mail.sender, b"Subject: x\r\n\r\n" + b"x" * (dev_stack.settings.bounce_max_bytes + 10))
    assert too_large.value.code == 552


async def test_a_complaint_suppresses_the_mailbox_until_an_operator_lifts_it(
    dev_stack: Stack, dev_env: WorkflowEnvironment, postgres_dsn: str
) -> None:
    partner = await dev_stack.active_partner()
    invitee = f"grumpy+news@{partner.domain}"
    invitation = (await dev_stack.invite(partner, invitee)).json()
    [mail] = await dev_stack.delivered(invitee)

    await report(dev_stack, mail.sender, arf(mail.sender, invitee))

    mailbox = f"grumpy@{partner.domain}"
    stored = await dev_stack.pool.fetchrow("SELECT reason FROM suppressions WHERE mailbox = $1", mailbox)
    assert stored is not None and stored["reason"] == "complaint"
    assert counted(dev_stack, "complaint", "suppressed") == 1
    # Its pending invitation is cancelled, and no new one reaches that mailbox, however written.
    await eventually(
        lambda: dev_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", invitation["id"]),
        lambda state: state == "cancelled",
    )
    refused = await dev_stack.invite(partner, f"GRUMPY+other@{partner.domain}")
    assert (refused.status_code, refused.json()["code"]) == (409, "address_suppressed")
    assert (await dev_stack.invite(partner, f"happy@{partner.domain}")).status_code == 201

    env = {
        "DATABASE_URL": postgres_dsn,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": dev_stack.settings.temporal_task_queue,
        "PYTHONWARNINGS": "ignore",
    }
    code, out, err = await run(sys.executable, "-m", "starter", "--actor", "olivia", "suppressions", "list", env=env)
    assert code == 0 and mailbox in out, err
    code, out, err = await run(
        sys.executable, "-m", "starter", "--actor", "olivia", "suppressions", "lift", invitee.upper(), env=env
    )
    assert code == 0 and mailbox in out, err
    lifted = await dev_stack.pool.fetchval(
        "SELECT actor FROM audit_log WHERE action = 'suppression_lifted' AND details->>'mailbox' = $1", mailbox
    )
    assert lifted == "operator:olivia"
    again = await dev_stack.invite(partner, invitee)
    assert again.status_code == 201, again.text


async def test_other_feedback_reports_change_nothing(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    invitee = f"fine@{partner.domain}"
    invitation = (await dev_stack.invite(partner, invitee)).json()
    [mail] = await dev_stack.delivered(invitee)

    await report(dev_stack, mail.sender, arf(mail.sender, invitee, feedback_type="not-spam"))
    vacation = EmailMessage()
    vacation["From"], vacation["To"], vacation["Subject"] = invitee, mail.sender, "Out of office"
    vacation.set_content("I am away until Monday.")
    await report(dev_stack, mail.sender, vacation.as_bytes())

    assert counted(dev_stack, "unreadable", "unchanged") == 2
    assert await dev_stack.pool.fetchval("SELECT state FROM invitations WHERE id = $1::uuid", invitation["id"]) == (
        "pending"
    )
    status = await dev_stack.client.get_workflow_handle(invitation_workflow_id(invitation["id"])).query(
        InvitationWorkflow.status
    )
    assert status.state is InvitationState.PENDING
    view = await dev_stack.http.get("/v1/access", headers=partner_user(invitee))
    assert view.status_code == 200


def test_a_return_path_names_its_send_and_nothing_else() -> None:
    path = ReturnPath("bounces@bounces.example", b"k" * 32)
    one, two = uuid.uuid4(), uuid.uuid4()
    tag = path.tag(one, 1)
    assert tag is not None and tag != path.tag(one, 2) and tag != path.tag(two, 1)
    sender = path.sender(tag)
    assert sender == f"bounces+{tag}@bounces.example"
    assert path.tag_in(sender.upper()) == tag and path.tag_in(f"<{sender}>") == tag
    assert path.tag_in(f"bounces+{tag}@elsewhere.example") is None
    assert path.tag_in("bounces@bounces.example") is None and path.tag_in("bounces+x@bounces.example") is None
    assert ReturnPath("bounces@bounces.example", b"other-key").tag(one, 1) != tag, "the key makes it unguessable"
    assert ReturnPath(None, b"k").sender(ReturnPath(None, b"k").tag(one, 1)) is None
    assert read_report(dsn("b@x", "a@y", "5.7.1")).kind is ReportKind.HARD_BOUNCE
    assert read_report(dsn("b@x", "a@y", "4.7.1")).kind is ReportKind.SOFT_BOUNCE
    assert read_report(arf("b@x", "a@y")).kind is ReportKind.COMPLAINT
    assert read_report(b"\xff\xfe not a mail at all").kind is ReportKind.UNREADABLE


async def test_a_suppression_is_part_of_its_persons_export_and_erasure(dev_stack: Stack) -> None:
    """R16: a person's data on request includes the suppression of their mailbox; an
    erasure removes it with the rest."""
    from starter.actors import Actor, ActorRole
    from starter.service.members import Members

    partner = await dev_stack.active_partner()
    invitee = f"erin@{partner.domain}"
    await dev_stack.invite(partner, invitee)
    [mail] = await dev_stack.delivered(invitee)
    await report(dev_stack, mail.sender, arf(mail.sender, invitee))
    operator = Actor(email="operator:olivia", role=ActorRole.OPERATOR, enterprise=None)
    members = Members(dev_stack.services)

    exported = await members.export_person(operator, invitee)
    erased = await members.erase_person(operator, invitee)

    assert [s["mailbox"] for s in exported["suppressions"]] == [invitee]
    assert erased["pseudonym"].endswith("@erased.invalid")
    assert await dev_stack.pool.fetchval("SELECT count(*) FROM suppressions WHERE mailbox = $1", invitee) == 0
    assert (await members.export_person(operator, invitee))["suppressions"] == []


async def test_the_bounce_listener_bounds_the_reports_of_one_sender(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """BOUNCE_REPORTS_PER_MINUTE per sending address: beyond it, 421 (a real MTA retries)."""
    async with running_stack(dev_env, pool, mail, bounce_reports_per_minute=2) as stack:
        forged = f"bounces+{secrets.token_hex(10)}@bounces.example"
        for _ in range(2):
            await report(stack, forged, dsn(forged, "x@y.example", "4.2.2"))
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await report(stack, forged, dsn(forged, "x@y.example", "4.2.2"))
        assert refused.value.code == 421
        assert counted(stack, "soft_bounce", "unchanged") == 2
