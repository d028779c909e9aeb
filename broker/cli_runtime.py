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

from broker.admin.models.runtime import AgentPut, RevokeBy, RevokeRequest
from broker.admin.services import agents as ops
from broker.admin.services import revocation

AGENT_COLS = ("client_id", "status", "owner", "purpose", "expires_at")
USER_COLS = ("sub", "status", "email")
REVOKE_COLS = ("by", "value", "jti", "grant", "revoked_at")


def cmd_agent(args: argparse.Namespace) -> int:
    from broker.cli import NULL, _run, body  # broker.cli imports this module: import late

    if args.action == "show":
        return _run(args, lambda b: ops.get_agent(b, args.tenant, args.client_id), AGENT_COLS)
    if args.action != "set":
        return _run(args, lambda b: ops.agent_action(
            b, args.tenant, args.client_id, args.action, args.reason), AGENT_COLS)

    async def describe(b: Any) -> Any:
        expires_at = NULL if args.no_expiry else args.expires_at
        if args.expires_in is not None:
            expires_at = b.clock.now() + args.expires_in
        put = body(AgentPut, {"owner": args.owner, "purpose": args.purpose,
                              "expires_at": expires_at})
        return await ops.describe_agent(b, args.tenant, args.client_id, put(b))

    return _run(args, describe, AGENT_COLS)


def cmd_user(args: argparse.Namespace) -> int:
    from broker.cli import _run

    status = "disabled" if args.action == "disable" else "active"
    return _run(args, lambda b: ops.set_user_status(b, args.tenant, args.sub, status,
                                                    args.reason), USER_COLS)


def cmd_revoke(args: argparse.Namespace) -> int:
    from broker.cli import _run, body

    request = body(RevokeRequest, {"by": args.by, "value": args.value, "reason": args.reason,
                                   "issuer": args.issuer})
    return _run(args, lambda b: revocation.revoke(b, args.tenant, request(b)), REVOKE_COLS)


def add_parser(sub: Any) -> None:
    """Add ``agent``, ``user`` and ``revoke`` to the ``tessera`` subcommands."""
    agent = sub.add_parser("agent", help="agent lifecycle: suspend, resume, retire, describe")
    asub = agent.add_subparsers(dest="action", required=True)
    for action in ("suspend", "resume", "retire", "set", "show"):
        sp = asub.add_parser(action)
        sp.add_argument("--tenant", required=True)
        sp.add_argument("client_id")
        sp.add_argument("--json", action="store_true", help="print JSON")
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
        sp.add_argument("--tenant", required=True)
        sp.add_argument("sub")
        sp.add_argument("--reason", default="")
        sp.add_argument("--json", action="store_true", help="print JSON")
    user.set_defaults(func=cmd_user)

    rev = sub.add_parser("revoke", help="revoke tokens by token, grant, agent, user, partner "
                         "or the whole tenant (universal logout)")
    rev.add_argument("--tenant", required=True)
    rev.add_argument("--by", required=True, choices=list(get_args(RevokeBy)))
    rev.add_argument("--value", help="the token, grant id, client_id, sub, partner id or "
                     "issuer (not for --by tenant)")
    rev.add_argument("--issuer", help="with --by user: the user's issuer (a partner or peer "
                     "tenant); --value is then their sub there")
    rev.add_argument("--reason", default="")
    rev.add_argument("--json", action="store_true", help="print JSON")
    rev.set_defaults(func=cmd_revoke)
