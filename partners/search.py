"""Search attributes: how an operator finds any partner's workflows in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ENTERPRISE_ID = SearchAttributeKey.for_keyword("EnterpriseId")
PARTNER_ID = SearchAttributeKey.for_keyword("PartnerId")
INVITATION_STATE = SearchAttributeKey.for_keyword("InvitationState")
INVITEE_DOMAIN = SearchAttributeKey.for_keyword("InviteeDomain")
ONBOARDING_PHASE = SearchAttributeKey.for_keyword("OnboardingPhase")

ALL = (ENTERPRISE_ID, PARTNER_ID, INVITATION_STATE, INVITEE_DOMAIN, ONBOARDING_PHASE)
