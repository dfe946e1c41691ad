"""A partner's pages (R19): its information, members, invitations, products and APIs and
history; its settings (the administrator's replacement, deactivation); and the Admin's
invitations, one or a batch. Each action is the service layer's, as the API's."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from partners.errors import ErrorCode, Refused
from partners.requests import GrantRequest, InviteMemberRequest, PersonIn
from starter.console.session import (
    Page,
    form_action,
    holder,
    page_view,
    see,
    text,
)
from starter.console_texts import TEXTS, refusal_text, translator
from starter.pages import logo_response

router = APIRouter(prefix="/console", include_in_schema=False)


def _only_beside(err: Refused) -> None:
    """A refusal the page shows beside its field; one that hides the partner from this
    person (R12) goes on to be what a missing partner gets."""
    if err.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
        raise err


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
    notice = None
    if page.request.query_params.get("done") == "registered" and view.admin is not None:
        notice = translator(page.locale)("registered", name=view.name, email=view.admin.email)
    if notice:
        context.setdefault("notice", notice)
    joined = {m.email: m.joined_at for m in view.members}
    return page.render(template, status, partner=view, role=role, admin_since=joined, **extra, **context)


@router.get("/partners/{partner_id}", response_class=HTMLResponse)
async def partner(request: Request, partner_id: UUID) -> Response:
    return await page_view(request, lambda page: _partner_page(page, partner_id))


@router.get("/partners/{partner_id}/logo")
async def partner_logo(request: Request, partner_id: UUID) -> Response:
    async def show(page: Page) -> Response:
        await page.partners.get(page.actor, partner_id)
        return await logo_response(page.services, partner_id)

    return await page_view(request, show)


@router.get("/partners/{partner_id}/settings", response_class=HTMLResponse)
async def partner_settings(request: Request, partner_id: UUID) -> Response:
    async def show(page: Page) -> Response:
        await holder(page)
        return await _partner_page(page, partner_id, "settings.html", errors={}, typed={})

    return await page_view(request, show)


@router.post("/partners/{partner_id}/admin", response_class=HTMLResponse)
async def replace_admin(request: Request, partner_id: UUID) -> Response:
    """**Enviar convite**: a new administrator invited; the current one stays until then."""

    async def act(page: Page, form: FormData) -> Response:
        await holder(page)
        typed = {name: text(form, name, 254) for name in ("first_name", "last_name", "email")}
        try:
            person = PersonIn(**typed)
            await page.partners.replace_admin(page.actor, partner_id, person)
        except ValidationError as err:
            errors = _person_errors(page, err)
            return await _partner_page(page, partner_id, "settings.html", 422, errors=errors, typed=typed)
        except Refused as err:
            _only_beside(err)
            errors = {"email": page.refusal(err)}
            return await _partner_page(
                page, partner_id, "settings.html", err.code.http_status, errors=errors, typed=typed
            )
        return see(f"/console/partners/{partner_id}/settings", done="replacement")

    return await form_action(request, act)


def _person_errors(page: Page, err: ValidationError) -> dict[str, str]:
    texts = TEXTS[page.locale]
    errors: dict[str, str] = {}
    for problem in err.errors():
        name = str(problem["loc"][0]) if problem["loc"] else "email"
        errors.setdefault(name, texts["err_email"] if name == "email" else texts["err_required"])
    return errors


@router.post("/partners/{partner_id}/deactivate", response_class=HTMLResponse)
async def deactivate(request: Request, partner_id: UUID) -> Response:
    """**Desativar parceiro**: refused, naming them, while any API is granted."""

    async def act(page: Page, form: FormData) -> Response:
        await holder(page)
        if form.get("confirm") != "yes":
            errors = {"confirm": TEXTS[page.locale]["err_confirm"]}
            return await _partner_page(page, partner_id, "settings.html", 422, errors=errors, typed={})
        try:
            await page.partners.deactivate(page.actor, partner_id)
        except Refused as err:
            if err.code is not ErrorCode.API_ACCESS_GRANTED:
                raise
            errors = {"confirm": page.refusal(err)}
            return await _partner_page(page, partner_id, "settings.html", 409, errors=errors, typed={})
        return see(f"/console/partners/{partner_id}", done="deactivated")

    return await form_action(request, act)


@router.post("/partners/{partner_id}/grants", response_class=HTMLResponse)
async def grant(request: Request, partner_id: UUID) -> Response:
    async def act(page: Page, form: FormData) -> Response:
        typed = {
            "kind": text(form, "kind", 10),
            "ref": text(form, "grant_ref", 200),
            "name": text(form, "grant_name", 120),
        }
        try:
            await page.partners.grant(page.actor, partner_id, GrantRequest.model_validate(typed))
        except ValidationError as err:
            name = str(err.errors()[0]["loc"][0]) if err.errors() and err.errors()[0]["loc"] else "ref"
            errors = {f"grant_{name}": TEXTS[page.locale]["err_invalid_input"]}
            return await _partner_page(page, partner_id, status=422, grant_errors=errors, grant_typed=typed)
        except Refused as err:
            _only_beside(err)
            errors = {"grant_ref": page.refusal(err)}
            return await _partner_page(
                page, partner_id, status=err.code.http_status, grant_errors=errors, grant_typed=typed
            )
        return see(f"/console/partners/{partner_id}", done="granted")

    return await form_action(request, act)


@router.post("/partners/{partner_id}/grants/{grant_id}/revoke", response_class=HTMLResponse)
async def revoke(request: Request, partner_id: UUID, grant_id: UUID) -> Response:
    async def act(page: Page, form: FormData) -> Response:
        await page.partners.revoke(page.actor, partner_id, grant_id)
        back = "settings" if form.get("from") == "settings" else ""
        return see(f"/console/partners/{partner_id}" + (f"/{back}" if back else ""), done="revoked")

    return await form_action(request, act)


# --- invitations and members ---------------------------------------------------------------


@router.post("/partners/{partner_id}/invitations", response_class=HTMLResponse)
async def invite(request: Request, partner_id: UUID) -> Response:
    """**Convidar membro**: by the partner's Admin."""

    async def act(page: Page, form: FormData) -> Response:
        typed = {name: text(form, name, 254) for name in ("first_name", "last_name", "email")}
        try:
            await page.invitations.invite(page.actor, partner_id, InviteMemberRequest(**typed))
        except ValidationError as err:
            errors = _person_errors(page, err)
            return await _partner_page(page, partner_id, status=422, invite_errors=errors, invite_typed=typed)
        except Refused as err:
            _only_beside(err)
            errors = {"email": page.refusal(err)}
            return await _partner_page(
                page, partner_id, status=err.code.http_status, invite_errors=errors, invite_typed=typed
            )
        return see(f"/console/partners/{partner_id}", done="invited")

    return await form_action(request, act)


