"""``tessera api-key``: create, list, rotate and revoke a tenant's API keys.

    tessera api-key create --tenant T --client C --name N [--scope S ...] [--expires-in SECONDS]
    tessera api-key list   --tenant T [--client C]
    tessera api-key rotate --tenant T KEY_ID [--overlap SECONDS]
    tessera api-key revoke --tenant T KEY_ID

``create`` and ``rotate`` print the key (``api_key``) this once; nothing prints it again.
"""

from __future__ import annotations

import argparse
from typing import Any

from broker.admin.models.api_keys import DEFAULT_OVERLAP
from broker.cli.inputs import given, shared_options
from broker.cli.transport import Job, op

COLUMNS = ("key_id", "client_id", "name", "status", "scopes", "expires_at", "last_used_at",
           "api_key")


def cmd_api_key(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "create":
        return op("create_api_key", COLUMNS, tenant=tenant, body=given(
            {"client_id": args.client, "name": args.name, "scopes": args.scope,
             "expires_in": args.expires_in}))
    if args.action == "list":
        return op("list_api_keys", COLUMNS, tenant=tenant,
                  query={"client_id": args.client} if args.client else None)
    if args.action == "rotate":
        return op("rotate_api_key", COLUMNS, tenant=tenant, key_id=args.key_id,
                  body={"overlap_seconds": args.overlap})
    return op("revoke_api_key", COLUMNS, tenant=tenant, key_id=args.key_id)


def add_parser(sub: Any) -> None:
    """Add ``api-key`` to the ``tessera`` subcommands (``sub``: argparse's subparsers)."""
    p = sub.add_parser("api-key", help="API keys of a tenant for agents and services")
    asub = p.add_subparsers(dest="action", required=True)
    create = asub.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--client", required=True, help="the client the key acts as")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", default=[],
                        help="a scope of the key (default: all of the client's)")
    create.add_argument("--expires-in", type=int, help="seconds (default: never expires)")
    listing = asub.add_parser("list")
    listing.add_argument("--client", help="only this client's keys")
    rotate = asub.add_parser("rotate", help="a new secret; the old one works --overlap more")
    rotate.add_argument("key_id")
    rotate.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                        help=f"seconds the previous key keeps working "
                             f"(default {DEFAULT_OVERLAP})")
    revoke = asub.add_parser("revoke", help="revoke at once")
    revoke.add_argument("key_id")
    shared_options(asub.choices.values())
    p.set_defaults(func=cmd_api_key)
