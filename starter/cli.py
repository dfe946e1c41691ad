"""`partners` (or `python -m starter`): the operator's command line.

The same rules and audit entries as the portal API (it runs the same services, `starter/service/`), acting
as `operator:<name>`. Exit codes: 0 done, 1 refused by a rule, 2 bad usage, 3 not found,
4 a server did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn
from uuid import UUID

# The services (Temporal, FastAPI's models, the stores) are imported once a command runs:
# usage and `--help` answer in a tenth of a second instead of one and a half.

EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 1, 2, 3, 4
LOCAL_ENV = ".data/local.env"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="partners",
        description="Operate the partner onboarding service: partners, members and invitations.",
        epilog="Reads the same settings as the service (DATABASE_URL, TEMPORAL_ADDRESS, ...; "
        "after `make run`, from .data/local.env). Exit codes: 0 done, 1 refused by a rule, "
        "2 bad usage, 3 not found, 4 a server did not answer.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--actor", default=getpass.getuser(), help="your name, recorded in the audit log (default: $USER)"
    )
    topics = parser.add_subparsers(
        dest="topic", required=True, metavar="{partners,members,invitations,person,suppressions,reconcile}"
    )

    partners = topics.add_parser("partners", help="list, show, suspend and resume partners").add_subparsers(
        dest="command", required=True
    )
    listing = partners.add_parser("list", help="the partners of an enterprise")
    listing.add_argument("--enterprise", required=True, help="the enterprise account's id")
    show = partners.add_parser("show", help="one partner: domains, admin, members, invitations, grants")
    show.add_argument("partner_id", type=UUID)
    suspend = partners.add_parser("suspend", help="pause the partner's access now (an incident); resume restores it")
    suspend.add_argument("partner_id", type=UUID)
    suspend.add_argument("--reason", help="why, shown to the enterprise's account holders (500 characters at most)")
    partners.add_parser("resume", help="restore a suspended partner exactly as it was").add_argument(
        "partner_id", type=UUID
    )

    members = topics.add_parser("members", help="list a partner's members, remove one").add_subparsers(
        dest="command", required=True
    )
    members.add_parser("list", help="the active members, the Admin first").add_argument("partner_id", type=UUID)
    remove = members.add_parser("remove", help="end a Member's membership; cancels their pending invitations")
    remove.add_argument("partner_id", type=UUID)
    remove.add_argument("email")

    invitations = topics.add_parser("invitations", help="show, resend or cancel an invitation").add_subparsers(
        dest="command", required=True
    )
    for name, text in (
        ("show", "the invitation and its workflow's live state (a query)"),
        ("resend", "send a new mail now and restart the TTL; revives an expired invitation"),
        ("cancel", "cancel a pending invitation: its links stop working"),
    ):
        invitations.add_parser(name, help=text).add_argument("invitation_id", type=UUID)

    suppressions = topics.add_parser(
        "suppressions", help="mailboxes that reported our mail as unwanted (R24), and lifting one"
    ).add_subparsers(dest="command", required=True)
    suppressions.add_parser("list", help="the suppressed mailboxes, newest first")
    suppressions.add_parser("lift", help="invitations may reach this mailbox again (audited)").add_argument("address")

    reconcile = topics.add_parser("reconcile", help="bring Temporal back in line with PostgreSQL after a restore (R25)")
    reconcile.add_argument("--dry-run", action="store_true", help="list what it would repair, change nothing")
    reconcile.add_argument(
        "--settle-seconds", type=int, default=600, help="leave workflows started this recently alone (default 600)"
    )
    reconcile.add_argument("--enterprise", help="one enterprise's only (default: every enterprise)")
    reconcile.set_defaults(command="run")

    person = topics.add_parser("person", help="a person's data on request (LGPD art. 18)").add_subparsers(
        dest="command", required=True
    )
    for name, text in (
        ("export", "print everything stored about the address, as JSON"),
        ("erase", "end their memberships, cancel their invitations, pseudonymise them everywhere"),
    ):
        person.add_parser(name, help=text).add_argument("email")
    return parser


def _text(result: Any) -> str:
    if isinstance(result, list):
        return "\n".join(f"{p.id}  {p.status:<11} {p.name}  ({', '.join(p.domains)})" for p in result) or "(none)"
    data = result.model_dump(mode="json")
    lines = []
    for key, value in data.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"  - {json.dumps(item, ensure_ascii=False)}" for item in value] or ["  (none)"]
        elif isinstance(value, dict):
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> Any:
    from partners.models import ReconcileInput
    from partners.settings import Settings
    from starter.actors import Actor, ActorRole
    from starter.service.invitations import Invitations
    from starter.service.mail_feedback import MailFeedbackService
    from starter.service.members import Members
    from starter.service.partners import Partners
    from starter.wiring import open_services

    actor = Actor(email=f"operator:{args.actor}", role=ActorRole.OPERATOR, enterprise=None)
    # `make run` writes where its embedded servers listen to .data/local.env; only the CLI
    # reads it, and the environment wins over it.
    async with open_services(Settings(_env_file=LOCAL_ENV), serving=False) as services:
        partners, invitations, members = Partners(services), Invitations(services), Members(services)
        feedback = MailFeedbackService(services)
        reconcile_input = ReconcileInput(
            actor=actor.email,
            dry_run=getattr(args, "dry_run", False),
            settle_seconds=getattr(args, "settle_seconds", 600),
            enterprise_id=getattr(args, "enterprise", None),
        )
        calls: dict[tuple[str, str], Callable[[], Awaitable[Any]]] = {
            ("partners", "list"): lambda: partners.of_enterprise(actor, args.enterprise),
            ("partners", "show"): lambda: partners.get(actor, args.partner_id),
            ("partners", "suspend"): lambda: partners.suspend(actor, args.partner_id, _suspension(args.reason)),
            ("partners", "resume"): lambda: partners.resume(actor, args.partner_id),
            ("members", "list"): lambda: members.of_partner(actor, args.partner_id),
            ("members", "remove"): lambda: members.remove(actor, args.partner_id, args.email),
            ("invitations", "show"): lambda: invitations.get(actor, args.invitation_id, ask_workflow=True),
            ("invitations", "resend"): lambda: invitations.resend(actor, args.invitation_id),
            ("invitations", "cancel"): lambda: invitations.cancel(actor, args.invitation_id),
            ("suppressions", "list"): lambda: feedback.suppressions(actor),
            ("suppressions", "lift"): lambda: feedback.lift(actor, args.address),
            ("reconcile", "run"): lambda: _reconcile(services, reconcile_input),
            ("person", "export"): lambda: members.export_person(actor, args.email),
            ("person", "erase"): lambda: members.erase_person(actor, args.email),
        }
        return await calls[(args.topic, args.command)]()


async def _reconcile(services: Any, input: Any) -> dict[str, Any]:
    """One run of ReconcileWorkflow (the daily schedule's), waited for: its repairs."""
    import uuid

    from workflows.reconcile import ReconcileWorkflow

    result = await services.client.execute_workflow(
        ReconcileWorkflow.run,
        input,
        id=f"partners-reconcile-cli-{uuid.uuid4()}",
        task_queue=services.settings.temporal_task_queue,
    )
    return result.model_dump(mode="json")  # type: ignore[no-any-return]


def _suspension(reason: str | None) -> Any:
    from pydantic import ValidationError

    from partners.errors import ErrorCode, Refused
    from partners.requests import SuspendRequest

    try:
        return SuspendRequest(reason=reason)
    except ValidationError:
        raise Refused(ErrorCode.INVALID_INPUT, "--reason: 500 characters at most, on one line.") from None


def run() -> NoReturn:
    """`partners`: `main`, then an exit that skips CPython's finalization (see
    `logs.exit_after_clean_shutdown`): the Temporal client's threads could abort it."""
    code = main()  # usage and --help have exited already, without importing the services
    from partners import logs

    logs.exit_after_clean_shutdown(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from temporalio.service import RPCError

    from partners.errors import Refused

    try:
        result = asyncio.run(_run(args))
    except Refused as err:
        print(f"{err.code.value}: {err.detail}", file=sys.stderr)
        if err.extra:
            print(json.dumps(err.extra, ensure_ascii=False, default=str), file=sys.stderr)
        if err.code.http_status == 404:
            return EXIT_NOT_FOUND
        return EXIT_UNAVAILABLE if err.code.http_status >= 500 else EXIT_REFUSED
    except (RPCError, OSError) as err:
        print(f"unavailable: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if isinstance(result, dict):  # a person's data: JSON either way
        print(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    elif args.json:
        items = [r.model_dump(mode="json") for r in result] if isinstance(result, list) else None
        print(json.dumps(items, indent=2) if items is not None else result.model_dump_json(indent=2))
    else:
        print(_text(result))
    return 0
