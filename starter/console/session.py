"""The console's sessions and pages (R19): the link the portal mints opens a session of
that person; every page reads, and every form acts, through the service layer as them.

Plain forms and POST-redirect-GET, no script. Every POST carries the session's CSRF token
and must come from our own origin (`Origin`, `Sec-Fetch-Site`).
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from partners.errors import ErrorCode, Refused
from partners.messages import Locale
from partners.rules import normalize_domain
from starter.auth import Actor, ActorRole
from starter.console_texts import TEXTS, refusal_text, translator
from starter.service.console import Console, actor_of, same_origin
from starter.service.invitations import Invitations
from starter.service.members import Members
from starter.service.partners import Partners
from starter.wiring import Wiring
from store.console import ConsoleSession

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)
_STARTER = Path(__file__).parent.parent
templates = Jinja2Templates(directory=_STARTER / "templates" / "console")
STYLESHEET = _STARTER / "static" / "console.css"
COOKIE = "partners_console"


def cookie_name(services: Wiring) -> str:
    """`__Host-` where the console is served over https: bound to our host, path and TLS."""
    return f"__Host-{COOKIE}" if services.settings.link_base.startswith("https://") else COOKIE


def _headers(services: Wiring) -> dict[str, str]:
    ancestors = services.settings.console_frame_ancestors.strip() or "'none'"
    headers = {
        "Cache-Control": "no-store",
        # Our origin only: forms then carry it in Origin, which the POSTs are checked by.
        "Referrer-Policy": "same-origin",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none';"
            f" frame-ancestors {ancestors}"
        ),
    }
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    return headers


@dataclass
class Page:
    """One request of a console session: who acts, in which words, with which services."""

    request: Request
    session: ConsoleSession
    services: Wiring
    actor: Actor = field(init=False)
    locale: Locale = field(init=False)

    def __post_init__(self) -> None:
        self.actor = actor_of(self.session)
        self.locale = Locale(self.session.locale)

    @functools.cached_property
    def partners(self) -> Partners:
        return Partners(self.services)

    @functools.cached_property
    def invitations(self) -> Invitations:
        return Invitations(self.services)

    @functools.cached_property
    def members(self) -> Members:
        return Members(self.services)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        done = self.request.query_params.get("done", "")
        context.setdefault("notice", TEXTS[self.locale].get(f"done_{done}") if done else None)
        return _render(self.request, self.services, self.locale, template, status, page=self, **context)

    def refusal(self, err: Refused) -> str:
        return refusal_text(self.locale, err.code.value, err.detail)


def _render(
    request: Request, services: Wiring, locale: Locale, template: str, status: int, **context: Any
) -> HTMLResponse:
    page: Page | None = context.get("page")
    return templates.TemplateResponse(
        request,
        template,
        {
            "lang": locale.value,
            "t": translator(locale),
            "csrf": page.session.csrf if page else "",
            "actor": page.actor if page else None,
            "return_to": page.session.return_to if page else None,
            "date": lambda value: _date(value, locale),
            **context,
        },
        status_code=status,
        headers=_headers(services),
    )


def _date(value: datetime | None, locale: Locale) -> str:
    if value is None:
        return ""
    return value.strftime("%d/%m/%Y %H:%M" if locale is Locale.PT_BR else "%Y-%m-%d %H:%M") + " UTC"


def message(request: Request, key: str, status: int, locale: Locale | None = None) -> HTMLResponse:
    services: Wiring = request.app.state.services
    locale = locale or services.settings.default_locale
    return _render(request, services, locale, "message.html", status, key=key)


def see(url: str, **query: str) -> RedirectResponse:
    return RedirectResponse(f"{url}?{urlencode(query)}" if query else url, status_code=303)


def _same_origin(request: Request, services: Wiring) -> bool:
    """A change comes from a page of ours: the browser says so (Sec-Fetch-Site), and an
    Origin it sends is ours."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":  # an opaque origin: only a browser that says it is ours
        return site == "same-origin"
    return same_origin(origin, services.settings.link_base)


Handler = Callable[[Page], Awaitable[Response]]


async def _session(request: Request) -> tuple[Wiring, ConsoleSession | None]:
    services: Wiring = request.app.state.services
    session = await Console(services).session(request.cookies.get(cookie_name(services)))
    return services, session


async def page_view(request: Request, handler: Handler) -> Response:
    """A page of the console, for the person of the session; without one, the page that
    says to start again from the portal."""
    services, session = await _session(request)
    if session is None:
        return message(request, "start_again", 401)
    page = Page(request, session, services)
    try:
        return await handler(page)
    except Refused as err:
        return refused_page(page, err)


