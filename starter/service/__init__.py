"""The service layer: every operation of the portal API, the pages and the operator CLI,
one class per aggregate, each built the same way over the process's `Wiring`.

- `partners.py`: registration, the partner's view, admin replacement, grants, logo,
  deactivation and the audit trail (R1 to R4, R8 to R11);
- `invitations.py`: member invitations, one at a time or a batch, resend, cancel, the
  lists, and acceptance by link or by the signed-in invitee (R5 to R7);
- `members.py`: the members, removal and leaving, what a person may use, and a person's
  data for operators (R12 to R14, R16);
- `webhooks.py`: the event feed and the enterprise's webhook endpoints (R15).

Every method takes the acting user first, asks `starter/authorization.py` what they may
do, and answers with a view or raises `Refused`. HTTP stays in the routes.
"""
