"""The Partners console (R19), as the people of the how-to meet it: Chromium driven by
playwright against the API on a real port, the Temporal dev server, PostgreSQL and the
SMTP catcher. Every page is checked with axe-core; no serious or critical violation."""

from __future__ import annotations

import contextlib
import os
import re
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Browser, Page
from temporalio.testing import WorkflowEnvironment

from devstack.mailcatcher import MailCatcher
from tests.helpers.stack import (
    ActivePartner,
    Stack,
    api_client,
    holder,
    new_enterprise,
    partner_user,
    running_stack,
    start_console,
    unique_domain,
)

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


AXE = Axe()
# SCREENSHOTS=docs/screenshots keeps the main pages for the README (make screenshots).
SHOTS = os.environ.get("SCREENSHOTS")


def png(width: int = 96, height: int = 48) -> bytes:
    """A real PNG, made here: a blue square."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x18\x49\xa9" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def console_link(stack: Stack, headers: dict[str, str], **body: Any) -> str:
    """What the portal does for the person signed in: mint a link."""
    minted = await stack.http.post("/v1/console/sessions", json=body or None, headers=headers)
    assert minted.status_code == 201, minted.text
    url = minted.json()["url"]
    assert url.startswith(f"{stack.base_url}/console/start?token=")
    return str(url)


async def accessible(page: Page, name: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    results = await AXE.run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: {bad}"
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def opened(browser: Browser, url: str, **context: Any) -> Page:
    """A new browser (its own cookies) that opens the portal's link."""
    base = url.split("/console/", 1)[0].split("/invitations/", 1)[0]
    page = await (await browser.new_context(base_url=base, **context)).new_page()
    page.set_default_timeout(15_000)
    await page.goto(url)
    if await page.locator("#continue").count():  # the person confirms who they are: the session starts
        async with page.expect_navigation():
            await page.click("#continue")
    return page


async def accept_mail(stack: Stack, address: str) -> None:
    [mail] = (await stack.mail.wait_for(address))[-1:]
    accepted = await stack.http.post(f"{mail.link}/accept")
    assert 'data-outcome="accepted"' in accepted.text


