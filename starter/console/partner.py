"""A partner's pages (R19): its information, members, invitations, products and APIs and
history; its settings (the administrator's replacement, deactivation); and the Admin's
invitations, one or a batch. Each action is the service layer's, as the API's; a refusal
goes back beside its field through `Beside`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from partners.errors import ErrorCode, Refused
from partners.requests import GrantRequest, InviteMemberRequest, PersonIn, SuspendRequest
from partners.texts import CATALOG, refusal_text, translator
from starter.console.history import sentence
from starter.console.session import Beside, Page, Posted, SignedIn, beside, holder, redraws, see, text
from starter.pages import logo_response

router = APIRouter(prefix="/console", include_in_schema=False)


# --- a partner -----------------------------------------------------------------------------


async def _partner_page(
    page: Page, partner_id: UUID, template: str = "partner.html", status: int = 200, **context: Any
) -> Response:
    """A partner's page (or its settings), with what an action left to show: its
    refusal beside its field (`status` then says it), what was typed, an outcome."""
    partners, actor = page.partners, page.actor
    view = await partners.get(actor, partner_id)
    role = view.viewer_role
    extra: dict[str, Any] = {}
    if role in ("account_holder", "admin"):
        cursor = page.request.query_params.get("invitations") or None
        extra["invitation_list"] = await page.invitations.of_partner(
            actor, partner_id, state=None, limit=20, cursor=cursor[:200] if cursor else None
        )
    if role == "account_holder":
        before = page.request.query_params.get("before", "")
        extra["audit"] = await partners.audit(
            actor, partner_id, limit=20, before=int(before) if before.isdigit() and len(before) < 19 else None
        )
        extra["history"] = {entry.id: sentence(entry, page.locale) for entry in extra["audit"].entries}
    notice = None
    if page.request.query_params.get("done") == "registered" and view.admin is not None:
        notice = translator(page.locale)("registered", name=view.name, email=view.admin.email)
    if notice:
        context.setdefault("notice", notice)
    context.setdefault("errors", {})
    context.setdefault("typed", {})
    joined = {m.email: m.joined_at for m in view.members}
    return page.render(template, status, partner=view, role=role, admin_since=joined, **extra, **context)


@redraws("partner.html", "settings.html")
async def _redraw(page: Page, refusal: Beside) -> Response:
    partner_id = UUID(page.request.path_params["partner_id"])
    context = {"errors": refusal.errors, "typed": refusal.typed, **refusal.context}
    return await _partner_page(page, partner_id, refusal.template, refusal.status, **context)


@router.get("/partners/{partner_id}", response_class=HTMLResponse)
async def partner(page: SignedIn, partner_id: UUID) -> Response:
    return await _partner_page(page, partner_id)


@router.get("/partners/{partner_id}/logo")
async def partner_logo(page: SignedIn, partner_id: UUID) -> Response:
    await page.partners.get(page.actor, partner_id)
    return await logo_response(page.services, partner_id)


@router.get("/partners/{partner_id}/settings", response_class=HTMLResponse)
async def partner_settings(page: SignedIn, partner_id: UUID) -> Response:
    holder(page)
    return await _partner_page(page, partner_id, "settings.html")


def _person(page: Page, template: str) -> tuple[PersonIn, dict[str, str]]:
    """The person a form names (first name, last name, e-mail); what is wrong, beside its field."""
    typed = {name: text(page.form, name, 254) for name in ("first_name", "last_name", "email")}
    try:
        return PersonIn(**typed), typed
    except ValidationError as err:
        words = CATALOG[page.locale]
        errors: dict[str, str] = {}
        for problem in err.errors():
            name = str(problem["loc"][0]) if problem["loc"] else "email"
            errors.setdefault(name, words["err_email"] if name == "email" else words["err_required"])
        raise Beside(template, 422, errors, typed) from None


@router.post("/partners/{partner_id}/admin", response_class=HTMLResponse)
async def replace_admin(page: Posted, partner_id: UUID) -> Response:
    """**Enviar convite**: a new administrator invited; the current one stays until then."""
    holder(page)
    person, typed = _person(page, "settings.html")
    try:
        await page.partners.replace_admin(page.actor, partner_id, person)
    except Refused as err:
        raise beside(page, err, "settings.html", "email", typed) from None
    return see(f"/console/partners/{partner_id}/settings", done="replacement")


@router.post("/partners/{partner_id}/deactivate", response_class=HTMLResponse)
async def deactivate(page: Posted, partner_id: UUID) -> Response:
    """**Desativar parceiro**: refused, naming them, while any API is granted."""
    holder(page)
    if page.form.get("confirm") != "yes":
        raise Beside("settings.html", 422, {"confirm": CATALOG[page.locale]["err_confirm"]})
    try:
        await page.partners.deactivate(page.actor, partner_id)
    except Refused as err:
        if err.code is not ErrorCode.API_ACCESS_GRANTED:
            raise
        raise beside(page, err, "settings.html", "confirm") from None
    return see(f"/console/partners/{partner_id}", done="deactivated")


@router.post("/partners/{partner_id}/suspend", response_class=HTMLResponse)
async def suspend(page: Posted, partner_id: UUID) -> Response:
    """**Suspender acesso** (R23), with an optional reason."""
    holder(page)
    typed = {"reason": text(page.form, "reason", 600)}
    try:
        body = SuspendRequest(reason=typed["reason"] or None)
    except ValidationError:
        raise Beside("settings.html", 422, {"reason": CATALOG[page.locale]["err_reason"]}, typed) from None
    await page.partners.suspend(page.actor, partner_id, body)
    return see(f"/console/partners/{partner_id}/settings", done="suspended")


@router.post("/partners/{partner_id}/resume", response_class=HTMLResponse)
async def resume(page: Posted, partner_id: UUID) -> Response:
    """**Reativar acesso** (R23): the partner as it was."""
    holder(page)
    try:
        await page.partners.resume(page.actor, partner_id)
    except Refused as err:
        raise beside(page, err, "settings.html", "resume") from None
    return see(f"/console/partners/{partner_id}/settings", done="resumed")


@router.post("/partners/{partner_id}/grants", response_class=HTMLResponse)
async def grant(page: Posted, partner_id: UUID) -> Response:
    form = page.form
    typed = {"grant_kind": text(form, "kind", 10), "grant_ref": text(form, "grant_ref", 200),
             "grant_name": text(form, "grant_name", 120)}  # fmt: skip
    try:
        body = GrantRequest.model_validate({name.removeprefix("grant_"): value for name, value in typed.items()})
    except ValidationError as err:
        name = str(err.errors()[0]["loc"][0]) if err.errors() and err.errors()[0]["loc"] else "ref"
        raise Beside("partner.html", 422, {f"grant_{name}": CATALOG[page.locale]["err_invalid_input"]}, typed) from None
    try:
        await page.partners.grant(page.actor, partner_id, body)
    except Refused as err:
        raise beside(page, err, "partner.html", "grant_ref", typed) from None
    return see(f"/console/partners/{partner_id}", done="granted")


@router.post("/partners/{partner_id}/grants/{grant_id}/revoke", response_class=HTMLResponse)
async def revoke(page: Posted, partner_id: UUID, grant_id: UUID) -> Response:
    await page.partners.revoke(page.actor, partner_id, grant_id)
    back = "/settings" if page.form.get("from") == "settings" else ""
    return see(f"/console/partners/{partner_id}{back}", done="revoked")


# --- invitations and members ---------------------------------------------------------------


@router.post("/partners/{partner_id}/invitations", response_class=HTMLResponse)
async def invite(page: Posted, partner_id: UUID) -> Response:
    """**Convidar membro**: by the partner's Admin."""
    person, typed = _person(page, "partner.html")
    try:
        await page.invitations.invite(page.actor, partner_id, InviteMemberRequest(**person.model_dump()))
    except Refused as err:
        raise beside(page, err, "partner.html", "email", typed) from None
    return see(f"/console/partners/{partner_id}", done="invited")