@router.post("/partners/{partner_id}/invitations/batch", response_class=HTMLResponse)
async def invite_batch(request: Request, partner_id: UUID) -> Response:
    """Several people at once, one per line (`First Last email`): each person's outcome."""

    async def act(page: Page, form: FormData) -> Response:
        lines = [line.split() for line in text(form, "people", 20_000).splitlines() if line.strip()][:50]
        people = [
            {"first_name": words[0], "last_name": " ".join(words[1:-1]), "email": words[-1]}
            if len(words) >= 3
            else {"email": words[-1] if words else ""}
            for words in lines
        ]
        if not people:
            errors = {"people": TEXTS[page.locale]["err_required"]}
            return await _partner_page(page, partner_id, status=422, batch_errors=errors)
        result = await page.invitations.invite_batch(page.actor, partner_id, people)
        outcomes = [
            (row.email, row.status == 201, refusal_text(page.locale, row.code or "", row.detail or ""))
            for row in result.results
        ]
        return await _partner_page(page, partner_id, batch=outcomes, notice=TEXTS[page.locale]["done_batch"])

    return await form_action(request, act)


@router.post("/partners/{partner_id}/invitations/{invitation_id}/{action}", response_class=HTMLResponse)
async def invitation_action(request: Request, partner_id: UUID, invitation_id: UUID, action: str) -> Response:
    async def act(page: Page, form: FormData) -> Response:
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
            _only_beside(err)
            error = (invitation_id, page.refusal(err))
            return await _partner_page(page, partner_id, status=err.code.http_status, invitation_error=error)
        return see(f"/console/partners/{partner_id}", done="resent" if action == "resend" else "cancelled")

    return await form_action(request, act)


@router.post("/partners/{partner_id}/members/remove", response_class=HTMLResponse)
async def remove_member(request: Request, partner_id: UUID) -> Response:
    async def act(page: Page, form: FormData) -> Response:
        await page.members.remove(page.actor, partner_id, text(form, "email"))
        return see(f"/console/partners/{partner_id}", done="removed")

    return await form_action(request, act)


@router.post("/partners/{partner_id}/leave", response_class=HTMLResponse)
async def leave(request: Request, partner_id: UUID) -> Response:
    async def act(page: Page, form: FormData) -> Response:
        await page.members.leave(page.actor, partner_id)
        return see("/console", done="left")

    return await form_action(request, act)