async def test_an_account_holder_walks_the_how_to(dev_stack: Stack, browser: Browser, tmp_path: Path) -> None:
    """Registrar parceiros with a logo and two domains, the admin's mail and acceptance;
    Enviar convite to a new admin, who accepts; an API granted, Desativar parceiro refused
    naming it, revoked, deactivated."""
    enterprise, domain, other = new_enterprise(), unique_domain(), unique_domain()
    page = await opened(browser, await console_link(dev_stack, holder(enterprise, "ana@acme.example")))
    assert await page.text_content("h1") == "Parceiros"
    assert await page.text_content("#slots") == "0 de 10 parceiros"
    await accessible(page, "partners-empty")

    await page.click("#register")
    assert "Partner info" in await page.inner_text("nav.tabs")
    await page.fill("#name", "Globex Corporation")
    logo = tmp_path / "globex.png"
    logo.write_bytes(png())
    await page.set_input_files("#logo", str(logo))
    await accessible(page, "register-info")
    await page.click("#next")
    await page.wait_for_url("**/register/domains")
    assert "Não é possível enviar convites para membros com domínios que não estejam cadastrados aqui" in (
        await page.inner_text("main")
    )
    await page.fill("#domain_0", domain)
    await page.click("#add-domain")
    await page.fill("#domain_1", other)
    await accessible(page, "register-domains")
    await page.click("#next")
    await page.wait_for_url("**/register/admin")
    await page.fill("#first_name", "Ada")
    await page.fill("#last_name", "Lovelace")
    await page.fill("#email", f"ada@{domain}")
    await accessible(page, "register-admin")
    await page.click("#next")
    await page.wait_for_url("**/register/review")
    assert await page.text_content("#review-name") == "Globex Corporation Alterar"
    assert domain in await page.inner_text("#review-domains") and other in await page.inner_text("#review-domains")
    assert await page.is_visible("dd img.logo")
    await accessible(page, "register-review")
    await page.click("#add-partner")
    await page.wait_for_url(re.compile(r".*/console/partners/[0-9a-f-]{36}\?done=registered$"))
    assert f"ada@{domain} vai receber um e-mail" in await page.inner_text(".notice")
    assert await page.text_content("#partner-status") == "Aguardando aceite"
    assert await page.is_visible("h1#partner-name ~ .badge")
    partner_id = page.url.split("/partners/")[1].split("?")[0]
    logo_served = await page.request.get(f"/console/partners/{partner_id}/logo")
    assert logo_served.ok and await logo_served.body() == png()

    await accept_mail(dev_stack, f"ada@{domain}")
    await page.reload()
    assert await page.text_content("#partner-status") == "Ativo"
    assert "Administrador desde" in await page.inner_text("#admin")
    await accessible(page, "partner")

    # Configurações → Geral → Conta do administrador parceiro → Enviar convite.
    await page.click("#settings")
    await page.fill("#first_name", "Grace")
    await page.fill("#last_name", "Hopper")
    await page.fill("#email", f"grace@{other}")
    await page.click("#send-invitation")
    await page.wait_for_url("**/settings?done=replacement")
    waiting = await page.inner_text("#replacement-waiting")
    assert f"grace@{other}" in waiting and "Ada Lovelace continua administrador" in waiting
    await accessible(page, "settings")
    await accept_mail(dev_stack, f"grace@{other}")
    await page.goto(f"/console/partners/{partner_id}")
    assert f"grace@{other}" in await page.inner_text("#admin")
    members = await page.inner_text("#members")
    assert re.search(rf"Ada Lovelace\s+ada@{re.escape(domain)}\s+Membro", members), members

    # An API granted: Desativar parceiro is refused, naming it; revoked, then deactivated.
    await page.select_option("#grant_kind", "api")
    await page.fill("#grant_name", "Orders API")
    await page.fill("#grant_ref", "orders-api")
    await page.click("#grant")
    await page.wait_for_url("**?done=granted")
    assert "Orders API" in await page.inner_text("#grants")
    await page.click("#settings")
    assert "Orders API" in await page.inner_text("#apis-granted")
    await page.check("#confirm")
    await page.click("#deactivate")
    assert "Revogue o acesso às APIs" in await page.inner_text("#confirm-error")
    assert await page.query_selector("#partner-name") is None  # still the settings page
    stored = await dev_stack.pool.fetchval("SELECT status FROM partners WHERE id = $1", uuid.UUID(partner_id))
    assert stored == "active"
    await page.click("#apis-granted button")
    await page.wait_for_url("**/settings?done=revoked")
    await page.check("#confirm")
    await page.click("#deactivate")
    await page.wait_for_url(f"**/partners/{partner_id}?done=deactivated")
    assert await page.text_content("#partner-status") == "Desativado"
    await page.goto("/console")
    assert await page.text_content("#slots") == "0 de 10 parceiros"


async def test_a_refusal_is_shown_beside_its_field_and_nothing_typed_is_lost(
    dev_stack: Stack, browser: Browser
) -> None:
    partner = await dev_stack.active_partner()
    page = await opened(browser, await console_link(dev_stack, holder(partner.enterprise)))
    await page.click("#register")
    await page.fill("#name", "Second Partner")
    await page.click("#next")
    await page.fill("#domain_0", partner.domain)  # the first partner's
    await page.click("#next")
    await page.fill("#first_name", "Bo")
    await page.fill("#last_name", "Brown")
    await page.fill("#email", f"bo@{partner.domain}")
    await page.click("#next")
    await page.click("#add-partner")
    # Back on the domains tab, the refusal beside the domain's field, what was typed kept.
    assert await page.text_content("#domain_0-error") == "Este domínio já pertence a outro parceiro da sua conta."
    assert await page.get_attribute("#domain_0", "aria-invalid") == "true"
    assert await page.input_value("#domain_0") == partner.domain
    await accessible(page, "register-refused")
    await page.goto("/console/register/info")
    assert await page.input_value("#name") == "Second Partner"
    await page.goto("/console/register/admin")
    assert await page.input_value("#email") == f"bo@{partner.domain}"
    assert (
        await dev_stack.pool.fetchval("SELECT count(*) FROM partners WHERE enterprise_id = $1", partner.enterprise) == 1
    )


