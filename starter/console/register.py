"""**Registrar parceiros** (R19), the how-to's tabs: Partner info, Register Domain, the
partner account's administrator, a review, **Adicionar Parceiro**. What is typed is kept
in the session (the draft), so a refusal goes back to its tab with everything typed."""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from partners.errors import ErrorCode, Refused
from partners.logos import decode_logo
from partners.requests import PersonIn, RegisterPartnerRequest
from partners.rules import LOGO_MAX_BYTES, normalize_email
from partners.texts import CATALOG, refusal_text
from starter.console.session import (
    Beside,
    Page,
    Posted,
    SignedIn,
    cookie_name,
    domain_or_none,
    holder,
    redraws,
    see,
    text,
)
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
async def register_start() -> Response:
    return see("/console/register/info")


@router.get("/register/logo")
async def draft_logo(page: SignedIn) -> Response:
    """The logo chosen in the first step, for its preview."""
    if page.session.draft_logo is None or page.session.draft_logo_type is None:
        return Response(status_code=404)
    return Response(page.session.draft_logo, media_type=page.session.draft_logo_type, headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})  # fmt: skip


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


@redraws("register.html")
async def _redraw(page: Page, refusal: Beside) -> Response:
    return _registration(page, refusal.context["step"], refusal.status, refusal.errors)


@router.get("/register/{step}", response_class=HTMLResponse)
async def register_step(page: SignedIn, step: str) -> Response:
    holder(page)
    if step not in STEPS:
        raise Refused(ErrorCode.NOT_FOUND, "No such step.")
    return _registration(page, step)


class _Tab:
    """One tab's fields read into the draft, with what is wrong beside its field."""

    def __init__(self, page: Page) -> None:
        self.page, self.form = page, page.form
        self.draft = dict(page.session.draft)
        self.errors: dict[str, str] = {}
        self.words = CATALOG[page.locale]
        self.logo: tuple[bytes, str] | None = None
        self.clear_logo = bool(self.form.get("remove_logo"))

    async def info(self) -> None:
        self.draft["name"] = text(self.form, "name", 120)
        if not self.draft["name"]:
            self.errors["name"] = self.words["err_required"]
        upload = self.form.get("logo")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return
        data = await upload.read(LOGO_MAX_BYTES + 1)
        if len(data) > LOGO_MAX_BYTES:
            self.errors["logo"] = self.words["err_logo_too_large"]
            return
        try:
            self.logo = (data, await asyncio.to_thread(decode_logo, data))
        except Refused as err:
            self.errors["logo"] = refusal_text(self.page.locale, err.code.value, err.detail)

    async def domains(self) -> None:
        rows = [text(self.form, f"domain_{i}", 253) for i in range(MAX_DOMAINS)]
        index = text(self.form, "remove", 3)
        if index.isdigit() and int(index) < len(rows):
            rows[int(index)] = ""
        kept = [row for row in rows if row] or [""]
        if self.form.get("add") is not None and len(kept) < MAX_DOMAINS:
            kept.append("")
        self.draft["domains"] = kept
        for i, row in enumerate(kept):
            if not row and (self.form.get("next") is not None and i == 0):
                self.errors[f"domain_{i}"] = self.words["err_required"]
            elif row and domain_or_none(row.removeprefix("@")) is None:
                self.errors[f"domain_{i}"] = self.words["err_domain"]

    async def admin(self) -> None:
        admin = {name: text(self.form, name, 254) for name in ("first_name", "last_name", "email")}
        self.draft["admin"] = admin
        for name, value in admin.items():
            if not value:
                self.errors[name] = self.words["err_required"]
        if admin["email"]:
            try:
                normalize_email(admin["email"])
            except ValueError:
                self.errors["email"] = self.words["err_email"]


@router.post("/register/{step}", response_class=HTMLResponse)
async def register_save(page: Posted, step: str) -> Response:
    """One tab saved into the session's draft: on to the next, back, or a row added or
    removed; what is wrong stays on this tab, beside its field."""
    holder(page)
    if step not in STEPS[:3]:
        raise Refused(ErrorCode.NOT_FOUND, "No such step.")
    tab = _Tab(page)
    await {"info": tab.info, "domains": tab.domains, "admin": tab.admin}[step]()
    await page.services.stores.console.save_draft(page.session.id_hash, tab.draft, tab.logo, clear_logo=tab.clear_logo)
    if page.form.get("back") is not None:
        return see(f"/console/register/{STEPS[max(STEPS.index(step) - 1, 0)]}")
    if tab.errors or page.form.get("next") is None:
        fresh = await Console(page.services).session(page.request.cookies.get(cookie_name(page.services)))
        if fresh is not None:
            page.session = fresh
        return _registration(page, step, 422 if tab.errors else 200, tab.errors)
    return see(f"/console/register/{STEPS[STEPS.index(step) + 1]}")


@router.post("/register", response_class=HTMLResponse)
async def register_submit(page: Posted) -> Response:
    """**Adicionar Parceiro**: the partner registered as the API registers it, then its
    logo; a refusal goes back to the tab of the field it is about."""
    enterprise = holder(page)
    draft = page.session.draft
    domains = [d.removeprefix("@") for d in draft.get("domains", []) if d]
    try:
        body = RegisterPartnerRequest(
            name=draft.get("name", ""), domains=domains, admin=PersonIn(**draft.get("admin", {}))
        )
    except ValidationError as err:
        loc = str(err.errors()[0]["loc"][0]) if err.errors() else "name"
        step = {"name": "info", "domains": "domains"}.get(loc, "admin")
        raise Beside("register.html", 422, {"form": CATALOG[page.locale]["err_invalid_input"]}, step=step) from None
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
        raise Beside("register.html", err.code.http_status, {name: page.refusal(err)}, step=step) from None
    if page.session.draft_logo is not None:
        await page.partners.set_logo(page.actor, partner.id, page.session.draft_logo)
    await page.services.stores.console.save_draft(page.session.id_hash, {}, clear_logo=True)
    return see(f"/console/partners/{partner.id}", done="registered")
