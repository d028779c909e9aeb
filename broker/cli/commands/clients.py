"""``tessera client``: a tenant's OAuth clients.

    tessera client create --tenant T --name N [--client-id ID] [--auth-method M] [options]
    tessera client update --tenant T CLIENT_ID [options] [--patch-file F]
    tessera client rotate-secret --tenant T CLIENT_ID [--overlap SECONDS]
    tessera client list | disable | enable | delete --tenant T [CLIENT_ID]
"""

from __future__ import annotations

import argparse
from typing import Any

from broker.admin.models.tenants import DEFAULT_OVERLAP
from broker.cli.inputs import given, json_file, shared_options
from broker.cli.transport import Job, op

CLIENT_COLS = ("client_id", "name", "status", "token_endpoint_auth_method", "scopes",
               "audiences", "dpop_bound_access_tokens", "client_secret",
               "previous_secret_valid_until")
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none",
                "tls_client_auth", "self_signed_tls_client_auth"]


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """What the client options given say (create and update share them)."""
    fields: dict[str, Any] = {
        "name": args.name, "scopes": args.scope or None, "audiences": args.audience or None,
        "jwks": json_file(args.jwks_file, "--jwks-file"),
        "access_token_lifetime": args.lifetime,
        "dpop_bound_access_tokens": args.dpop_required,
        "redirect_uris": args.redirect_uri or None,
        "post_logout_redirect_uris": args.post_logout_uri or None,
        "authorization_details_types": args.detail_type or None,
        "require_pushed_authorization_requests": args.require_par,
        "tls_client_auth_subject_dn": args.tls_subject_dn,
        "tls_client_auth_san_uri": args.tls_san_uri, "tls_client_auth_san_dns": args.tls_san_dns,
        "tls_client_certificate_bound_access_tokens": args.tls_bound,
        "backchannel_token_delivery_mode": args.ciba_mode,
        "backchannel_client_notification_endpoint": args.ciba_notification_endpoint,
    }
    if args.third_party is not None:
        fields["first_party"] = not args.third_party
    return fields


def cmd_client(args: argparse.Namespace) -> Job:
    tenant = args.tenant
    if args.action == "create":
        return op("create_client", CLIENT_COLS, tenant=tenant, body=given({
            **_fields(args), "client_id": args.client_id,
            "token_endpoint_auth_method": args.auth_method}))
    if args.action == "list":
        return op("list_clients", CLIENT_COLS, tenant=tenant)
    if args.action == "update":
        patch = given(_fields(args))
        patch.update(json_file(args.patch_file, "--patch-file") or {})
        return op("update_client", CLIENT_COLS, tenant=tenant, client_id=args.client_id,
                  body=patch)
    if args.action == "rotate-secret":
        return op("rotate_client_secret", CLIENT_COLS, tenant=tenant, client_id=args.client_id,
                  body={"overlap_seconds": args.overlap})
    return op(f"{args.action}_client", CLIENT_COLS, tenant=tenant, client_id=args.client_id)


def _options(p: argparse.ArgumentParser, *, update: bool) -> None:
    """The registration options of ``client create`` and ``client update`` (in an update,
    an option not given leaves the setting as it is)."""
    flag: dict[str, Any] = ({"action": argparse.BooleanOptionalAction, "default": None}
                            if update else {"action": "store_true"})
    many: dict[str, Any] = {"action": "append", "default": []}
    p.add_argument("--name", required=not update)
    p.add_argument("--scope", **many)
    p.add_argument("--audience", **many)
    p.add_argument("--dpop-required", **flag)
    p.add_argument("--jwks-file", help="public JWKS for private_key_jwt (and with x5c for "
                   "self_signed_tls_client_auth)")
    p.add_argument("--tls-subject-dn", help="tls_client_auth: the certificate's subject DN "
                   "(RFC 4514)")
    p.add_argument("--tls-san-uri", help="tls_client_auth: a URI SAN, e.g. a SPIFFE ID "
                   "spiffe://trust-domain/workload")
    p.add_argument("--tls-san-dns", help="tls_client_auth: a DNS SAN")
    p.add_argument("--tls-bound", help="bind access tokens to the client certificate "
                   "(RFC 8705 §3)", **flag)
    p.add_argument("--redirect-uri", help="for the authorization code flow (exact match)",
                   **many)
    p.add_argument("--post-logout-uri", **many)
    p.add_argument("--third-party", help="users see a consent page for this client", **flag)
    p.add_argument("--require-par", help="authorization requests only through PAR", **flag)
    p.add_argument("--detail-type", help="RAR authorization_details type this client may "
                   "ask for", **many)
    p.add_argument("--lifetime", type=int, default=None if update else 300,
                   help="access token lifetime (s)")
    p.add_argument("--ciba-mode", choices=["poll", "ping", "push"],
                   help="CIBA token delivery mode (backchannel_token_delivery_mode)")
    p.add_argument("--ciba-notification-endpoint",
                   help="CIBA ping/push: the client's notification endpoint")


def add_parser(sub: Any) -> None:
    client = sub.add_parser("client", help="manage OAuth clients of a tenant")
    csub = client.add_subparsers(dest="action", required=True)
    cc = csub.add_parser("create")
    cc.add_argument("--client-id")
    cc.add_argument("--auth-method", default="client_secret_basic", choices=AUTH_METHODS,
                    help="none: a public client (agent on a device)")
    _options(cc, update=False)
    cu = csub.add_parser("update", help="change what is given (lists are replaced)")
    cu.add_argument("client_id")
    _options(cu, update=True)
    cu.add_argument("--patch-file", help="a JSON merge patch of the client (null clears)")
    cr = csub.add_parser("rotate-secret", help="a new secret (printed once); the old one "
                         "works --overlap seconds more")
    cr.add_argument("client_id")
    cr.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    csub.add_parser("list")
    for action in ("disable", "enable", "delete"):
        csub.add_parser(action, help="retire it (final), revoke its tokens" if
                        action == "delete" else None).add_argument("client_id")
    shared_options(csub.choices.values())
    client.set_defaults(func=cmd_client)
