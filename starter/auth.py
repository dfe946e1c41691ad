"""Who is calling: the portal backend (bearer token) and the acting user (headers)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from partners.errors import ErrorCode, Refused
from partners.rules import normalize_email
from starter.actors import Actor, ActorRole

_bearer = HTTPBearer(auto_error=False, description="PORTAL_API_TOKEN, shared with the portal backend.")


def bearer_matches(given: str | bytes, expected: str | bytes) -> bool:
    """The one comparison of a bearer token (the portal's, the operators'): in constant
    time, and never a match where no token is set."""
    given = given.encode() if isinstance(given, str) else given
    expected = expected.encode() if isinstance(expected, str) else expected
    return bool(expected) and hmac.compare_digest(given.strip(), expected)


async def actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_actor_email: Annotated[str | None, Header(description="E-mail of the acting user.")] = None,
    x_actor_role: Annotated[str | None, Header(description="`account_holder` or `partner_user`.")] = None,
    x_actor_enterprise: Annotated[
        str | None, Header(description="For account holders: the enterprise they hold.")
    ] = None,
) -> Actor:
    if not bearer_matches(credentials.credentials if credentials else "", request.app.state.services.api_token):
        raise Refused(ErrorCode.UNAUTHORIZED, "A valid bearer token is required.")
    problems = []
    email = ""
    try:
        email = normalize_email(x_actor_email or "").address
    except ValueError:
        problems.append("X-Actor-Email must be the acting user's e-mail address")
    # Only these two come over HTTP; `operator` is the CLI's, never a header's.
    role = next((r for r in (ActorRole.ACCOUNT_HOLDER, ActorRole.PARTNER_USER) if r.value == x_actor_role), None)
    if role is None:
        problems.append("X-Actor-Role must be `account_holder` or `partner_user`")
    if role is ActorRole.ACCOUNT_HOLDER and not x_actor_enterprise:
        problems.append("X-Actor-Enterprise is required for an account holder")
    if problems or role is None:
        raise Refused(ErrorCode.INVALID_INPUT, "; ".join(problems) + ".")
    return Actor(email=email, role=role, enterprise=x_actor_enterprise)


CurrentActor = Annotated[Actor, Depends(actor)]
