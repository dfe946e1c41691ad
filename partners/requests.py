"""What the portal API accepts: request bodies, validated and normalised on the way in.

Only the API decodes these. Workflows and activities receive their own models
(partners.models), built from these once they are valid: an API field can change
without breaking the decoding of a running workflow, and decoding a workflow input does
not validate e-mail addresses again.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from partners.events import EVENT_TYPES
from partners.models import GrantKind, Invitee, NewPartner
from partners.rules import has_control_characters, normalize_domain, normalize_email
from partners.texts import Locale


def _no_control_characters(value: object) -> object:
    if isinstance(value, str) and has_control_characters(value):
        raise ValueError("control characters (CR, LF, NUL, ...) are not allowed")
    return value


def _email(value: str) -> str:
    return normalize_email(value).address


# Control characters are refused before stripping: "Ada\n" is refused, not trimmed.
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    BeforeValidator(_no_control_characters),
]
PartnerName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    BeforeValidator(_no_control_characters),
]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Domain = Annotated[str, StringConstraints(max_length=253), AfterValidator(normalize_domain)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonIn(_Request):
    first_name: PersonName
    last_name: PersonName
    email: Email = Field(description="Normalised: lower case, domain in IDNA/punycode.")

    def invitee(self) -> Invitee:
        return Invitee(first_name=self.first_name, last_name=self.last_name, email=self.email)


class RegisterPartnerRequest(_Request):
    name: PartnerName
    enterprise_name: PartnerName | None = Field(
        default=None, description="How invitations name the enterprise; kept for later ones."
    )
    domains: list[Domain] = Field(min_length=1, max_length=20)
    admin: PersonIn
    locale: Locale | None = Field(
        default=None,
        description="Language of the enterprise's invitations (pt-BR or en); kept for later ones.",
    )

    def model_post_init(self, context: object, /) -> None:
        # Two spellings of one domain (`Acme.com`, `acme.com.`) are one domain.
        object.__setattr__(self, "domains", list(dict.fromkeys(self.domains)))

    def new_partner(self) -> NewPartner:
        return NewPartner(
            name=self.name,
            enterprise_name=self.enterprise_name,
            domains=self.domains,
            admin=self.admin.invitee(),
            locale=self.locale,
        )


class InviteMemberRequest(PersonIn):
    locale: Locale | None = Field(
        default=None, description="Language of this invitation; the enterprise's when absent."
    )


# A product's or API's id in the Service Catalog, as a grant names it and the access
# question asks for it.
GRANT_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$"
GrantRef = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=GRANT_REF_PATTERN),
]


class GrantRequest(_Request):
    kind: GrantKind
    ref: GrantRef = Field(description="The product's or API's id in the Service Catalog.")
    name: PartnerName


def _inlined_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its definitions inlined: a schema that can sit
    anywhere in the OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return dict(inline(schema))


# Each person is validated on its own (a malformed one is that row's `invalid_input`), so
# the body takes any object and the document shows the shape each must have.
BatchPerson = Annotated[dict[str, Any], WithJsonSchema(_inlined_schema(InviteMemberRequest))]


class BatchInviteRequest(_Request):
    people: list[BatchPerson] = Field(min_length=1, max_length=50, description="Up to 50 people, in order.")


# Why a partner is suspended: the account holder's words, shown to them and in the audit
# trail (no one's personal data belongs there). Control characters are refused.
SuspensionReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    BeforeValidator(_no_control_characters),
]


class SuspendRequest(_Request):
    reason: SuspensionReason | None = Field(default=None, description="Why, for the account holders (R23).")


class AcceptRequestBody(_Request):
    token: str = Field(max_length=200, description="The token of the invitation link the person opened.")


class WebhookRequest(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(max_length=2000, description="https, a public address (see docs/api.md, webhooks).")
    events: list[str] = Field(
        default=["*"], min_length=1, max_length=50, description='`["*"]` or a list of event types.'
    )

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if value == ["*"]:
            return value
        unknown = sorted(set(value) - EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)}")
        return sorted(set(value))


class ConsoleSessionRequest(BaseModel):
    """What the portal asks for when it opens the console for the person signed in."""

    model_config = {"extra": "forbid"}

    return_to: str | None = Field(
        default=None,
        max_length=2000,
        description="Where the console's way back to the portal goes (http or https); PORTAL_URL by default.",
    )
    locale: Locale | None = Field(default=None, description="The console's language; the enterprise's by default.")

    @field_validator("return_to")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith(("https://", "http://")) and not has_control_characters(value)):
            raise ValueError("an http or https address is expected")
        return value
