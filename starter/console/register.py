"""**Registrar parceiros** (R19), the how-to's tabs: Partner info, Register Domain, the
partner account's administrator, a review, **Adicionar Parceiro**. What is typed is kept
in the session (the draft), so a refusal goes back to its tab with everything typed."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from partners.errors import ErrorCode, Refused
from partners.logos import decode_logo
from partners.requests import PersonIn, RegisterPartnerRequest
from partners.rules import LOGO_MAX_BYTES, normalize_domain, normalize_email
from starter.console.session import (
    Page,
    cookie_name,
    domain_or_none,
    form_action,
    holder,
    page_view,
    see,
    text,
)
from starter.console_texts import TEXTS, refusal_text
from starter.service.console import Console

router = APIRouter(prefix="/console", include_in_schema=False)

MAX_DOMAINS = 20
STEPS = ("info", "domains", "admin", "review")

# The fields a refusal of the registration is about, and the step that has them.
_REGISTRATION_FIELDS = {
    ErrorCode.DOMAIN_TAKEN: ("domains", "domains"),
    ErrorCode.DOMAIN_NOT_ALLOWED: ("domains", "domains"),
    ErrorCode.DOMAIN_NOT_REGISTERED: ("admin", "email"),
    ErrorCode.PARTNER_LIMIT_REACHED: ("review", "form"),
    ErrorCode.LOGO_TOO_LARGE: ("info", "logo"),
    ErrorCode.UNSUPPORTED_LOGO: ("info", "logo"),
}


# --- registration (the how-to's tabs) ------------------------------------------------------


@router.get("/register", response_class=HTMLResponse)
async def register_start(request: Request) -> Response:
    return see("/console/register/info")


@router.get("/register/logo")
async def draft_logo(request: Request) -> Response:
    """The logo chosen in the first step, for its preview."""

    async def show(page: Page) -> Response:
        if page.session.draft_logo is None or page.session.draft_logo_type is None:
            return Response(status_code=404)
        return Response(page.session.draft_logo, media_type=page.session.draft_logo_type, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})  # fmt: skip

    return await page_view(request, show)


def _registration(page: Page, step: str, status: int = 200, errors: dict[str, str] | None = None) -> HTMLResponse:
    draft = page.session.draft
    domains = list(draft.get("domains") or [""])
    return page.render(
        "register.html",
        status,
        step=step,
        steps=STEPS,
        draft=draft,
        domains=domains,
        has_logo=page.session.draft_logo is not None,
        errors=errors or {},
    )


@router.get("/register/{step}", response_class=HTMLResponse)
async def register_step(request: Request, step: str) -> Response:
    async def show(page: Page) -> Response:
        await holder(page)
        if step not in STEPS:
            raise Refused(ErrorCode.NOT_FOUND, "No such step.")
        return _registration(page, step)

    return await page_view(request, show)


@router.post("/register/{step}", response_class=HTMLResponse)
async def register_save(request: Request, step: str) -> Response:
    """One tab saved into the session's draft: on to the next, back, or a row added or
    removed; what is wrong stays on this tab, beside its field."""

    async def save(page: Page, form: FormData) -> Response:
        await holder(page)
        if step not in STEPS[:3]:
            raise Refused(ErrorCode.NOT_FOUND, "No such step.")
        draft, errors = dict(page.session.draft), dict[str, str]()
        texts = TEXTS[page.locale]
        logo: tuple[bytes, str] | None = None
        clear_logo = False
        if step == "info":
            draft["name"] = text(form, "name", 120)
            if not draft["name"]:
                errors["name"] = texts["err_required"]
            upload = form.get("logo")
            if isinstance(upload, UploadFile) and upload.filename:
                data = await upload.read(LOGO_MAX_BYTES + 1)
                if len(data) > LOGO_MAX_BYTES:
                    errors["logo"] = texts["err_logo_too_large"]
                else:
                    try:
                        logo = (data, await asyncio.to_thread(decode_logo, data))
                    except Refused as err:
                        errors["logo"] = refusal_text(page.locale, err.code.value, err.detail)
            if form.get("remove_logo"):
                clear_logo = True
        elif step == "domains":
            rows = [text(form, f"domain_{i}", 253) for i in range(MAX_DOMAINS)]
            if form.get("remove") is not None:
                index = text(form, "remove", 3)
                if index.isdigit() and int(index) < len(rows):
                    rows[int(index)] = ""
            kept = [row for row in rows if row] or [""]
            if form.get("add") is not None and len(kept) < MAX_DOMAINS:
                kept.append("")
            draft["domains"] = kept
            for i, row in enumerate(kept):
                if not row and (form.get("next") is not None and i == 0):
                    errors[f"domain_{i}"] = texts["err_required"]
                elif row:
                    try:
                        normalize_domain(row.removeprefix("@"))
                    except ValueError:
                        errors[f"domain_{i}"] = texts["err_domain"]
        else:
            admin = {name: text(form, name, 254) for name in ("first_name", "last_name", "email")}
            draft["admin"] = admin
            for name in ("first_name", "last_name", "email"):
                if not admin[name]:
                    errors[name] = texts["err_required"]
            if admin["email"] and "email" not in errors:
                try:
                    normalize_email(admin["email"])
                except ValueError:
                    errors["email"] = texts["err_email"]
        await page.services.stores.console.save_draft(page.session.id_hash, draft, logo, clear_logo=clear_logo)
        if form.get("back") is not None:
            return see(f"/console/register/{STEPS[max(STEPS.index(step) - 1, 0)]}")
        if errors or form.get("next") is None:
            fresh = await Console(page.services).session(page.request.cookies.get(cookie_name(page.services)))
            if fresh is not None:
                page.session = fresh
            return _registration(page, step, 422 if errors else 200, errors)
        return see(f"/console/register/{STEPS[STEPS.index(step) + 1]}")

    return await form_action(request, save)


@router.post("/register", response_class=HTMLResponse)
async def register_submit(request: Request) -> Response:
    """**Adicionar Parceiro**: the partner registered as the API registers it, then its
    logo; a refusal goes back to the tab of the field it is about."""

    async def submit(page: Page, form: FormData) -> Response:
        enterprise = await holder(page)
        draft = page.session.draft
        domains = [d.removeprefix("@") for d in draft.get("domains", []) if d]
        try:
            body = RegisterPartnerRequest(
                name=draft.get("name", ""), domains=domains, admin=PersonIn(**draft.get("admin", {}))
            )
        except ValidationError as err:
            loc = str(err.errors()[0]["loc"][0]) if err.errors() else "name"
            step = {"name": "info", "domains": "domains"}.get(loc, "admin")
            return _registration(page, step, 422, {"form": TEXTS[page.locale]["err_invalid_input"]})
        # One registration per draft, whatever is clicked twice: the session and what was typed.
        typed = hashlib.sha256(body.model_dump_json().encode()).hexdigest()[:32]
        key = f"console-{page.session.id_hash.hex()[:32]}-{typed}"
        try:
            partner = await page.partners.register(page.actor, enterprise, body, key)
        except Refused as err:
            step, name = _REGISTRATION_FIELDS.get(err.code, ("review", "form"))
            if name == "domains":  # beside the row of the first domain it names
                named = set(err.extra.get("domains") or ())
                rows = [d.removeprefix("@") for d in draft.get("domains", [])]
                found = [i for i, d in enumerate(rows) if domain_or_none(d) in named]
                name = f"domain_{found[0] if found else 0}"
            return _registration(page, step, err.code.http_status, {name: page.refusal(err)})
        if page.session.draft_logo is not None:
            await page.partners.set_logo(page.actor, partner.id, page.session.draft_logo)
        await page.services.stores.console.save_draft(page.session.id_hash, {}, clear_logo=True)
        return see(f"/console/partners/{partner.id}", done="registered")

    return await form_action(request, submit)
