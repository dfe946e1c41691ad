"""A person's view: the link from the received mail, opened in headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.helpers.stack import Stack, holder, new_enterprise, partner_body, unique_domain

# Its tests keep apart by enterprise and change nothing in the stack: one serves them all
# in each test process (conftest.py, `module_stack`).
ONE_STACK = True


EXPECTED = {
    "pt-BR": {
        "join": "Participe de Globex Corporation",
        "intro": "ACME Corp convida você a participar de Globex Corporation no portal de desenvolvedores como Admin.",
        "welcome": "Boas-vindas a Globex Corporation",
        "subject": "ACME Corp convida você para Globex Corporation",
    },
    "en": {
        "join": "Join Globex Corporation",
        "intro": "ACME Corp invites you to join Globex Corporation on its developer portal as Admin.",
        "welcome": "Welcome to Globex Corporation",
        "subject": "ACME Corp invites you to Globex Corporation",
    },
}


@pytest.mark.parametrize("locale", ["pt-BR", "en"])
async def test_invitee_opens_the_mailed_link_and_accepts(
    dev_stack: Stack, browser: Browser, tmp_path: Path, locale: str
) -> None:
    expected = EXPECTED[locale]
    enterprise, domain = new_enterprise(), unique_domain()
    body = partner_body(domain, name="Globex Corporation", enterprise_name="ACME Corp")
    if locale != "pt-BR":  # Brazilian Portuguese is the default
        body["locale"] = locale
    created = await dev_stack.http.post(f"/v1/enterprises/{enterprise}/partners", json=body, headers=holder(enterprise))
    assert created.status_code == 201, created.text
    [mail] = await dev_stack.mail.wait_for(f"ada@{domain}")
    assert mail.subject == expected["subject"]
    assert mail.message["Content-Language"] == locale
    page = await browser.new_page()

    await page.goto(mail.link, timeout=15_000)
    assert await page.text_content("h1", timeout=5_000) == expected["join"]
    assert await page.get_attribute("html", "lang") == locale
    assert expected["intro"] in " ".join((await page.inner_text("main")).split())
    await page.screenshot(path=str(tmp_path / f"invitation-{locale}.png"))
    await page.click("#accept", timeout=5_000)
    await page.wait_for_selector('#outcome[data-outcome="accepted"]', timeout=15_000)

    assert await page.text_content("h1") == expected["welcome"]
    await page.screenshot(path=str(tmp_path / f"accepted-{locale}.png"))
    if directory := os.environ.get("SCREENSHOTS"):  # to look at them: SCREENSHOTS=/some/dir
        for shot in (f"invitation-{locale}.png", f"accepted-{locale}.png"):
            shutil.copy(tmp_path / shot, Path(directory) / shot)
    view = await dev_stack.http.get(f"/v1/partners/{created.json()['id']}", headers=holder(enterprise))
    assert view.json()["status"] == "active"
    # Back and reload: the same link now says what happened, and changes nothing.
    await page.goto(mail.link, timeout=15_000)
    assert await page.get_attribute("#outcome", "data-outcome") == "already_accepted"
    await page.close()


async def test_the_api_docs_page_renders_offline_from_our_origin(dev_stack: Stack, browser: Browser) -> None:
    """/docs as `make run` advertises it: Swagger UI from our own origin, under our CSP,
    showing the operations, on a machine that reaches no CDN."""
    page = await browser.new_page()
    requested: list[str] = []
    refused: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: refused.append(message.text) if "Content Security" in message.text else None)
    try:
        await page.goto(f"{dev_stack.base_url}/docs")
        title = page.locator(".swagger-ui .info .title")
        await title.wait_for(timeout=15_000)
        assert "Partner onboarding" in await title.inner_text()
        assert await page.locator(".opblock").count() > 20, "the operations are listed"
    finally:
        await page.close()
    assert requested and all(url.startswith(dev_stack.base_url) for url in requested), requested
    assert refused == [], refused


async def test_only_the_files_the_docs_page_uses_are_served(dev_stack: Stack) -> None:
    """Swagger UI's package holds more than /docs uses, its own index.html among them (a
    page that runs script and loads a third party's document): none of that is served."""
    for name in ("index.html", "swagger-initializer.js", "oauth2-redirect.html", "../__init__.py", "nothing"):
        missing = await dev_stack.http.get(f"/docs/assets/{name}")
        assert missing.status_code == 404, name
    for name, kind in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        served = await dev_stack.http.get(f"/docs/assets/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert served.headers["content-security-policy"].startswith("default-src 'none'")
        assert served.headers["x-content-type-options"] == "nosniff"
