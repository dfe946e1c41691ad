"""SMTP_TLS against a real TLS relay (aiosmtpd with a certificate made here): STARTTLS
required, implicit TLS, and a relay that offers no STARTTLS when it is required."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from tests.helpers.stack import new_enterprise, running_stack, unique_domain
from tests.helpers.waiting import eventually


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "relay.pem", folder / "relay.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _relay(certificate: tuple[Path, Path], mode: str) -> Iterator[MailCatcher]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    relay = MailCatcher(tls=context, tls_mode=mode)
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def starttls_relay(certificate: tuple[Path, Path]) -> Iterator[MailCatcher]:
    yield from _relay(certificate, "starttls")


@pytest.fixture
def implicit_relay(certificate: tuple[Path, Path]) -> Iterator[MailCatcher]:
    yield from _relay(certificate, "implicit")


@pytest.mark.parametrize("mode", ["starttls", "implicit", "opportunistic"])
async def test_mail_goes_out_encrypted(
    mode: str,
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    certificate: tuple[Path, Path],
    starttls_relay: MailCatcher,
    implicit_relay: MailCatcher,
) -> None:
    relay = implicit_relay if mode == "implicit" else starttls_relay
    async with running_stack(dev_env, pool, relay, smtp_tls=mode, smtp_ca_file=str(certificate[0])) as stack:
        partner = await stack.active_partner()  # the admin's mail went through this relay

        [mail] = relay.mails_to(partner.admin)
        assert mail.tls, f"{mode}: the conversation was encrypted"


async def test_required_starttls_against_a_plain_relay_sends_nothing_in_clear(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    async with running_stack(dev_env, pool, mail, smtp_tls="starttls") as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        created = (await stack.register(enterprise, domain)).json()
        error = await eventually(  # the attempt fails, is retried, and says why
            lambda: stack.pool.fetchval(
                "SELECT last_error FROM invitations WHERE id = $1::uuid", created["admin_invitation"]["id"]
            ),
            interval=0.1,
        )

        assert "STARTTLS" in error.upper() or "TLS" in error.upper(), error
        assert mail.mails_to(f"ada@{domain}") == []


async def test_mails_share_a_kept_connection_and_an_error_closes_it(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, certificate: tuple[Path, Path], starttls_relay: MailCatcher
) -> None:
    """What the relay sees: invitations one after another on one (encrypted) connection
    rather than a connection, a greeting and a TLS handshake each; a connection that met
    an error is never used again."""
    relay = starttls_relay
    async with running_stack(dev_env, pool, relay, smtp_tls="starttls", smtp_ca_file=str(certificate[0])) as stack:
        before = relay.connections
        admins = []
        for _ in range(3):
            enterprise, domain = new_enterprise(), unique_domain()
            assert (await stack.register(enterprise, domain)).status_code == 201
            admins.append(f"ada@{domain}")
            await stack.delivered(admins[-1])
        assert relay.connections - before == 1, "three mails, one connection"
        assert all(mail.tls for admin in admins for mail in relay.mails_to(admin))

        relay.fail_next(1)  # a 421 at DATA: that connection is closed, the retry opens another
        enterprise, domain = new_enterprise(), unique_domain()
        assert (await stack.register(enterprise, domain)).status_code == 201
        await stack.delivered(f"ada@{domain}", timeout=30)
        assert relay.connections - before == 2
