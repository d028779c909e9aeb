"""``tessera tenant``, ``webhook``, ``audit`` and ``detail-type`` (``keys``: ``commands.keys``).

    tessera tenant create NAME [--display-name D] [--key-alg ES256|EdDSA|RS256]
                               [--rotation-hours H] [--dpop-nonce]
    tessera tenant list | update NAME [--display-name D] [--set KEY=VALUE ...]
    tessera tenant delete NAME --yes | disable NAME | enable NAME
    tessera webhook set --tenant T (--url URL | --clear) | rotate-secret | show
    tessera audit verify|export --tenant T
    tessera detail-type add --tenant T --type TYPE --schema-file F | list --tenant T
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from broker.admin.models.tenants import DEFAULT_OVERLAP
from broker.cli import output
from broker.cli.exits import CHECK_FAILED, OK, USAGE, CliError
from broker.cli.inputs import NULL, given, json_file, pairs, shared_options
from broker.cli.transport import Job, op

TENANT_COLS = ("id", "status", "issuer")
WEBHOOK_COLS = ("tenant", "url", "secret", "secret_revealed", "previous_valid_until")


def cmd_tenant(args: argparse.Namespace) -> Job:
    name = getattr(args, "name", None)
    if args.action == "create":
        settings: dict[str, Any] = {"key_alg": args.key_alg}
        if args.rotation_hours is not None:
            settings["key_rotation_seconds"] = int(args.rotation_hours * 3600)
        if args.dpop_nonce:
            settings["dpop_nonce_required"] = True
        return op("create_tenant", TENANT_COLS, body=given(
            {"name": name, "settings": settings, "display_name": args.display_name}))
    if args.action == "list":
        return op("list_tenants", TENANT_COLS)
    if args.action == "update":
        return op("update_tenant", TENANT_COLS, tenant=name, body=given({
            "display_name": args.display_name,
            "settings": pairs(args.set, "--set", as_json=True) if args.set else None}))
    if args.action == "delete":
        if not args.yes:
            raise CliError(f"archiving tenant {name!r} is final (it answers nothing any more, "
                           "its tokens are revoked); repeat with --yes", USAGE)
        return op("archive_tenant", TENANT_COLS, tenant=name)
    return op(f"{args.action}_tenant", TENANT_COLS, tenant=name)


def cmd_webhook(args: argparse.Namespace) -> Job:
    if args.action == "show":
        return op("get_webhook", WEBHOOK_COLS, tenant=args.tenant)
    if args.action == "set":
        return op("put_webhook", WEBHOOK_COLS, tenant=args.tenant,
                  body=given({"url": NULL if args.clear else args.url}))
    return op("rotate_webhook_secret", WEBHOOK_COLS, tenant=args.tenant,
              body={"overlap_seconds": args.overlap})


def cmd_audit(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "export":
        def lines(events: Any) -> int:
            output.json_lines(events)
            return OK

        return Job(op("export_audit", tenant=tenant).run, render=lines)

    def report(value: Any) -> int:
        if args.json:
            output.show(value, as_json=True)
        elif value["intact"]:
            print(f"audit chain of {tenant}: intact, {value['events']} events")
        else:
            print(f"audit chain of {tenant}: BROKEN at event {value['first_broken_seq']}: "
                  f"{value['reason']}", file=sys.stdout)
        return OK if value["intact"] else CHECK_FAILED

    return Job(op("verify_audit", tenant=tenant).run, render=report)


def cmd_detail_type(args: argparse.Namespace) -> Job:
    columns = ("type", "description")
    if args.action == "list":
        return op("list_detail_types", columns, tenant=args.tenant)
    return op("register_detail_type", columns, tenant=args.tenant, body={
        "type": args.type, "schema": json_file(args.schema_file, "--schema-file"),
        "description": args.description})


def add_parser(sub: Any) -> None:
    tenant = sub.add_parser("tenant", help="manage tenants")
    tsub = tenant.add_subparsers(dest="action", required=True)
    tc = tsub.add_parser("create")
    tc.add_argument("name")
    tc.add_argument("--display-name")
    tc.add_argument("--key-alg", default="ES256", choices=["ES256", "EdDSA", "RS256"])
    tc.add_argument("--rotation-hours", type=float, help="key rotation period (default 24)")
    tc.add_argument("--dpop-nonce", action="store_true", help="require DPoP server nonces")
    tsub.add_parser("list")
    tu = tsub.add_parser("update", help="change the display name or settings (merge patch)")
    tu.add_argument("name")
    tu.add_argument("--display-name")
    tu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting (VALUE as JSON, else a string; null resets the default), "
                    "e.g. max_token_lifetime=600")
    td = tsub.add_parser("delete", help="archive the tenant (final; rows and audit stay)")
    td.add_argument("name")
    td.add_argument("--yes", action="store_true", help="yes, archive it")
    for action in ("disable", "enable"):
        tsub.add_parser(action).add_argument("name")
    shared_options(tsub.choices.values(), tenant=False)
    tenant.set_defaults(func=cmd_tenant)

    hook = sub.add_parser("webhook", help="a tenant's webhook URL and signing secret")
    hsub = hook.add_subparsers(dest="action", required=True)
    hs = hsub.add_parser("set", help="set the URL (prints the secret if never shown)")
    target = hs.add_mutually_exclusive_group(required=True)
    target.add_argument("--url")
    target.add_argument("--clear", action="store_true", help="send no more events")
    hr = hsub.add_parser("rotate-secret", help="a new secret (printed once); the old one "
                         "signs too for --overlap seconds")
    hr.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    hsub.add_parser("show")
    shared_options(hsub.choices.values())
    hook.set_defaults(func=cmd_webhook)

    aud = sub.add_parser("audit", help="the tenant's hash-chained audit log")
    asub = aud.add_subparsers(dest="action", required=True)
    asub.add_parser("verify", help="check the chain: exit 0 intact, 1 broken")
    asub.add_parser("export", help="every event, oldest first, one JSON object a line")
    shared_options(asub.choices.values())
    aud.set_defaults(func=cmd_audit)

    dtp = sub.add_parser("detail-type", help="RAR authorization_details types of a tenant")
    dsub = dtp.add_subparsers(dest="action", required=True)
    da = dsub.add_parser("add")
    da.add_argument("--type", required=True)
    da.add_argument("--schema-file", required=True, help="JSON Schema (2020-12) of one object")
    da.add_argument("--description", default="")
    dsub.add_parser("list")
    shared_options(dsub.choices.values())
    dtp.set_defaults(func=cmd_detail_type)