async def form_action(request: Request, handler: Callable[[Page, FormData], Awaitable[Response]]) -> Response:
    """A form's POST: a session, our origin and the session's CSRF token, then the action."""
    services, session = await _session(request)
    if not _same_origin(request, services):
        return message(request, "forbidden", 403, Locale(session.locale) if session else None)
    if session is None:
        return message(request, "start_again", 401)
    page = Page(request, session, services)
    form = await request.form(max_files=1, max_fields=200, max_part_size=CONSOLE_PART_LIMIT)
    given = form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        return message(request, "forbidden", 403, page.locale)
    try:
        return await handler(page, form)
    except Refused as err:
        return refused_page(page, err)


CONSOLE_PART_LIMIT = 2 * 1024 * 1024


def refused_page(page: Page, err: Refused) -> HTMLResponse:
    if err.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN) or err.code.http_status == 404:
        # What a missing partner gets, for anyone who may not see it (R12).
        return page.render("message.html", 404, key="not_found")
    return page.render("message.html", err.code.http_status, key="error", detail=page.refusal(err))


def domain_or_none(value: str) -> str | None:
    try:
        return normalize_domain(value)
    except ValueError:
        return None


def text(form: FormData, name: str, limit: int = 320) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


# --- start, home, logout -----------------------------------------------------------------


@router.get("/start", response_class=HTMLResponse)
async def start(request: Request, token: str = "") -> Response:
    """The portal's link: a page that names the person it was minted for, with a button
    that starts the session. The GET uses nothing up: a mail scanner or a link preview
    opens it harmlessly, and a link of someone else's planted in a browser starts nothing
    until its owner's name is confirmed. A used, expired or unknown link gets one page
    that says to start again from the portal."""
    services: Wiring = request.app.state.services
    found = await Console(services).whom(token)
    if found is None:
        return message(request, "start_again", 410)
    email, locale = found
    answer = _render(request, services, locale, "continue.html", 200, token=token, email=email)
    answer.headers["Referrer-Policy"] = "no-referrer"  # the link's token is in this URL
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.post("/start", response_class=HTMLResponse)
async def start_session(request: Request) -> Response:
    """The button of that page, from our own origin only: redeems the link, sets the
    session's cookie and goes to the console."""
    services: Wiring = request.app.state.services
    if not _same_origin(request, services):
        return message(request, "forbidden", 403)
    form = await request.form(max_files=0, max_fields=5)
    token = form.get("token")
    session = await Console(services).open(token if isinstance(token, str) else "")
    if session is None:
        return message(request, "start_again", 410)
    answer = see("/console")
    secure = services.settings.link_base.startswith("https://")
    answer.set_cookie(
        cookie_name(services),
        session,
        max_age=services.settings.console_session_max,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.get("/static/console.css")
async def stylesheet() -> FileResponse:
    return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    async def out(page: Page, form: FormData) -> Response:
        await Console(page.services).close(page.session)
        answer = page.render("message.html", 200, key="logged_out")
        answer.delete_cookie(cookie_name(page.services), path="/")
        return answer

    return await form_action(request, out)


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    """Account holders: their enterprise's partners. A partner's people: their partner."""

    async def show(page: Page) -> Response:
        actor = page.actor
        if actor.role is ActorRole.ACCOUNT_HOLDER and actor.enterprise:
            summaries = await page.partners.of_enterprise(actor, actor.enterprise)
            views = [await page.partners.get(actor, s.id) for s in summaries]
            slots = await page.partners.slots(actor, actor.enterprise)
            return page.render("partners.html", partners=views, slots=slots)
        memberships = (await page.members.access(actor)).memberships
        if len(memberships) == 1:
            return see(f"/console/partners/{memberships[0].partner_id}")
        return page.render("memberships.html", memberships=memberships)

    return await page_view(request, show)


async def holder(page: Page) -> str:
    """The enterprise of an account holder; anyone else gets what a missing page gets."""
    if page.actor.role is not ActorRole.ACCOUNT_HOLDER or not page.actor.enterprise:
        raise Refused(ErrorCode.NOT_FOUND, "No such page.")
    return page.actor.enterprise


def problem_page(request: Request, code: ErrorCode) -> HTMLResponse:
    """What a person reads where a program would get problem+json: a path that is not a
    page, a made-up id, a server that did not answer."""
    if code is ErrorCode.UNAVAILABLE:
        services: Wiring = request.app.state.services
        locale = services.settings.default_locale
        detail = TEXTS[locale]["err_unavailable"]
        return _render(request, services, locale, "message.html", 503, key="error", detail=detail)
    return message(request, "not_found", 404)
