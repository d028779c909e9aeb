"""``tessera legacy-app``: register, list, disable and enable a tenant's SAML legacy apps.

    tessera legacy-app add --tenant T --entity-id E --acs URL [--acs URL ...]
                           [--name-id-format persistent|emailAddress|transient|unspecified]
                           [--attribute mail=email ...] [--name N] [--lifetime SECONDS]
                           [--sign-requests --sp-cert FILE ...]
    tessera legacy-app add --tenant T --metadata-file SP-METADATA.xml [--attribute ...]
    tessera legacy-app list    --tenant T
    tessera legacy-app disable --tenant T ENTITY_ID
    tessera legacy-app enable  --tenant T ENTITY_ID

``--attribute NAME=CLAIM``: the SAML attribute NAME carries the user's CLAIM (email, name,
groups, sub, or a custom claim of the upstream mapping).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from broker.endpoints import admin_legacy_apps as ops

COLUMNS = ("entity_id", "name", "status", "acs_urls", "name_id_format", "attribute_mapping")


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, claim = pair.partition("=")
        if not sep or not name or not claim:
            raise SystemExit(f"--attribute {pair!r}: NAME=CLAIM")
        mapping[name] = claim
    return mapping


def body_of(args: argparse.Namespace) -> dict[str, Any]:
    """The admin API body that ``legacy-app add`` sends."""
    body: dict[str, Any] = {}
    if args.metadata_file:
        body["metadata"] = Path(args.metadata_file).read_text()
    elif not args.entity_id or not args.acs:
        raise SystemExit("legacy-app add: --entity-id and --acs, or --metadata-file")
    for key, value in (("entity_id", args.entity_id), ("acs_urls", args.acs or None),
                       ("name", args.name), ("name_id_format", args.name_id_format),
                       ("assertion_lifetime", args.lifetime)):
        if value is not None:
            body[key] = value
    if args.attribute:
        body["attribute_mapping"] = _mapping(args.attribute)
    if args.sp_cert:
        body["sp_certs"] = [Path(f).read_text() for f in args.sp_cert]
    if args.sign_requests:
        body["want_authn_requests_signed"] = True
    return body


def cmd_legacy_app(args: argparse.Namespace) -> int:
    from broker.cli import _run  # broker.cli imports this module: import its helpers late

    tenant = args.tenant
    if args.action == "add":
        body = body_of(args)
        return _run(args, lambda b: ops.create_legacy_app(b, tenant, body), COLUMNS)
    if args.action == "list":
        return _run(args, lambda b: ops.list_legacy_apps(b, tenant), COLUMNS)
    status = "disabled" if args.action == "disable" else "active"
    return _run(args, lambda b: ops.set_legacy_app_status(b, tenant, args.entity_id, status),
                COLUMNS)


def add_parser(sub: Any) -> None:
    """Add ``legacy-app`` to the ``tessera`` subcommands (``sub``: argparse's subparsers)."""
    p = sub.add_parser("legacy-app", help="SAML service providers a tenant issues assertions to")
    asub = p.add_subparsers(dest="action", required=True)
    add = asub.add_parser("add", help="register an app (from fields or its SP metadata)")
    add.add_argument("--entity-id")
    add.add_argument("--acs", action="append", default=[],
                     help="an AssertionConsumerService URL (HTTP-POST); the first is the default")
    add.add_argument("--metadata-file", help="the app's SP metadata (EntityDescriptor XML)")
    add.add_argument("--name")
    add.add_argument("--name-id-format",
                     choices=["persistent", "emailAddress", "transient", "unspecified"])
    add.add_argument("--attribute", action="append", default=[],
                     help="NAME=CLAIM: SAML attribute NAME carries the user's CLAIM")
    add.add_argument("--lifetime", type=int, help="assertion lifetime in seconds (default 300)")
    add.add_argument("--sign-requests", action="store_true",
                     help="refuse AuthnRequests that are not signed by --sp-cert")
    add.add_argument("--sp-cert", action="append", default=[],
                     help="PEM certificate the app signs its AuthnRequests with")
    asub.add_parser("list")
    for action in ("disable", "enable"):
        asub.add_parser(action).add_argument("entity_id")
    for sp in asub.choices.values():
        sp.add_argument("--tenant", required=True)
        sp.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_legacy_app)
