"""The public invitation pages: the link in the e-mail lands here.

GET shows the invitation and changes nothing (mail scanners prefetch links); accepting
is a POST. Every link that does not lead to an invitation gets the same answer, so the
pages tell nothing about tokens that do not exist.
"""

from __future__ import annotations

import functools
import logging
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from partners import texts
from partners.errors import ErrorCode, Refused
from partners.models import InvitationState, PartnerStatus
from partners.settings import link_for
from partners.texts import Locale
from partners.views import InvitationLinkView
from starter.service.invitations import Invitations
from starter.wiring import Wiring

log = logging.getLogger(__name__)

_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
router = APIRouter(
    tags=["invitation pages"],
    responses={
        404: {"description": "Not a valid link (one answer for every bad link)", **_HTML},
        405: {"description": "Method not allowed", "content": {"application/problem+json": {}}},
        409: {"description": "The partner was deactivated, or its access is suspended", **_HTML},
        422: {"description": "Invalid input", "content": {"application/problem+json": {}}},
        429: {"description": "Too many bad links from this client; see Retry-After", **_HTML},
    },
)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# The token is in the path: it must not leak to other sites, caches or search engines.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}


_KIND = {
    "accepted": "accepted",
    "already_accepted": "already_accepted",
    "expired": "expired",
    "cancelled": "withdrawn",
    "superseded": "withdrawn",
}


def _render(
    request: Request, template: str, page: InvitationLinkView | None, status: int = 200, **context: Any
) -> HTMLResponse:
    locale = page.locale if page is not None else Locale.PT_BR
    if page is not None:
        context["role_name"] = texts.text(locale, f"role_{page.role.value}")
        context.setdefault("title", texts.text(locale, "page_title", partner=page.partner_name))
    return templates.TemplateResponse(
        request,
        template,
        {
            "page": page,
            "lang": locale.value,
            "t": functools.partial(texts.html, locale),
            "strong": texts.strong,
            # After an acceptance, where the person goes next (PORTAL_URL; none: no link).
            "portal_url": request.app.state.services.settings.portal_url or None,
            **context,
        },
        status_code=status,
        headers=_HEADERS,
    )


def _outcome(request: Request, page: InvitationLinkView, outcome: str) -> HTMLResponse:
    return _render(request, "outcome.html", page, outcome=outcome, kind=_KIND.get(outcome, "closed"))


def _suspended(request: Request, page: InvitationLinkView) -> HTMLResponse:
    """R23: the partner's access is paused; the invitation waits, and says whom to ask."""
    return _render(request, "outcome.html", page, status=409, outcome="partner_suspended", kind="suspended")


def _closed(request: Request, page: InvitationLinkView) -> HTMLResponse:
    if page.partner_status is PartnerStatus.DEACTIVATED:
        return _render(request, "outcome.html", page, status=409, outcome="partner_deactivated", kind="deactivated")
    return _outcome(request, page, "already_accepted" if page.state is InvitationState.ACCEPTED else page.state.value)


def _bilingual(request: Request, template: str, title: str, status: int) -> HTMLResponse:
    """A page that belongs to no invitation, so to no locale: it speaks both."""
    return _render(
        request,
        template,
        None,
        status=status,
        title=texts.text(Locale.PT_BR, title),
        pt=functools.partial(texts.html, Locale.PT_BR),
        en=functools.partial(texts.html, Locale.EN),
    )


def _invalid(request: Request) -> HTMLResponse:
    return _bilingual(request, "invalid.html", "invalid_title", 404)


async def _find(request: Request, token: str) -> InvitationLinkView | None:
    return await Invitations(request.app.state.services).link(token)


async def _lookup(request: Request, token: str) -> InvitationLinkView | HTMLResponse:
    """The invitation behind a link, or the page to answer instead: every bad link gets
    the same one, and a client that tried too many gets 429 whatever it sends next."""
    # Looked up first: a valid link is never refused because of someone's bad attempts.
    page = await _find(request, token)
    if page is not None:
        return page
    # The client's address as the trusted proxies (FORWARDED_ALLOW_IPS) report it.
    limiter = request.app.state.services.stores.link_attempts
    client = request.client.host if request.client else "unknown"
    if (wait := await limiter.retry_after(client)) is not None:
        response = _bilingual(request, "too_many.html", "too_many_title", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    await limiter.miss(client)
    return _invalid(request)


@router.get("/invitations/{token}", response_class=HTMLResponse)
async def show_invitation(request: Request, token: str) -> HTMLResponse:
    page = await _lookup(request, token)
    if isinstance(page, HTMLResponse):
        return page
    if page.state is not InvitationState.PENDING:
        return _closed(request, page)
    if page.partner_status is PartnerStatus.SUSPENDED:
        return _suspended(request, page)
    return _pending(request, page, token)


def _pending(request: Request, page: InvitationLinkView, token: str, status: int = 200) -> HTMLResponse:
    """The invitation, and where to accept it: here, or, with ACCEPT_URL set, only in the
    portal, which knows who is signed in (this page cannot tell who clicks)."""
    accept_url = request.app.state.services.settings.accept_url
    portal_link = link_for(accept_url, token) if accept_url else None
    return _render(request, "invitation.html", page, status=status, token=token, portal_link=portal_link)


@router.post("/invitations/{token}/accept", response_class=HTMLResponse)
async def accept_invitation(request: Request, token: str) -> HTMLResponse:
    page = await _lookup(request, token)
    if isinstance(page, HTMLResponse):
        return page
    if page.state is not InvitationState.PENDING:
        return _closed(request, page)
    if page.partner_status is PartnerStatus.SUSPENDED:
        return _suspended(request, page)
    if request.app.state.services.settings.accept_url:
        return _pending(request, page, token, status=403)  # accepted in the portal only
    try:
        result = await Invitations(request.app.state.services).accept_link(page, token)
    except Refused as err:
        if err.code is not ErrorCode.PARTNER_SUSPENDED:  # suspended since the page was read
            raise
        return _suspended(request, page)
    if result.newly_accepted:
        return _outcome(request, page, "accepted")
    return _closed(request, page.model_copy(update={"state": result.state}))


@router.get(
    "/partners/{partner_id}/logo",
    response_class=Response,
    responses={
        200: {
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/png", "image/jpeg", "image/webp")
            }
        },
        404: {"description": "No logo", "content": {"application/problem+json": {}}},
    },
)
async def public_logo(request: Request, partner_id: UUID) -> Response:
    """The logo for invitation pages and mails, which open without credentials."""
    return await logo_response(request.app.state.services, partner_id)


async def logo_response(services: Wiring, partner_id: UUID) -> Response:
    found = await services.stores.reads.get_logo(partner_id)
    if found is None:
        raise Refused(ErrorCode.NOT_FOUND, "The partner has no logo.")
    data, content_type, updated_at = found
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": "public, max-age=300",
            "Last-Modified": format_datetime(updated_at, usegmt=True),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
        },
    )
