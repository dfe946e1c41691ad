"""Who acts: a person of the portal (an account holder or a partner's user, named by the
portal's headers: starter/auth.py) or an operator at the `partners` CLI. Apart from the web
framework: the service layer and the CLI use it, and neither imports FastAPI."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from partners.errors import ErrorCode, Refused


class ActorRole(StrEnum):
    ACCOUNT_HOLDER = "account_holder"
    PARTNER_USER = "partner_user"
    # The operator CLI only: never accepted from an HTTP header.
    OPERATOR = "operator"


class Actor(BaseModel):
    email: str
    role: ActorRole
    enterprise: str | None

    def holds(self, enterprise_id: str) -> bool:
        """R1: an account holder of this enterprise (the operator CLI acts as one)."""
        return self.role is ActorRole.OPERATOR or (
            self.role is ActorRole.ACCOUNT_HOLDER and self.enterprise == enterprise_id
        )

    def require_operator(self) -> None:
        """What only the operators' CLI does (a person's data, the suppression list)."""
        if self.role is not ActorRole.OPERATOR:
            raise Refused(ErrorCode.FORBIDDEN, "Only an operator may do this.")

    def require_account_holder_of(self, enterprise_id: str) -> None:
        """R1: only an account holder of the enterprise acts on its partners."""
        if not self.holds(enterprise_id):
            raise Refused(ErrorCode.FORBIDDEN, "Only an account holder of this enterprise may do this.")
