"""``tessera agent``, ``tessera user`` and ``tessera revoke``: runtime control.

    tessera agent suspend|resume|retire --tenant T CLIENT_ID [--reason R]
    tessera agent set  --tenant T CLIENT_ID [--owner O] [--purpose P]
                       [--expires-at EPOCH | --expires-in SECONDS | --no-expiry]
    tessera agent show --tenant T CLIENT_ID
    tessera user disable|enable --tenant T SUB [--reason R]
    tessera revoke --tenant T --by token|grant|agent|user|partner|tenant [--value V] [--reason R]

Each takes effect on the next request on every replica and is in the tenant's audit chain.
"""

from __future__ import annotations

import argparse
from typing import Any, get_args

from broker.admin.models.runtime import RevokeBy
from broker.cli.inputs import NULL, given, shared_options
from broker.cli.transport import Job, now, op

AGENT_COLS = ("client_id", "status", "owner", "purpose", "expires_at")
USER_COLS = ("sub", "status", "email")
REVOKE_COLS = ("by", "value", "jti", "grant", "revoked_at")


def cmd_agent(args: argparse.Namespace) -> Job:
    where = {"tenant": args.tenant, "client_id": args.client_id}
    if args.action == "show":
        return op("get_agent", AGENT_COLS, **where)
    if args.action != "set":
        return op(f"{args.action}_agent", AGENT_COLS, body={"reason": args.reason}, **where)
    expires_at = NULL if args.no_expiry else args.expires_at
    if args.expires_in is not None:
        expires_at = now() + args.expires_in
    return op("describe_agent", AGENT_COLS, body=given(
        {"owner": args.owner, "purpose": args.purpose, "expires_at": expires_at}), **where)


def cmd_user(args: argparse.Namespace) -> Job:
    return op(f"{args.action}_user", USER_COLS, tenant=args.tenant, sub=args.sub,
              body={"reason": args.reason})


def cmd_revoke(args: argparse.Namespace) -> Job:
    return op("revoke", REVOKE_COLS, tenant=args.tenant, body=given(
        {"by": args.by, "value": args.value, "reason": args.reason, "issuer": args.issuer}))


def add_parser(sub: Any) -> None:
    """Add ``agent``, ``user`` and ``revoke`` to the ``tessera`` subcommands."""
    agent = sub.add_parser("agent", help="agent lifecycle: suspend, resume, retire, describe")
    asub = agent.add_subparsers(dest="action", required=True)
    for action in ("suspend", "resume", "retire", "set", "show"):
        sp = asub.add_parser(action)
        sp.add_argument("client_id")
        shared_options([sp])
        if action not in ("set", "show"):
            sp.add_argument("--reason", default="")
    aset = asub.choices["set"]
    aset.add_argument("--owner")
    aset.add_argument("--purpose")
    when = aset.add_mutually_exclusive_group()
    when.add_argument("--expires-at", type=float, help="epoch seconds (ephemeral agent)")
    when.add_argument("--expires-in", type=int, help="seconds from now (ephemeral agent)")
    when.add_argument("--no-expiry", action="store_true", help="clear the expiry")
    agent.set_defaults(func=cmd_agent)

    user = sub.add_parser("user", help="disable or enable a tenant's user")
    usub = user.add_subparsers(dest="action", required=True)
    for action in ("disable", "enable"):
        sp = usub.add_parser(action)
        sp.add_argument("sub")
        sp.add_argument("--reason", default="")
        shared_options([sp])
    user.set_defaults(func=cmd_user)

    rev = sub.add_parser("revoke", help="revoke tokens by token, grant, agent, user, partner "
                         "or the whole tenant (universal logout)")
    rev.add_argument("--by", required=True, choices=list(get_args(RevokeBy)))
    rev.add_argument("--value", help="the token, grant id, client_id, sub, partner id or "
                     "issuer (not for --by tenant)")
    rev.add_argument("--issuer", help="with --by user: the user's issuer (a partner or peer "
                     "tenant); --value is then their sub there")
    rev.add_argument("--reason", default="")
    shared_options([rev])
    rev.set_defaults(func=cmd_revoke)
