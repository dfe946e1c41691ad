"""Every store of one process, built once over one pool: what the API, the CLI and the
worker's activities call. Only SQL lives behind them; the activities that run a
workflow's steps are built over them by worker.py alone."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from partners.codec import EncryptionCodec
from partners.settings import Settings
from store.access import AccessReads
from store.console import ConsoleSessions
from store.events import EventStore
from store.grants import GrantStore
from store.idempotency import IdempotencyKeys
from store.invitations import InvitationStore
from store.link_attempts import LinkAttempts
from store.mail_feedback import MailFeedback
from store.mail_quota import MailQuota
from store.memberships import MembershipStore
from store.partners import PartnerStore
from store.persons import PersonStore
from store.reads import ReadModel
from store.reconcile import ReconcileReads
from store.retention import Retention
from store.sends import SendLedger
from store.suspension import Suspensions
from store.webhook_deliveries import WebhookDeliveries


@dataclass(frozen=True)
class Stores:
    partners: PartnerStore
    invitations: InvitationStore
    ledger: SendLedger
    grants: GrantStore
    suspensions: Suspensions
    memberships: MembershipStore
    persons: PersonStore
    reads: ReadModel
    access: AccessReads
    events: EventStore
    link_attempts: LinkAttempts
    idempotency: IdempotencyKeys
    mail_quota: MailQuota
    mail_feedback: MailFeedback
    reconcile: ReconcileReads
    retention: Retention
    console: ConsoleSessions
    webhook_deliveries: WebhookDeliveries
    pool: asyncpg.Pool  # for what is no store's: the worker's LISTEN (activities/wakeups.py)

    @classmethod
    def build(
        cls,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        partners: type[PartnerStore] = PartnerStore,
        invitations: type[InvitationStore] = InvitationStore,
        ledger: type[SendLedger] = SendLedger,
        reads: type[ReadModel] = ReadModel,
    ) -> Stores:
        """The classes can be swapped for subclasses (the tests slow a real step down)."""
        locale = settings.default_locale
        codec = EncryptionCodec(settings.payload_key_map)  # seals webhook secrets at rest
        mail_quota = MailQuota(
            pool,
            per_recipient=settings.recipient_daily_limit,
            per_partner=settings.partner_daily_invitation_limit,
            per_domain=settings.domain_daily_invitation_limit,
        )
        return cls(
            partners=partners(
                pool,
                default_partner_limit=settings.partner_limit,
                default_locale=locale,
                blocked_domains=settings.extra_blocked_domains,
                daily_registrations=settings.enterprise_daily_registration_limit,
                mail_quota=mail_quota,
            ),
            invitations=invitations(pool, default_locale=locale, mail_quota=mail_quota),
            ledger=ledger(pool, mail_quota),
            grants=GrantStore(pool),
            suspensions=Suspensions(pool),
            memberships=MembershipStore(pool),
            persons=PersonStore(pool),
            reads=reads(pool),
            access=AccessReads(pool),
            events=EventStore(pool, codec, endpoint_limit=settings.webhook_endpoint_limit),
            link_attempts=LinkAttempts(
                pool, limit=settings.link_attempt_limit, window_seconds=settings.link_attempt_window
            ),
            idempotency=IdempotencyKeys(pool, window_seconds=settings.idempotency_retention),
            mail_quota=mail_quota,
            mail_feedback=MailFeedback(pool),
            reconcile=ReconcileReads(pool),
            retention=Retention(pool, settings),
            pool=pool,
            webhook_deliveries=WebhookDeliveries(pool),
            console=ConsoleSessions(
                pool,
                link_ttl=settings.console_link_ttl,
                idle=settings.console_session_idle,
                absolute=settings.console_session_max,
            ),
        )
