"""``tessera upstream``: the enterprise IdPs a tenant's users log in through.

    tessera upstream add-oidc --tenant T --name N --issuer ISS --client-id ID
                              [--client-secret-env VAR] [--client-auth M] [--scope S ...]
    tessera upstream add-saml --tenant T --name N (--metadata-file F | --metadata-url U)
    tessera upstream update --tenant T NAME [...] | refresh-metadata --tenant T NAME
    tessera upstream list | disable | enable | delete --tenant T [NAME]

A client secret comes from the environment variable named by ``--client-secret-env``, never
from the command line (where other users of the machine could read it).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from broker.cli.exits import USAGE, CliError
from broker.cli.inputs import given, json_file, json_option, read_text, shared_options
from broker.cli.transport import Job, op

UPSTREAM_COLS = ("name", "kind", "status", "redirect_uri", "acs_url", "sp_metadata_url")


def _secret(args: argparse.Namespace) -> str | None:
    name = getattr(args, "client_secret_env", None)
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise CliError(f"--client-secret-env {name}: the variable is not set", USAGE)
    return value


def cmd_upstream(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "list":
        return op("list_upstreams", UPSTREAM_COLS, tenant=tenant)
    if args.action in ("disable", "enable", "delete"):
        return op(f"{args.action}_upstream", UPSTREAM_COLS, tenant=tenant, upstream=args.name)
    if args.action == "refresh-metadata":
        return op("refresh_upstream_metadata", UPSTREAM_COLS, tenant=tenant,
                  upstream=args.name, body=given({
                      "metadata_xml": read_text(args.metadata_file, "--metadata-file"),
                      "metadata_url": args.metadata_url}))
    secret = _secret(args)
    mapping = json_option(args.mapping, "--mapping")
    if args.action == "update":
        oidc = {**({"client_secret": secret} if secret else {}),
                **({"scopes": args.scope} if args.scope else {})}
        patch = given({"display_name": args.display_name, "domains": args.domain or None,
                       "mapping": mapping, "oidc": oidc or None})
        patch.update(json_file(args.patch_file, "--patch-file") or {})
        return op("update_upstream", UPSTREAM_COLS, tenant=tenant, upstream=args.name,
                  body=patch)
    data: dict[str, Any] = {"name": args.name, "kind": args.action.removeprefix("add-"),
                            "display_name": args.display_name or args.name,
                            "domains": args.domain, "mapping": mapping}
    if args.action == "add-oidc":
        data["oidc"] = {"issuer": args.issuer, "client_id": args.client_id,
                        "client_auth": args.client_auth, "use_userinfo": args.userinfo,
                        **({"client_secret": secret} if secret else {}),
                        **({"scopes": args.scope} if args.scope else {})}
    else:
        data["saml"] = ({"metadata_xml": read_text(args.metadata_file, "--metadata-file")}
                        if args.metadata_file else {"metadata_url": args.metadata_url})
    return op("create_upstream", UPSTREAM_COLS, tenant=tenant, body=given(data))


def add_parser(sub: Any) -> None:
    ups = sub.add_parser("upstream", help="enterprise IdPs a tenant's users log in through")
    usub = ups.add_subparsers(dest="action", required=True)
    uo = usub.add_parser("add-oidc", help="an OpenID Connect IdP (discovery from --issuer)")
    uo.add_argument("--issuer", required=True)
    uo.add_argument("--client-id", required=True, help="tessera's client_id at the IdP")
    uo.add_argument("--client-secret-env", help="name of the environment variable holding "
                    "the client secret (never a command-line argument)")
    uo.add_argument("--client-auth", default="client_secret_basic",
                    choices=["client_secret_basic", "client_secret_post", "private_key_jwt"])
    uo.add_argument("--scope", action="append", default=[])
    uo.add_argument("--userinfo", action="store_true", help="also read the userinfo endpoint")
    us = usub.add_parser("add-saml", help="a SAML 2.0 IdP (from its metadata)")
    source = us.add_mutually_exclusive_group(required=True)
    source.add_argument("--metadata-file")
    source.add_argument("--metadata-url")
    for sp in (uo, us):
        sp.add_argument("--name", required=True)
        sp.add_argument("--display-name")
        sp.add_argument("--domain", action="append", default=[],
                        help="e-mail domain routed here by home-realm discovery")
        sp.add_argument("--mapping", help='claim mapping JSON, e.g. {"subject": "oid"}')
    uu = usub.add_parser("update", help="change what is given (lists are replaced)")
    uu.add_argument("name")
    uu.add_argument("--display-name")
    uu.add_argument("--domain", action="append", default=[])
    uu.add_argument("--mapping", help="claim mapping JSON (replaces the mapping)")
    uu.add_argument("--client-secret-env", help="OIDC: the variable holding a new secret")
    uu.add_argument("--scope", action="append", default=[], help="OIDC scopes")
    uu.add_argument("--patch-file", help='a JSON merge patch, e.g. {"oidc": {...}}')
    ur = usub.add_parser("refresh-metadata", help="SAML: read the IdP's metadata again "
                         "(from the URL it was added from, unless given)")
    ur.add_argument("name")
    fresh = ur.add_mutually_exclusive_group()
    fresh.add_argument("--metadata-file")
    fresh.add_argument("--metadata-url")
    usub.add_parser("list")
    for action in ("disable", "enable", "delete"):
        usub.add_parser(action).add_argument("name")
    shared_options(usub.choices.values())
    ups.set_defaults(func=cmd_upstream)
