"""Search attributes: how an operator finds any partner's workflows in the Temporal UI.

They hold ids, domains and states only: they are indexed in clear, outside any codec.
"""

from __future__ import annotations

from uuid import UUID

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from partners.models import InvitationState, OnboardingPhase

ENTERPRISE_ID = SearchAttributeKey.for_keyword("EnterpriseId")
PARTNER_ID = SearchAttributeKey.for_keyword("PartnerId")
INVITATION_STATE = SearchAttributeKey.for_keyword("InvitationState")
INVITEE_DOMAIN = SearchAttributeKey.for_keyword("InviteeDomain")
ONBOARDING_PHASE = SearchAttributeKey.for_keyword("OnboardingPhase")
WEBHOOK_ENDPOINT_ID = SearchAttributeKey.for_keyword("WebhookEndpointId")

ALL = (ENTERPRISE_ID, PARTNER_ID, INVITATION_STATE, INVITEE_DOMAIN, ONBOARDING_PHASE, WEBHOOK_ENDPOINT_ID)


def attributes(
    enterprise_id: str, partner_id: UUID, *, invitee_domain: str | None = None, invitation_state: str | None = None
) -> TypedSearchAttributes:
    """A workflow's attributes at its start: whose it is, and for an invitation, whom it
    invites and its state."""
    pairs = [SearchAttributePair(ENTERPRISE_ID, enterprise_id), SearchAttributePair(PARTNER_ID, str(partner_id))]
    if invitee_domain is not None:
        pairs.append(SearchAttributePair(INVITEE_DOMAIN, invitee_domain))
    if invitation_state is not None:
        pairs.append(SearchAttributePair(INVITATION_STATE, invitation_state))
    return TypedSearchAttributes(pairs)


def onboarding_attributes(enterprise_id: str, partner_id: UUID, admin_domain: str) -> TypedSearchAttributes:
    """An onboarding's at its start: what a registration becomes unless refused (awaiting
    its admin, the invitation pending). Attributes given at start cost no Action; the
    workflow upserts only what then changes (refused, active, ...)."""
    pairs = [
        *attributes(
            enterprise_id, partner_id, invitee_domain=admin_domain, invitation_state=InvitationState.PENDING.value
        ),
        SearchAttributePair(ONBOARDING_PHASE, OnboardingPhase.AWAITING_ADMIN.value),
    ]
    return TypedSearchAttributes(pairs)


def webhook_attributes(enterprise_id: str | None, endpoint_id: UUID) -> TypedSearchAttributes:
    """A delivery workflow's: its endpoint, and its enterprise (`*` for the portal-wide one)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(ENTERPRISE_ID, enterprise_id or "*"),
            SearchAttributePair(WEBHOOK_ENDPOINT_ID, str(endpoint_id)),
        ]
    )
