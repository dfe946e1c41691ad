"""A person's view: the link from the received mail, opened in headless Chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.helpers.stack import Stack, holder, new_enterprise, unique_domain

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 (once per session)
        # CI installs Debian's chromium (.ci/run); a developer without it is told how.
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Quiet and offline: this machine reaches no network but the loopback.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        await browser.close()


async def test_invitee_opens_the_mailed_link_and_accepts(
    dev_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    enterprise, domain = new_enterprise(), unique_domain()
    created = await dev_stack.register(
        enterprise, domain, name="Globex Corporation", enterprise_name="ACME Corp"
    )
    assert created.status_code == 201
    [mail] = await dev_stack.mail.wait_for(f"ada@{domain}")
    page = await browser.new_page()

    await page.goto(mail.link, timeout=15_000)
    heading = await page.text_content("h1", timeout=5_000)
    assert heading == "Join Globex Corporation"
    text = " ".join((await page.inner_text("main")).split())
    assert "ACME Corp invites you to join Globex Corporation" in text and "as Admin" in text
    await page.screenshot(path=str(tmp_path / "invitation.png"))
    await page.click("#accept", timeout=5_000)
    await page.wait_for_selector('#outcome[data-outcome="accepted"]', timeout=15_000)

    assert await page.text_content("h1") == "Welcome to Globex Corporation"
    await page.screenshot(path=str(tmp_path / "accepted.png"))
    if directory := os.environ.get("SCREENSHOTS"):
        for shot in ("invitation.png", "accepted.png"):
            shutil.copy(tmp_path / shot, Path(directory) / shot)
    view = await dev_stack.http.get(f"/v1/partners/{created.json()['id']}", headers=holder(enterprise))
    assert view.json()["status"] == "active"
    # Back and reload: the same link now says what happened, and changes nothing.
    await page.goto(mail.link, timeout=15_000)
    assert await page.get_attribute("#outcome", "data-outcome") == "already_accepted"
    await page.close()
