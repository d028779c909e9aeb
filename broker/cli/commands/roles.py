"""``tessera role``: who may administer a tenant.

    tessera role assign --tenant T (--user SUB | --group G | --client ID) --role ROLE
    tessera role remove --tenant T (--user SUB | --group G | --client ID) --role ROLE
    tessera role list --tenant T

ROLE is tenant_admin, tenant_auditor or registry_admin (the operator only). A user is named
by the ``sub`` tessera issues (``tessera`` users are made by their first login: to let
someone in before that, give their upstream group the role).
"""

from __future__ import annotations

import argparse
from typing import Any

from broker.cli.inputs import shared_options
from broker.cli.transport import Job, op

COLUMNS = ("kind", "subject", "role", "created_by")
ROLE_NAMES = ("tenant_admin", "tenant_auditor", "registry_admin")


def cmd_role(args: argparse.Namespace) -> Job:
    if args.action == "list":
        return op("list_role_assignments", COLUMNS, tenant=args.tenant)
    kind, subject = next((k, v) for k in ("user", "group", "client")
                         if (v := getattr(args, k)) is not None)
    name = "assign_role" if args.action == "assign" else "remove_role"
    return op(name, COLUMNS, tenant=args.tenant,
              body={"kind": kind, "subject": subject, "role": args.role})


def add_parser(sub: Any) -> None:
    role = sub.add_parser("role", help="administrative roles of a tenant's users, groups and "
                          "admin clients")
    rsub = role.add_subparsers(dest="action", required=True)
    for action in ("assign", "remove"):
        ra = rsub.add_parser(action)
        who = ra.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="a user's sub at the tenant")
        who.add_argument("--group", help="an upstream group: every user in it")
        who.add_argument("--client", help="an admin client (client credentials + DPoP)")
        ra.add_argument("--role", required=True, choices=ROLE_NAMES)
    rsub.add_parser("list")
    shared_options(rsub.choices.values())
    role.set_defaults(func=cmd_role)