async def test_the_partner_admin_invites_one_and_several_and_a_member_leaves(
    dev_stack: Stack, browser: Browser
) -> None:
    partner = await dev_stack.active_partner()
    page = await opened(browser, await console_link(dev_stack, partner_user(partner.admin)))
    await page.wait_for_url(f"**/console/partners/{partner.id}")
    await accessible(page, "partner-admin")
    await page.fill("#first_name", "Mel")
    await page.fill("#last_name", "Member")
    await page.fill("#email", f"mel@{partner.domain}")
    await page.click("#invite")
    await page.wait_for_url("**?done=invited")
    assert f"mel@{partner.domain}" in await page.inner_text("#invitations")

    await page.fill(
        "#people", f"Ann One ann@{partner.domain}\nBob Two bob@{partner.domain}\nEve Out eve@elsewhere.example"
    )
    await page.click("#invite-all")
    outcomes = await page.inner_text("#batch")
    assert f"ann@{partner.domain}" in outcomes and f"bob@{partner.domain}" in outcomes
    assert re.search(r"eve@elsewhere\.example: O e-mail precisa ser de um dos domínios registrados", outcomes)
    await accessible(page, "partner-admin-batch")

    # Bob's invitation: resent at once is refused beside it (the cooldown), then cancelled.
    bob = f"bob@{partner.domain}"
    await dev_stack.delivered(bob)
    await page.goto(f"/console/partners/{partner.id}")
    await page.click(f'button[aria-label="Reenviar {bob}"]')
    assert "aguarde para reenviar" in await page.inner_text("#invitations [role=alert]")
    await page.click(f'button[aria-label="Cancelar {bob}"]')
    await page.wait_for_url("**?done=cancelled")
    row = await page.inner_text(f"#invitations tr:has-text('{bob}')")
    assert "Cancelado" in row

    await accept_mail(dev_stack, f"mel@{partner.domain}")
    await accept_mail(dev_stack, f"ann@{partner.domain}")
    await page.goto(f"/console/partners/{partner.id}")
    await page.click(f'button[aria-label="Remover mel@{partner.domain}"]')
    await page.wait_for_url("**?done=removed")
    assert f"mel@{partner.domain}" not in await page.inner_text("#members")

    # Ann, a Member: her partner, read-only, and leaving it.
    # On a phone's screen: 375 px wide.
    phone = {"viewport": {"width": 375, "height": 740}}
    ann = await opened(browser, await console_link(dev_stack, partner_user(f"ann@{partner.domain}")), **phone)
    await ann.wait_for_url(f"**/console/partners/{partner.id}")
    assert await ann.query_selector("#invite-form") is None and await ann.query_selector("#invitations") is None
    width = await ann.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width} px)"
    await accessible(ann, "partner-member")
    await ann.click("#leave")
    await ann.wait_for_url("**/console?done=left")
    assert await ann.text_content("#no-membership")
    active = await dev_stack.pool.fetchval(
        "SELECT active FROM members WHERE partner_id = $1 AND email = $2",
        uuid.UUID(partner.id),
        f"ann@{partner.domain}",
    )
    assert active is False


