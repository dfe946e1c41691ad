"""Mail feedback (R24): a delivery report or complaint that came back to a send's return
path, applied; and the suppression list, for operators."""

from __future__ import annotations

from typing import Any

from partners.mail_feedback import Report, ReportKind, read_report
from starter.actors import Actor
from starter.service.base import Service
from store.mail_feedback import FeedbackOutcome


class MailFeedbackService(Service):
    async def receive(self, tag: str, data: bytes) -> tuple[Report, FeedbackOutcome]:
        """A report about the send `tag` names: a hard bounce closes its invitation
        `undeliverable`, a complaint suppresses the mailbox; anything else changes nothing.
        The workflows of the invitations it closed are told (those not told now find the
        stored state at their next step)."""
        report = read_report(data)
        store = self._stores.mail_feedback
        if report.kind is ReportKind.HARD_BOUNCE:
            outcome, closed = await store.hard_bounce(tag, report.detail)
        elif report.kind is ReportKind.COMPLAINT:
            outcome, closed = await store.complaint(tag)
        else:
            return report, FeedbackOutcome.UNCHANGED
        await self._tell_closed(closed, f"mail feedback: {report.kind.value}")
        return report, outcome

    async def suppressions(self, actor: Actor) -> dict[str, Any]:
        actor.require_operator()
        return {"suppressions": await self._stores.mail_feedback.suppressions()}

    async def lift(self, actor: Actor, address: str) -> dict[str, Any]:
        actor.require_operator()
        return await self._stores.mail_feedback.lift(address, actor.email)
