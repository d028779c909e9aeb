"""``tessera resource``: a tenant's resource servers (APIs, MCP servers).

    tessera resource add --tenant T NAME --identifier URL [--display-name D]
                         [--scope SCOPE[=DESCRIPTION] ...] [--default-scope S ...]
                         [--client CLIENT_ID ...] [--lifetime SECONDS]
                         [--dpop-required] [--mtls-required]
    tessera resource update --tenant T NAME [the same options but --identifier]
    tessera resource list --tenant T | show | delete --tenant T NAME
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from broker.cli.inputs import given, shared_options
from broker.cli.transport import Job, op

RESOURCE_COLS = ("name", "identifier", "scopes", "default_scopes", "allowed_clients",
                 "access_token_lifetime", "require_dpop", "require_mtls",
                 "resource_metadata_url")


def _scopes(values: Sequence[str] | None) -> dict[str, str] | None:
    """``SCOPE=DESCRIPTION`` (or a bare ``SCOPE``) options as the scope table."""
    if not values:
        return None
    table: dict[str, str] = {}
    for value in values:
        scope, _, description = value.partition("=")
        table[scope] = description
    return table


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "display_name": args.display_name, "scopes": _scopes(args.scope),
        "default_scopes": args.default_scope or None, "allowed_clients": args.client or None,
        "access_token_lifetime": args.lifetime,
        "require_dpop": True if args.dpop_required else None,
        "require_mtls": True if args.mtls_required else None,
    }


def cmd_resource(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "add":
        return op("create_resource", RESOURCE_COLS, tenant=tenant, body=given({
            **_fields(args), "name": args.name, "identifier": args.identifier}))
    if args.action == "list":
        return op("list_resources", RESOURCE_COLS, tenant=tenant)
    if args.action == "update":
        patch = given(_fields(args))
        if args.no_dpop:
            patch["require_dpop"] = False
        if args.no_mtls:
            patch["require_mtls"] = False
        return op("update_resource", RESOURCE_COLS, tenant=tenant, resource=args.name,
                  body=patch)
    name = "get_resource" if args.action == "show" else "delete_resource"
    return op(name, RESOURCE_COLS, tenant=tenant, resource=args.name)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--display-name")
    p.add_argument("--scope", action="append", metavar="SCOPE[=DESCRIPTION]",
                   help="a scope the resource defines (repeat)")
    p.add_argument("--default-scope", action="append", metavar="SCOPE",
                   help="granted when a request names no scope (repeat)")
    p.add_argument("--client", action="append", metavar="CLIENT_ID",
                   help="a client that may get tokens for it (repeat; none: any client)")
    p.add_argument("--lifetime", type=int, help="access token lifetime ceiling, seconds")
    p.add_argument("--dpop-required", action="store_true", help="DPoP-bound tokens only")
    p.add_argument("--mtls-required", action="store_true",
                   help="certificate-bound tokens only (RFC 8705)")


def add_parser(sub: Any) -> None:
    res = sub.add_parser("resource", help="resource servers (APIs, MCP servers) of a tenant")
    rsub = res.add_subparsers(dest="action", required=True)
    add = rsub.add_parser("add", help="register a resource server")
    add.add_argument("name")
    add.add_argument("--identifier", required=True,
                     help="the resource's URL (RFC 8707 resource, the tokens' aud)")
    _options(add)
    upd = rsub.add_parser("update", help="change a resource server")
    upd.add_argument("name")
    _options(upd)
    upd.add_argument("--no-dpop", action="store_true", help="stop requiring DPoP")
    upd.add_argument("--no-mtls", action="store_true", help="stop requiring mTLS")
    rsub.add_parser("list")
    for action in ("show", "delete"):
        rsub.add_parser(action).add_argument("name")
    shared_options(rsub.choices.values())
    res.set_defaults(func=cmd_resource)