@contextlib.asynccontextmanager
async def _cookie_client(stack: Stack, link: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser without a browser: the link opened, its session's cookie kept."""
    async with api_client(stack.base_url) as http:
        opened = await start_console(http, link)
        assert opened.status_code == 303 and opened.headers["location"] == "/console"
        yield http


async def test_links_are_single_use_and_expire_sessions_end_and_changes_need_our_page(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    link = await console_link(dev_stack, holder(partner.enterprise))
    async with _cookie_client(dev_stack, link) as http:
        cookie = next(h for h in http.cookies.jar)
        set_cookie = (await dev_stack.http.get(link)).headers.get("set-cookie")
        assert set_cookie is None, "a link opens one session only"
        # A used link: the page that says to start again from the portal.
        again = await httpx.AsyncClient().get(link)
        assert again.status_code == 410 and 'data-key="start_again"' in again.text
        assert cookie.name == "partners_console" and cookie.has_nonstandard_attr("HttpOnly")

        page = await http.get(f"/console/partners/{partner.id}")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None

        grant = {"kind": "api", "grant_name": "Orders", "grant_ref": "orders"}
        without = await http.post(f"/console/partners/{partner.id}/grants", data=grant)
        assert without.status_code == 403 and 'data-key="forbidden"' in without.text
        cross_site = await http.post(
            f"/console/partners/{partner.id}/grants",
            data={**grant, "csrf": csrf.group(1)},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross_site.status_code == 403
        assert (
            await dev_stack.pool.fetchval(
                "SELECT count(*) FROM partner_grants WHERE partner_id = $1", uuid.UUID(partner.id)
            )
            == 0
        )

        # Another enterprise's partner, and a made-up one: what a missing partner gets.
        stranger = await dev_stack.active_partner()
        for other in (stranger.id, str(uuid.uuid4())):
            missing = await http.get(f"/console/partners/{other}")
            assert missing.status_code == 404 and 'data-key="not_found"' in missing.text

        # Logout ends the session.
        out = await http.post("/console/logout", data={"csrf": csrf.group(1)})
        assert out.status_code == 200 and 'data-key="logged_out"' in out.text
        after = await http.get("/console")
        assert after.status_code == 401 and 'data-key="start_again"' in after.text

    # An expired link, and a session idle too long.
    expired = await console_link(dev_stack, holder(partner.enterprise))
    await dev_stack.pool.execute("UPDATE console_links SET expires_at = now() - interval '1 second'")
    late = await httpx.AsyncClient().get(expired)
    assert late.status_code == 410 and 'data-key="start_again"' in late.text
    async with _cookie_client(dev_stack, await console_link(dev_stack, holder(partner.enterprise))) as http:
        assert (await http.get("/console")).status_code == 200
        await dev_stack.pool.execute("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes'")
        idle = await http.get("/console")
        assert idle.status_code == 401 and 'data-key="start_again"' in idle.text


async def test_an_outsider_gets_what_a_missing_partner_gets(dev_stack: Stack) -> None:
    partner = await dev_stack.active_partner()
    outsider = partner_user(f"someone@{unique_domain()}")
    async with _cookie_client(dev_stack, await console_link(dev_stack, outsider)) as http:
        home = await http.get("/console")
        assert home.status_code == 200 and 'id="no-membership"' in home.text
        page = await http.get(f"/console/partners/{partner.id}")
        assert page.status_code == 404 and 'data-key="not_found"' in page.text
        # A partner's person is no account holder: the registration is not theirs either.
        assert (await http.get("/console/register/info")).status_code == 404
        # Whatever is typed in the address bar: a page, never problem+json or a 500.
        for path in ("/console/partners/not-a-uuid", "/console/nowhere", "/console/register/nine"):
            answer = await http.get(path)
            assert answer.status_code == 404 and 'data-key="not_found"' in answer.text, path
            assert answer.headers["content-type"].startswith("text/html")


async def test_the_console_speaks_english_when_asked(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, browser: Browser
) -> None:
    # return_to is an address of the portal's: PORTAL_URL names it.
    async with running_stack(dev_env, pool, mail, portal_url="https://portal.example") as dev_stack:
        await _speaks_english(dev_stack, browser)


async def _speaks_english(dev_stack: Stack, browser: Browser) -> None:
    partner: ActivePartner = await dev_stack.active_partner()
    minted = await console_link(dev_stack, holder(partner.enterprise), locale="en", return_to="https://portal.example/")
    page = await opened(browser, minted)
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.text_content("#slots") == "1 of 10 partners"
    # At the enterprise's limit the button is disabled, and the page says why.
    await dev_stack.pool.execute("UPDATE enterprises SET partner_limit = 1 WHERE id = $1", partner.enterprise)
    await page.reload()
    assert await page.is_disabled("#register")
    assert "limit of 1 partners" in await page.inner_text("#limit")
    await accessible(page, "partners-at-limit")
    assert await page.text_content("#register") == "Register partners"
    assert await page.get_attribute("text=Back to the portal", "href") == "https://portal.example/"
    await page.click(".partner-link")
    assert await page.text_content("#partner-status") == "Active"
    await accessible(page, "partner-en")
    # The page a used link gets, for people too.
    used = await (await page.context.browser.new_context()).new_page()  # type: ignore[union-attr]
    await used.goto(minted)
    assert await used.get_attribute("#message", "data-key") == "start_again"
    await accessible(used, "start-again")


@pytest.mark.parametrize(
    ("body", "code"),
    [({"return_to": "javascript:alert(1)"}, "invalid_input"), ({"locale": "fr"}, "invalid_input")],
)
async def test_a_bad_console_request_is_refused_clearly(dev_stack: Stack, body: dict[str, Any], code: str) -> None:
    answer = await dev_stack.http.post("/v1/console/sessions", json=body, headers=holder(new_enterprise()))
    assert answer.status_code == 422 and answer.json()["code"] == code
    assert await dev_stack.pool.fetchval("SELECT count(*) FROM console_links WHERE return_to LIKE 'javascript%'") == 0


def test_every_console_text_is_in_both_languages() -> None:
    from partners.texts import CATALOG

    pt, en = (set(texts) for texts in CATALOG.values())
    assert pt == en, f"only in one: {pt ^ en}"


async def test_the_welcome_page_says_what_comes_next_and_links_to_the_portal(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher, browser: Browser
) -> None:
    async with running_stack(dev_env, pool, mail, portal_url="https://portal.example/partners") as stack:
        enterprise, domain = new_enterprise(), unique_domain()
        assert (await stack.register(enterprise, domain)).status_code == 201
        [invitation] = await stack.mail.wait_for(f"ada@{domain}")
        page = await opened(browser, invitation.link)
        await page.click("#accept")
        await page.wait_for_selector('#outcome[data-outcome="accepted"]')
        assert "entre no portal com este e-mail" in await page.inner_text("#next-steps")
        assert await page.get_attribute("#portal", "href") == "https://portal.example/partners"


async def test_a_link_opened_by_get_starts_nothing_until_its_person_continues(
    dev_stack: Stack, browser: Browser
) -> None:
    """Login CSRF: a GET of the link (a mail scanner, a link preview, a link of someone
    else's planted in a browser) shows whom it is for and uses nothing up; only the
    button's POST from our own origin starts the session."""
    enterprise = new_enterprise()
    link = await console_link(dev_stack, holder(enterprise, "ana@acme.example"))
    async with api_client(dev_stack.base_url) as scanner:
        for _ in range(2):
            shown = await scanner.get(link)
            assert shown.status_code == 200 and "set-cookie" not in shown.headers
            assert "Continuar como ana@acme.example" in shown.text
        planted = await scanner.post(
            "/console/start",
            data={"token": link.split("token=")[1]},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert planted.status_code == 403 and "set-cookie" not in planted.headers
    assert (
        await dev_stack.pool.fetchval("SELECT count(*) FROM console_sessions WHERE enterprise_id = $1", enterprise) == 0
    )
    page = await (await browser.new_context(base_url=dev_stack.base_url)).new_page()
    await page.goto(link)
    assert await page.text_content("#continue") == "Continuar como ana@acme.example"
    await accessible(page, "continue-as")
    async with page.expect_navigation():
        await page.click("#continue")
    assert await page.text_content("h1") == "Parceiros"
    await page.goto(link)  # used now
    assert await page.get_attribute("#message", "data-key") == "start_again"


async def test_the_portal_ends_a_persons_sessions_and_their_next_request_is_signed_out(dev_stack: Stack) -> None:
    enterprise = new_enterprise()
    person = holder(enterprise, f"ana-{enterprise}@acme.example")  # sessions of this test's only
    async with (
        _cookie_client(dev_stack, await console_link(dev_stack, person)) as first,
        _cookie_client(dev_stack, await console_link(dev_stack, person)) as second,
    ):
        unused = await console_link(dev_stack, person)
        other = holder(enterprise, f"bob-{enterprise}@acme.example")
        async with _cookie_client(dev_stack, await console_link(dev_stack, other)) as bob:
            ended = await dev_stack.http.delete("/v1/console/sessions", headers=person)
            assert ended.status_code == 200 and ended.json() == {"ended": 2}
            for http in (first, second):
                signed_out = await http.get("/console")
                assert signed_out.status_code == 401 and 'data-key="start_again"' in signed_out.text
            assert (await httpx.AsyncClient().get(unused)).status_code == 410
            assert (await bob.get("/console")).status_code == 200, "only the named person's sessions end"
        again = await dev_stack.http.delete("/v1/console/sessions", headers=person)
        assert again.json() == {"ended": 0}


async def test_return_to_is_an_address_of_the_portal(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """The console links back to return_to from our origin: anywhere but the portal would
    make it an open redirect."""
    async with running_stack(dev_env, pool, mail, portal_url="https://portal.example/home") as stack:
        headers = holder(new_enterprise())
        for elsewhere in ("https://evil.example/", "http://portal.example/", "https://portal.example.evil.example/"):
            refused = await stack.http.post("/v1/console/sessions", json={"return_to": elsewhere}, headers=headers)
            assert refused.status_code == 422 and refused.json()["code"] == "invalid_input", elsewhere
        kept = await stack.http.post(
            "/v1/console/sessions", json={"return_to": "https://portal.example/partners?x=1"}, headers=headers
        )
        assert kept.status_code == 201
    async with running_stack(dev_env, pool, mail) as without_portal:
        refused = await without_portal.http.post(
            "/v1/console/sessions", json={"return_to": "https://portal.example/"}, headers=holder(new_enterprise())
        )
        assert refused.status_code == 422
    assert await pool.fetchval("SELECT count(*) FROM console_links WHERE return_to LIKE 'https://evil%'") == 0


async def test_an_account_holder_suspends_and_resumes_a_partner_in_settings(dev_stack: Stack, browser: Browser) -> None:
    """R23 in the console: **Suspender acesso** with its reason, shown on the partner page
    and in the list; the Admin sees access paused and cannot invite; **Reativar acesso**."""
    partner = await dev_stack.active_partner(name="Wayne Enterprises")
    phone = {"viewport": {"width": 375, "height": 740}}
    page = await opened(browser, await console_link(dev_stack, holder(partner.enterprise)), **phone)
    await page.goto(f"/console/partners/{partner.id}/settings")
    await page.fill("#reason", "x" * 501)
    await page.click("#suspend")
    assert "até 500 caracteres" in await page.inner_text("#reason-error")
    assert (await dev_stack.http.get(f"/v1/partners/{partner.id}", headers=holder(partner.enterprise))).json()[
        "status"
    ] == "active", "a refused form changes nothing"
    await page.fill("#reason", "Incidente de segurança 7")
    await page.click("#suspend")
    await page.wait_for_url("**/settings?done=suspended")
    assert "Motivo: Incidente de segurança 7" in await page.inner_text("#suspended")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the settings scroll sideways on a phone ({width} px)"
    await accessible(page, "partner-suspended-settings")
    await page.goto(f"/console/partners/{partner.id}")
    assert await page.inner_text("#partner-status") == "Suspenso"
    assert "Incidente de segurança 7" in await page.inner_text("#suspended")
    await page.goto("/console")
    assert "Motivo: Incidente de segurança 7" in await page.inner_text(".partners")
    await accessible(page, "partners-with-a-suspended-one")

    admin = await opened(browser, await console_link(dev_stack, partner_user(partner.admin)))
    await admin.wait_for_url(f"**/console/partners/{partner.id}")
    notice = await admin.inner_text("#suspended")
    assert "pausado" in notice and "Incidente" not in notice, "the reason is the account's own"
    assert await admin.query_selector("#invite-form") is None

    await page.goto(f"/console/partners/{partner.id}/settings")
    await page.click("#resume")
    await page.wait_for_url("**/settings?done=resumed")
    assert await page.query_selector("#suspended") is None
    await page.goto(f"/console/partners/{partner.id}")
    assert await page.inner_text("#partner-status") == "Ativo"
    # The history in words, with the actor, in the page's language.
    history = await page.inner_text("#audit")
    holder_email = holder(partner.enterprise)["X-Actor-Email"]
    assert f"{holder_email} suspendeu o acesso do parceiro. Motivo: Incidente de segurança 7" in history
    assert f"{holder_email} reativou o acesso do parceiro, como estava." in history
    assert "Ada Admin aceitou o convite e agora é Admin do parceiro." in history
    assert "O convite foi enviado a Ada Admin (e-mail 1)." in history
    assert "partner_activated" not in history and "member_added" not in history
    await accessible(page, "partner-history")
    audit = await dev_stack.pool.fetch(
        "SELECT action FROM audit_log WHERE partner_id = $1::uuid"
        " AND action IN ('partner_suspended', 'partner_resumed') ORDER BY id",
        partner.id,
    )
    assert [r["action"] for r in audit] == ["partner_suspended", "partner_resumed"]
