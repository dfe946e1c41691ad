"""The Partners console (R19): the screens of the product's how-to, for account holders,
partner Admins and Members, served under /console. HTTP only, as the API's routes:
`session.py` (the link, the session, the checks every page and form pass), `register.py`
(Registrar parceiros), `partner.py` (a partner's pages and actions). Templates in
`starter/templates/console/`, the stylesheet in `starter/static/console.css`."""

from __future__ import annotations

from fastapi import APIRouter

from starter.console import partner, register, session

router = APIRouter()
router.include_router(session.router)
router.include_router(register.router)
router.include_router(partner.router)
