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
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from partners.errors import ErrorCode, Refused
from partners.rules import normalize_domain
from partners.texts import CATALOG, Locale, refusal_text, translator, when
from starter.actors import Actor, ActorRole
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
    form: FormData = field(init=False, default_factory=FormData)  # a form's fields, once checked

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
        context.setdefault("notice", CATALOG[self.locale].get(f"done_{done}") if done else None)
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
            "date": lambda value: when(value, locale),
            **context,
        },
        status_code=status,
        headers=_headers(services),
    )


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


async def _session(request: Request) -> tuple[Wiring, ConsoleSession | None]:
    services: Wiring = request.app.state.services
    session = await Console(services).session(request.cookies.get(cookie_name(services)))
    return services, session


class Stop(Exception):
    """A console request that cannot go on (no session, a form not sent from our page):
    the console's handler answers with the page that says what to do."""

    def __init__(self, key: str, status: int, locale: Locale | None = None) -> None:
        super().__init__(key)
        self.key, self.status, self.locale = key, status, locale


async def signed_in(request: Request) -> Page:
    """The dependency of every console page: the person of the session; without one,
    the page that says to start again from the portal."""
    services, session = await _session(request)
    if session is None:
        raise Stop("start_again", 401)
    page = Page(request, session, services)
    request.state.console_page = page  # for the handlers that render a refusal
    return page


async def posted(request: Request) -> Page:
    """The dependency of every console form: our origin, a session and the session's
    CSRF token; the page then carries the form."""
    services, session = await _session(request)
    if not _same_origin(request, services):
        raise Stop("forbidden", 403, Locale(session.locale) if session else None)
    page = await signed_in(request)
    page.form = await request.form(max_files=1, max_fields=200, max_part_size=CONSOLE_PART_LIMIT)
    given = page.form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), page.session.csrf.encode()):
        raise Stop("forbidden", 403, page.locale)
    return page


SignedIn = Annotated[Page, Depends(signed_in)]
Posted = Annotated[Page, Depends(posted)]
CONSOLE_PART_LIMIT = 2 * 1024 * 1024


class Beside(Exception):
    """A form's refusal shown beside its field on the page the form is on (`template`),
    with what was typed: the console's handler redraws that page (see `redraws`)."""

    def __init__(
        self, template: str, status: int, errors: dict[str, str], typed: dict[str, str] | None = None, **context: Any
    ) -> None:
        super().__init__(template)
        self.template, self.status, self.errors = template, status, errors
        self.typed, self.context = typed or {}, context


def beside(page: Page, err: Refused, template: str, field: str, typed: dict[str, str] | None = None) -> Exception:
    """A refusal from the service layer, beside `field`; one that hides the partner from
    this person (R12) stays what it is, and becomes what a missing partner gets."""
    if err.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
        return err
    return Beside(template, err.code.http_status, {field: page.refusal(err)}, typed)


Redraw = Callable[[Page, Beside], Awaitable[Response]]
_REDRAWS: dict[str, Redraw] = {}


def redraws(*templates: str) -> Callable[[Redraw], Redraw]:
    """Registers how the pages of `templates` are drawn again around a form's refusal."""

    def register(redraw: Redraw) -> Redraw:
        _REDRAWS.update(dict.fromkeys(templates, redraw))
        return redraw

    return register


def install(app: FastAPI) -> None:
    """The console's handlers, as the API's problem+json ones: a stopped request's page,
    and a refusal beside its field."""

    @app.exception_handler(Stop)
    async def _stopped(request: Request, stop: Stop) -> Response:
        return message(request, stop.key, stop.status, stop.locale)

    @app.exception_handler(Beside)
    async def _beside(request: Request, refusal: Beside) -> Response:
        page: Page = request.state.console_page
        return await _REDRAWS[refusal.template](page, refusal)


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
async def logout(page: Posted) -> Response:
    await Console(page.services).close(page.session)
    answer = page.render("message.html", 200, key="logged_out")
    answer.delete_cookie(cookie_name(page.services), path="/")
    return answer


@router.get("", response_class=HTMLResponse)
async def home(page: SignedIn) -> Response:
    """Account holders: their enterprise's partners. A partner's people: their partner."""
    actor = page.actor
    if actor.role is ActorRole.ACCOUNT_HOLDER and actor.enterprise:
        summaries = await page.partners.of_enterprise(actor, actor.enterprise)
        views = [await page.partners.get(actor, s.id) for s in summaries]
        slots = await page.partners.slots(actor, actor.enterprise)
        return page.render("partners.html", partners=views, slots=slots)
    memberships = (await page.members.access(actor, suspended_too=True)).memberships
    if len(memberships) == 1:
        return see(f"/console/partners/{memberships[0].partner_id}")
    return page.render("memberships.html", memberships=memberships)


def holder(page: Page) -> str:
    """The enterprise of an account holder; anyone else gets what a missing page gets."""
    if page.actor.role is not ActorRole.ACCOUNT_HOLDER or not page.actor.enterprise:
        raise Refused(ErrorCode.NOT_FOUND, "No such page.")
    return page.actor.enterprise


def problem_page(request: Request, err: Refused) -> HTMLResponse:
    """What a person reads where a program would get problem+json: a refusal of the
    service layer on the page of the session, a path that is not a page, a made-up id, a
    server that did not answer."""
    page: Page | None = getattr(request.state, "console_page", None)
    if err.code is ErrorCode.UNAVAILABLE:
        services: Wiring = request.app.state.services
        locale = services.settings.default_locale
        detail = CATALOG[locale]["err_unavailable"]
        return _render(request, services, locale, "message.html", 503, key="error", detail=detail)
    if page is not None:
        return refused_page(page, err)
    return message(request, "not_found", 404)
