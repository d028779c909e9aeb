"""``tessera registry``: what a registry admin does about partner self-registration.

    tessera registry invite [--entity-id URL] [--lifetime SECONDS] [--note TEXT]
    tessera registry invitations | uninvite INVITATION
    tessera registry add-entity ENTITY_ID [--id ID] [--name NAME]
    tessera registry pending | approve PARTNER [--reason R] | reject PARTNER [--reason R]
    tessera registry refresh PARTNER
    tessera registry webhook (URL | --none) | settings

and ``tessera federation request``: what a tenant of this broker, registered as a partner
elsewhere, signs with its federation keys to ask that registry for its status or a refresh.

    tessera federation request --tenant T --registry REGISTRY_ID [--lifetime SECONDS]
"""

from __future__ import annotations

import argparse
import json
import secrets
from typing import Any

from adapters.entity_statement import MAX_REQUEST_LIFETIME, REQUEST_TYP
from broker.cli.exits import OK, USAGE, CliError
from broker.cli.inputs import given, shared_options
from broker.cli.transport import Job, Local, Transport, op
from registry import federation

INVITATION_COLS = ("id", "code", "entity_id", "state", "expires_at", "partner")
PARTNER_COLS = ("id", "issuer", "status", "display_name", "keys_refreshed_at")
SETTINGS_COLS = ("webhook_url", "secret", "secret_revealed")


def cmd_registry(args: argparse.Namespace) -> Job:
    action = args.action
    if action == "invite":
        return op("issue_invitation", INVITATION_COLS, body=given({
            "entity_id": args.entity_id, "lifetime_seconds": args.lifetime,
            "note": args.note}))
    if action == "invitations":
        return op("list_invitations", INVITATION_COLS)
    if action == "uninvite":
        return op("revoke_invitation", INVITATION_COLS, invitation=args.invitation)
    if action == "add-entity":
        return op("register_entity", PARTNER_COLS, body=given({
            "entity_id": args.entity_id, "id": args.id, "display_name": args.name}))
    if action == "pending":
        return op("list_pending_registrations", PARTNER_COLS)
    if action in ("approve", "reject"):
        return op(f"{action}_partner", PARTNER_COLS, partner=args.partner,
                  body=given({"reason": args.reason}))
    if action == "refresh":
        return op("refresh_partner", PARTNER_COLS, partner=args.partner)
    if action == "webhook":
        return op("put_registry_settings", SETTINGS_COLS,
                  body={"webhook_url": None if args.none else args.webhook_url})
    return op("get_registry_settings", SETTINGS_COLS)


def cmd_federation(args: argparse.Namespace) -> Job:
    """Sign an entity request as the tenant (local deployment only: its federation keys)."""
    if not 0 < args.lifetime <= MAX_REQUEST_LIFETIME:
        raise CliError(f"--lifetime: 1 to {MAX_REQUEST_LIFETIME} seconds", USAGE)

    async def sign(t: Transport) -> dict[str, Any]:
        if not isinstance(t, Local):
            raise CliError("federation request signs with the local deployment's keys", USAGE)
        broker = t.broker
        tenant = await broker.tenant(args.tenant)  # NotFound: exit 4
        slot = federation.tenant_keys(tenant.id)
        if not (await broker.keys.jwks(slot))["keys"]:
            await broker.keys.ensure(slot)
            broker.keys.invalidate(slot)
        claims = federation.entity_request(tenant.issuer, args.registry, broker.clock.now(),
                                           args.lifetime, secrets.token_urlsafe(12))
        return {"request": await broker.keys.sign(slot, {"typ": REQUEST_TYP}, claims)}

    def render(value: Any) -> int:
        print(json.dumps(value, indent=2) if args.json else value["request"])
        return OK

    return Job(sign, render=render)


def add_parser(sub: Any) -> None:
    fed = sub.add_parser("federation", help="this broker's tenants as federation entities")
    fsub = fed.add_subparsers(dest="action", required=True)
    freq = fsub.add_parser("request", help="sign an entity-request+jwt as a tenant (for "
                           "/registry/status and /registry/refresh of a registry it joined)")
    freq.add_argument("--registry", required=True, help="the registry's entity id (aud)")
    freq.add_argument("--lifetime", type=int, default=60, help="seconds (at most 300)")
    shared_options([freq])
    freq.set_defaults(func=cmd_federation, local_only=True)

    reg = sub.add_parser("registry", help="partner self-registration: invitations, approvals")
    rsub = reg.add_subparsers(dest="action", required=True)
    inv = rsub.add_parser("invite", help="issue a one-use invitation code (shown once)")
    inv.add_argument("--entity-id", help="the only entity the code may register")
    inv.add_argument("--lifetime", type=int, help="seconds (default 7 days, at most 30)")
    inv.add_argument("--note")
    un = rsub.add_parser("uninvite", help="revoke an open invitation")
    un.add_argument("invitation")
    add = rsub.add_parser("add-entity",
                          help="register an entity from its OpenID Federation configuration")
    add.add_argument("entity_id")
    add.add_argument("--id", help="partner id (default fed-<random>)")
    add.add_argument("--name", help="display name (default: the one it declares)")
    decide = [rsub.add_parser(verb, help=f"{verb} a pending registration")
              for verb in ("approve", "reject")]
    for sp in decide:
        sp.add_argument("partner")
        sp.add_argument("--reason")
    ref = rsub.add_parser("refresh", help="re-read a partner's keys from its configuration")
    ref.add_argument("partner")
    hook = rsub.add_parser("webhook", help="where registry admins are notified")
    target = hook.add_mutually_exclusive_group(required=True)
    target.add_argument("webhook_url", nargs="?", metavar="URL")  # not args.url: --url
    target.add_argument("--none", action="store_true", help="notify nowhere")
    for name in ("invitations", "pending", "settings"):
        rsub.add_parser(name)
    shared_options(rsub.choices.values(), tenant=False)
    reg.set_defaults(func=cmd_registry)


