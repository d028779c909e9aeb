"""``tessera partner``, ``trust`` and ``connection``: the trust registry, a tenant's trust
links and its managed connections.

    tessera partner register --issuer ISS --name N [--id ID] [--jwks-uri U | --jwks-file F]
    tessera partner list | update PARTNER [...] | activate|suspend|revoke PARTNER
    tessera trust add --tenant T (--partner P | --peer-tenant T2) [--accept] [--send] [...]
    tessera trust direction|update --tenant T LINK [--accept/--no-accept] [--send/--no-send]
    tessera trust list --tenant T | suspend|resume|revoke --tenant T LINK
    tessera connection set --tenant T --client C --audience A --remote-client-id R [...]
    tessera connection list --tenant T | delete --tenant T --client C --audience A
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from broker.cli.inputs import NULL, given, json_file, shared_options
from broker.cli.transport import Job, Transport, op

PARTNER_COLS = ("id", "issuer", "status", "display_name")
LINK_COLS = ("id", "issuer", "directions", "status", "scope_ceiling", "expires_at")
CONNECTION_COLS = ("client_id", "audience", "rules", "default_rule", "remote_client_id")


def cmd_partner(args: argparse.Namespace) -> Job:
    if args.action == "register":
        return op("register_partner", PARTNER_COLS, body=given({
            "issuer": args.issuer, "display_name": args.name, "id": args.id,
            "jwks_uri": args.jwks_uri, "jwks": json_file(args.jwks_file, "--jwks-file"),
            "contact": args.contact, "expires_at": args.expires_at}))
    if args.action == "list":
        return op("list_partners", PARTNER_COLS)
    if args.action == "update":
        patch = given({
            "display_name": args.name, "contact": args.contact, "jwks_uri": args.jwks_uri,
            "jwks": json_file(args.jwks_file, "--jwks-file"),
            "expires_at": NULL if args.no_expiry else args.expires_at})
        patch.update(json_file(args.patch_file, "--patch-file") or {})
        return op("update_partner", PARTNER_COLS, partner=args.partner, body=patch)
    return op(f"{args.action}_partner", PARTNER_COLS, partner=args.partner)


def _directions(accept: bool | None, send: bool | None,
                current: Mapping[str, Any] | None = None) -> list[str]:
    now = set(current.get("directions") or ()) if current else set()
    flows = {"accept": accept if accept is not None else "accept" in now,
             "send": send if send is not None else "send" in now}
    return [d for d, on in flows.items() if on]


def cmd_trust(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "add":
        return op("add_trust_link", LINK_COLS, tenant=tenant, body=given({
            "partner": args.partner, "tenant": args.peer_tenant,
            "scope_ceiling": args.scope or None, "expires_at": args.expires_at,
            "directions": _directions(args.accept, args.send)}))
    if args.action == "list":
        return op("list_trust_links", LINK_COLS, tenant=tenant)
    if args.action in ("direction", "update"):
        async def change(t: Transport) -> Any:
            fields: dict[str, Any] = {}
            if args.accept is not None or args.send is not None:
                link = await t.call("get_trust_link", {"tenant": tenant, "link": args.link})
                fields["directions"] = _directions(args.accept, args.send, link)
            if args.action == "update":
                if args.scope or args.no_ceiling:
                    fields["scope_ceiling"] = None if args.no_ceiling else args.scope
                if args.expires_at is not None or args.no_expiry:
                    fields["expires_at"] = None if args.no_expiry else args.expires_at
            return await t.call("update_trust_link", {"tenant": tenant, "link": args.link},
                                body=fields)

        return Job(change, LINK_COLS)
    return op(f"{args.action}_trust_link", LINK_COLS, tenant=tenant, link=args.link)


def cmd_connection(args: argparse.Namespace) -> Job:
    if args.action == "set":
        rules = {s: "grant" for s in args.grant}
        rules.update({s: "approve" for s in args.approve})
        rules.update({s: "deny" for s in args.deny})
        return op("put_managed_connection", CONNECTION_COLS, tenant=args.tenant, body=given({
            "client_id": args.client, "audience": args.audience, "rules": rules,
            "remote_client_id": args.remote_client_id, "resources": args.resource,
            "max_lifetime": args.max_lifetime, "default_rule": args.default_rule,
            "approver": args.approver}))
    if args.action == "list":
        return op("list_managed_connections", CONNECTION_COLS, tenant=args.tenant)
    return op("delete_managed_connection", CONNECTION_COLS, tenant=args.tenant,
              client_id=args.client, audience=args.audience)


def add_parser(sub: Any) -> None:
    partner = sub.add_parser("partner", help="partners in the trust registry")
    psub = partner.add_subparsers(dest="action", required=True)
    pr = psub.add_parser("register")
    pr.add_argument("--issuer", required=True)
    pr.add_argument("--name", required=True, help="display name")
    pr.add_argument("--id")
    pr.add_argument("--jwks-uri")
    pr.add_argument("--jwks-file", help="inline public JWKS instead of --jwks-uri")
    pr.add_argument("--contact")
    pr.add_argument("--expires-at", type=float, help="epoch seconds")
    psub.add_parser("list")
    pu = psub.add_parser("update", help="change what is given")
    pu.add_argument("partner")
    pu.add_argument("--name", help="display name")
    pu.add_argument("--contact")
    keys_from = pu.add_mutually_exclusive_group()
    keys_from.add_argument("--jwks-uri")
    keys_from.add_argument("--jwks-file", help="inline public JWKS (replaces --jwks-uri)")
    expiry = pu.add_mutually_exclusive_group()
    expiry.add_argument("--expires-at", type=float, help="epoch seconds")
    expiry.add_argument("--no-expiry", action="store_true")
    pu.add_argument("--patch-file", help="a JSON merge patch (metadata, ...)")
    for action in ("activate", "suspend", "revoke"):
        psub.add_parser(action).add_argument("partner")
    shared_options(psub.choices.values(), tenant=False)
    partner.set_defaults(func=cmd_partner)

    trust_p = sub.add_parser("trust", help="trust links of a tenant")
    trsub = trust_p.add_subparsers(dest="action", required=True)
    ta_ = trsub.add_parser("add")
    who = ta_.add_mutually_exclusive_group(required=True)
    who.add_argument("--partner")
    who.add_argument("--peer-tenant")
    ta_.add_argument("--accept", action="store_true",
                     help="redeem ID-JAGs and assertions the peer issues")
    ta_.add_argument("--send", action="store_true",
                     help="issue ID-JAGs whose audience is the peer")
    ta_.add_argument("--scope", action="append", default=[], help="scope ceiling (repeat)")
    ta_.add_argument("--expires-at", type=float)
    td_ = trsub.add_parser("direction", help="change which way identity flows over a link")
    tu_ = trsub.add_parser("update", help="change directions, scope ceiling or expiry")
    for sp in (td_, tu_):
        sp.add_argument("link")
        sp.add_argument("--accept", action=argparse.BooleanOptionalAction, default=None)
        sp.add_argument("--send", action=argparse.BooleanOptionalAction, default=None)
    ceiling = tu_.add_mutually_exclusive_group()
    ceiling.add_argument("--scope", action="append", default=[],
                         help="the new scope ceiling (repeat)")
    ceiling.add_argument("--no-ceiling", action="store_true")
    until = tu_.add_mutually_exclusive_group()
    until.add_argument("--expires-at", type=float)
    until.add_argument("--no-expiry", action="store_true")
    trsub.add_parser("list")
    for action in ("suspend", "resume", "revoke"):
        trsub.add_parser(action).add_argument("link")
    shared_options(trsub.choices.values())
    trust_p.set_defaults(func=cmd_trust)

    conn = sub.add_parser("connection", help="managed connections (scope rules per audience)")
    mcsub = conn.add_subparsers(dest="action", required=True)
    ms = mcsub.add_parser("set")
    ms.add_argument("--client", required=True)
    ms.add_argument("--audience", required=True, help="the resource AS issuer")
    ms.add_argument("--remote-client-id", required=True,
                    help="the agent's client_id at the resource AS")
    ms.add_argument("--grant", action="append", default=[])
    ms.add_argument("--approve", action="append", default=[])
    ms.add_argument("--deny", action="append", default=[])
    ms.add_argument("--default-rule", default="deny", choices=["grant", "approve", "deny"])
    ms.add_argument("--resource", action="append", default=[])
    ms.add_argument("--max-lifetime", type=int, default=300)
    ms.add_argument("--approver", help="group:<name> approves the approve scopes "
                    "(default: the user themself)")
    mcsub.add_parser("list")
    md = mcsub.add_parser("delete")
    md.add_argument("--client", required=True)
    md.add_argument("--audience", required=True)
    shared_options(mcsub.choices.values())
    conn.set_defaults(func=cmd_connection)