@router.post("/partners/{partner_id}/invitations/batch", response_class=HTMLResponse)
async def invite_batch(page: Posted, partner_id: UUID) -> Response:
    """Several people at once, one per line (`First Last email`): each person's outcome."""
    lines = [line.split() for line in text(page.form, "people", 20_000).splitlines() if line.strip()][:50]
    people = [
        {"first_name": words[0], "last_name": " ".join(words[1:-1]), "email": words[-1]}
        if len(words) >= 3
        else {"email": words[-1] if words else ""}
        for words in lines
    ]
    if not people:
        raise Beside("partner.html", 422, {"people": CATALOG[page.locale]["err_required"]})
    result = await page.invitations.invite_batch(page.actor, partner_id, people)
    outcomes = [
        (row.email, row.status == 201, refusal_text(page.locale, row.code or "", row.detail or ""))
        for row in result.results
    ]
    return await _partner_page(page, partner_id, batch=outcomes, notice=CATALOG[page.locale]["done_batch"])


@router.post("/partners/{partner_id}/invitations/{invitation_id}/{action}", response_class=HTMLResponse)
async def invitation_action(page: Posted, partner_id: UUID, invitation_id: UUID, action: str) -> Response:
    if action not in ("resend", "cancel"):
        raise Refused(ErrorCode.NOT_FOUND, "No such action.")
    detail = await page.invitations.get(page.actor, invitation_id)
    if detail.partner_id != partner_id:
        raise Refused(ErrorCode.NOT_FOUND, "No such invitation.")
    try:
        if action == "resend":
            await page.invitations.resend(page.actor, invitation_id)
        else:
            await page.invitations.cancel(page.actor, invitation_id)
    except Refused as err:
        raise beside(page, err, "partner.html", f"invitation_{invitation_id}") from None
    return see(f"/console/partners/{partner_id}", done="resent" if action == "resend" else "cancelled")


@router.post("/partners/{partner_id}/members/remove", response_class=HTMLResponse)
async def remove_member(page: Posted, partner_id: UUID) -> Response:
    await page.members.remove(page.actor, partner_id, text(page.form, "email"))
    return see(f"/console/partners/{partner_id}", done="removed")


@router.post("/partners/{partner_id}/leave", response_class=HTMLResponse)
async def leave(page: Posted, partner_id: UUID) -> Response:
    await page.members.leave(page.actor, partner_id)
    return see("/console", done="left")
