"""``tessera legacy-app``: register, list, disable and enable a tenant's SAML legacy apps.

    tessera legacy-app add --tenant T --entity-id E --acs URL [--acs URL ...]
                           [--name-id-format persistent|emailAddress|transient|unspecified]
                           [--attribute mail=email ...] [--name N] [--lifetime SECONDS]
                           [--sign-requests --sp-cert FILE ...]
    tessera legacy-app add --tenant T --metadata-file SP-METADATA.xml [--attribute ...]
    tessera legacy-app update  --tenant T ENTITY_ID [--acs URL ...] [--name N] [--attribute ...]
                               [--name-id-format F] [--lifetime SECONDS] [--sp-cert FILE ...]
                               [--sign-requests | --no-sign-requests]
    tessera legacy-app list    --tenant T
    tessera legacy-app disable --tenant T ENTITY_ID
    tessera legacy-app enable  --tenant T ENTITY_ID
    tessera legacy-app delete  --tenant T ENTITY_ID

``--attribute NAME=CLAIM``: the SAML attribute NAME carries the user's CLAIM (email, name,
groups, sub, or a custom claim of the upstream mapping).
"""

from __future__ import annotations

import argparse
from typing import Any

from broker.cli.exits import USAGE, CliError
from broker.cli.inputs import pairs, read_text, shared_options
from broker.cli.transport import Job, op

COLUMNS = ("entity_id", "name", "status", "acs_urls", "name_id_format", "attribute_mapping")


def body_of(args: argparse.Namespace) -> dict[str, Any]:
    """The admin API body that ``legacy-app add`` or ``update`` sends (what is given)."""
    body: dict[str, Any] = {}
    if getattr(args, "metadata_file", None):
        body["metadata"] = read_text(args.metadata_file, "--metadata-file")
    elif args.action == "add" and (not args.entity_id or not args.acs):
        raise CliError("legacy-app add: --entity-id and --acs, or --metadata-file", USAGE)
    for key, value in (("entity_id", args.entity_id if args.action == "add" else None),
                       ("acs_urls", args.acs or None), ("name", args.name),
                       ("name_id_format", args.name_id_format),
                       ("assertion_lifetime", args.lifetime)):
        if value is not None:
            body[key] = value
    if args.attribute:
        body["attribute_mapping"] = pairs(args.attribute, "--attribute", "NAME=CLAIM")
    if args.sp_cert:
        body["sp_certs"] = [read_text(f, "--sp-cert") for f in args.sp_cert]
    if args.sign_requests is not None and (args.sign_requests or args.action == "update"):
        body["want_authn_requests_signed"] = args.sign_requests
    return body


def cmd_legacy_app(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "add":
        return op("create_legacy_app", COLUMNS, tenant=tenant, body=body_of(args))
    if args.action == "update":
        return op("update_legacy_app", COLUMNS, tenant=tenant, entity_id=args.entity_id,
                  body=body_of(args))
    if args.action == "list":
        return op("list_legacy_apps", COLUMNS, tenant=tenant)
    if args.action == "delete":
        return op("delete_legacy_app", COLUMNS, tenant=tenant, entity_id=args.entity_id)
    return op(f"{args.action}_legacy_app", COLUMNS, tenant=tenant,
              body={"entity_id": args.entity_id})


def add_parser(sub: Any) -> None:
    """Add ``legacy-app`` to the ``tessera`` subcommands (``sub``: argparse's subparsers)."""
    p = sub.add_parser("legacy-app", help="SAML service providers a tenant issues assertions to")
    asub = p.add_subparsers(dest="action", required=True)
    add = asub.add_parser("add", help="register an app (from fields or its SP metadata)")
    add.add_argument("--entity-id")
    add.add_argument("--metadata-file", help="the app's SP metadata (EntityDescriptor XML)")
    update = asub.add_parser("update", help="change what is given (lists are replaced)")
    update.add_argument("entity_id")
    for sp, change in ((add, False), (update, True)):
        sp.add_argument("--acs", action="append", default=[],
                        help="an AssertionConsumerService URL (HTTP-POST); the first is the "
                        "default")
        sp.add_argument("--name")
        sp.add_argument("--name-id-format",
                        choices=["persistent", "emailAddress", "transient", "unspecified"])
        sp.add_argument("--attribute", action="append", default=[],
                        help="NAME=CLAIM: SAML attribute NAME carries the user's CLAIM")
        sp.add_argument("--lifetime", type=int, help="assertion lifetime in seconds (default "
                        "300)")
        sp.add_argument("--sign-requests", default=None if change else False,
                        action=argparse.BooleanOptionalAction if change else "store_true",
                        help="refuse AuthnRequests that are not signed by --sp-cert")
        sp.add_argument("--sp-cert", action="append", default=[],
                        help="PEM certificate the app signs its AuthnRequests with")
    asub.add_parser("list")
    for action in ("disable", "enable", "delete"):
        asub.add_parser(action).add_argument("entity_id")
    shared_options(asub.choices.values())
    p.set_defaults(func=cmd_legacy_app)
