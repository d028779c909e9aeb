"""The ``tessera`` command line: init, serve, and manage tenants, clients, keys and the audit
chain. Every command proves it holds the database's master key before it writes anything
(``broker.deployment``); only ``init`` and ``serve`` initialise an empty database."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from adapters.errors import OAuthError
from broker import cli_anomaly, cli_api_keys, cli_legacy_apps, cli_runtime, logs
from broker.admin.errors import validation_error
from broker.admin.models import clients as client_models
from broker.admin.models import connections as connection_models
from broker.admin.models import keys_audit as detail_models
from broker.admin.models import registry as registry_models
from broker.admin.models import tenants as tenant_models
from broker.admin.models import upstreams as upstream_models
from broker.admin.models.common import parse
from broker.admin.services import (
    clients,
    connections,
    keys_audit,
    partners,
    tenants,
    trust_links,
    upstreams,
    webhooks,
)
from broker.config import Settings, StartupError
from broker.deployment import Mode, open_deployment
from broker.runtime import Broker
from tenants.audit import acting_as

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
ACTOR = "cli"  # audit events of the local command line name it


def _plain(value: Any) -> Any:
    """Response models as the JSON the admin API would answer."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _print(args: argparse.Namespace, value: Any, columns: Sequence[str] = ()) -> None:
    value = _plain(value)
    if getattr(args, "json", False) or not columns:
        print(json.dumps(value, indent=2, sort_keys=True))
        return
    rows = value if isinstance(value, list) else [value]
    for row in rows:
        print("  ".join(f"{c}={json.dumps(row.get(c))}" for c in columns if c in row))


async def _with_broker(fn: Callable[[Broker], Awaitable[Any]]) -> Any:
    """``fn`` on a broker over the initialised database whose master key this process holds
    (checked, then migrated, before ``fn`` runs); ``StartupError`` otherwise."""
    settings = Settings.load()
    if not settings.base_url:
        settings = settings.with_base_url(DEFAULT_HOST, DEFAULT_PORT)
    opened = await open_deployment(settings, Mode.USE)
    broker = Broker.build(opened.settings)
    try:
        return await fn(broker)
    finally:
        await broker.close()


def _run(args: argparse.Namespace, fn: Callable[[Broker], Awaitable[Any]],
         columns: Sequence[str] = ()) -> int:
    try:
        with acting_as(ACTOR):
            result = asyncio.run(_with_broker(fn))
    except ValidationError as exc:
        print(f"error: {validation_error(exc).description}", file=sys.stderr)
        return 2
    except OAuthError as exc:
        print(f"error: {exc.description or exc.error}", file=sys.stderr)
        return 2
    _print(args, result, columns)
    return 0


NULL: Any = object()  # an option that sets a field to null (absent options are None)


def body(model: type[Any], data: dict[str, Any],
         patch_file: str | None = None) -> Callable[[Broker], Any]:
    """``data`` as the admin API's request ``model``, validated as the HTTP edge does (None:
    the option was not given; ``NULL``: null); a JSON ``patch_file`` is merged over it as is
    (its nulls clear)."""
    given = {k: None if v is NULL else v for k, v in data.items() if v is not None}
    given.update(_json_file(patch_file) or {})
    return lambda b: parse(model, given, allow_http_loopback=b.settings.allow_http_loopback)


def _json_file(path: str | None) -> Any:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {path}: {exc}") from None


def _settings_patch(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` (VALUE as JSON when it parses, else a string; ``null`` resets)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {pair!r}: KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


TENANT_COLS = ("id", "status", "issuer")
CLIENT_COLS = ("client_id", "name", "status", "token_endpoint_auth_method", "scopes",
               "audiences", "dpop_bound_access_tokens", "client_secret",
               "previous_secret_valid_until")
WEBHOOK_COLS = ("tenant", "url", "secret", "secret_revealed", "previous_valid_until")


def cmd_tenant(args: argparse.Namespace) -> int:
    if args.action == "create":
        settings: dict[str, Any] = {"key_alg": args.key_alg}
        if args.rotation_hours is not None:
            settings["key_rotation_seconds"] = int(args.rotation_hours * 3600)
        if args.dpop_nonce:
            settings["dpop_nonce_required"] = True
        make = body(tenant_models.TenantCreate, {"name": args.name, "settings": settings,
                                                 "display_name": args.display_name})
        return _run(args, lambda b: tenants.create_tenant(b, make(b)), TENANT_COLS)
    if args.action == "list":
        return _run(args, tenants.list_tenants, TENANT_COLS)
    if args.action == "update":
        patch = body(tenant_models.TenantPatch, {
            "display_name": args.display_name,
            "settings": _settings_patch(args.set) if args.set else None})
        return _run(args, lambda b: tenants.update_tenant(b, args.name, patch(b)), TENANT_COLS)
    if args.action == "delete":
        if not args.yes:
            print(f"error: archiving tenant {args.name!r} is final (it answers nothing any "
                  "more, its tokens are revoked); repeat with --yes", file=sys.stderr)
            return 2
        return _run(args, lambda b: tenants.archive_tenant(b, args.name), TENANT_COLS)
    status = "disabled" if args.action == "disable" else "active"
    return _run(args, lambda b: tenants.set_tenant_status(b, args.name, status), TENANT_COLS)


def cmd_webhook(args: argparse.Namespace) -> int:
    if args.action == "show":
        return _run(args, lambda b: webhooks.get_webhook(b, args.tenant), WEBHOOK_COLS)
    if args.action == "set":
        put = body(tenant_models.WebhookPut, {"url": NULL if args.clear else args.url})
        return _run(args, lambda b: webhooks.put_webhook(b, args.tenant, put(b)), WEBHOOK_COLS)
    rotation = body(tenant_models.SecretRotation, {"overlap_seconds": args.overlap})
    return _run(args, lambda b: webhooks.rotate_webhook_secret(b, args.tenant, rotation(b)),
                WEBHOOK_COLS)


def _client_fields(args: argparse.Namespace) -> dict[str, Any]:
    """What the client options given say (create and update share them)."""
    fields: dict[str, Any] = {
        "name": args.name, "scopes": args.scope or None, "audiences": args.audience or None,
        "jwks": _json_file(args.jwks_file), "access_token_lifetime": args.lifetime,
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


def cmd_client(args: argparse.Namespace) -> int:
    tenant = args.tenant
    if args.action == "create":
        make = body(client_models.ClientCreate, {
            **_client_fields(args), "client_id": args.client_id,
            "token_endpoint_auth_method": args.auth_method})
        return _run(args, lambda b: clients.create_client(b, tenant, make(b)), CLIENT_COLS)
    if args.action == "list":
        return _run(args, lambda b: clients.list_clients(b, tenant), CLIENT_COLS)
    if args.action == "update":
        patch = body(client_models.ClientPatch, _client_fields(args), args.patch_file)
        return _run(args, lambda b: clients.update_client(b, tenant, args.client_id, patch(b)),
                    CLIENT_COLS)
    if args.action == "delete":
        return _run(args, lambda b: clients.delete_client(b, tenant, args.client_id),
                    CLIENT_COLS)
    if args.action == "rotate-secret":
        rotation = body(client_models.ClientSecretRotation, {"overlap_seconds": args.overlap})
        return _run(args, lambda b: clients.rotate_client_secret(
            b, tenant, args.client_id, rotation(b)), CLIENT_COLS)
    status = "disabled" if args.action == "disable" else "active"
    return _run(args, lambda b: clients.set_client_status(b, tenant, args.client_id, status),
                CLIENT_COLS)


def cmd_keys(args: argparse.Namespace) -> int:
    if args.action == "rotate":
        return _run(args, lambda b: keys_audit.rotate_keys(b, args.tenant),
                    ("tenant", "active", "retiring", "next"))
    return _run(args, lambda b: keys_audit.list_keys(b, args.tenant), ("kid", "alg", "state"))


def cmd_audit(args: argparse.Namespace) -> int:
    if args.action == "export":
        try:
            with acting_as(ACTOR):
                events = asyncio.run(_with_broker(
                    lambda b: keys_audit.export_audit(b, args.tenant)))
        except OAuthError as exc:
            print(f"error: {exc.description}", file=sys.stderr)
            return 2
        for event in events:
            print(json.dumps(event, sort_keys=True))
        return 0
    try:
        report = _plain(asyncio.run(_with_broker(
            lambda b: keys_audit.verify_audit(b, args.tenant))))
    except OAuthError as exc:
        print(f"error: {exc.description}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif report["intact"]:
        print(f"audit chain of {args.tenant}: intact, {report['events']} events")
    else:
        print(f"audit chain of {args.tenant}: BROKEN at event {report['first_broken_seq']}: "
              f"{report['reason']}")
    return 0 if report["intact"] else 1


PARTNER_COLS = ("id", "issuer", "status", "display_name")
LINK_COLS = ("id", "issuer", "directions", "status", "scope_ceiling", "expires_at")
CONNECTION_COLS = ("client_id", "audience", "rules", "default_rule", "remote_client_id")


def cmd_partner(args: argparse.Namespace) -> int:
    if args.action == "register":
        make = body(registry_models.PartnerCreate, {
            "issuer": args.issuer, "display_name": args.name, "id": args.id,
            "jwks_uri": args.jwks_uri, "jwks": _json_file(args.jwks_file),
            "contact": args.contact, "expires_at": args.expires_at})
        return _run(args, lambda b: partners.register_partner(b, make(b)), PARTNER_COLS)
    if args.action == "list":
        return _run(args, partners.list_partners, PARTNER_COLS)
    if args.action == "update":
        patch = body(registry_models.PartnerPatch, {
            "display_name": args.name, "contact": args.contact, "jwks_uri": args.jwks_uri,
            "jwks": _json_file(args.jwks_file),
            "expires_at": NULL if args.no_expiry else args.expires_at}, args.patch_file)
        return _run(args, lambda b: partners.update_partner(b, args.partner, patch(b)),
                    PARTNER_COLS)
    status = {"activate": "active", "suspend": "suspended", "revoke": "revoked"}[args.action]
    return _run(args, lambda b: partners.set_partner_status(b, args.partner, status),
                PARTNER_COLS)


def _directions(accept: bool | None, send: bool | None, current: Any = None) -> list[str]:
    flows = {"accept": accept if accept is not None else bool(current and current.accept),
             "send": send if send is not None else bool(current and current.send)}
    return [d for d, on in flows.items() if on]


def cmd_trust(args: argparse.Namespace) -> int:
    tenant = args.tenant
    if args.action == "add":
        make = body(registry_models.TrustLinkCreate, {
            "partner": args.partner, "tenant": args.peer_tenant,
            "scope_ceiling": args.scope or None, "expires_at": args.expires_at,
            "directions": _directions(args.accept, args.send)})
        return _run(args, lambda b: trust_links.add_trust_link(b, tenant, make(b)), LINK_COLS)
    if args.action == "list":
        return _run(args, lambda b: trust_links.list_trust_links(b, tenant), LINK_COLS)
    if args.action in ("direction", "update"):
        async def change(b: Broker) -> Any:
            link = await trust_links.get_trust_link(b, tenant, args.link)
            fields: dict[str, Any] = {}
            if args.accept is not None or args.send is not None:
                fields["directions"] = _directions(args.accept, args.send, link)
            if args.action == "update":
                if args.scope or args.no_ceiling:
                    fields["scope_ceiling"] = None if args.no_ceiling else args.scope
                if args.expires_at is not None or args.no_expiry:
                    fields["expires_at"] = None if args.no_expiry else args.expires_at
            patch = parse(registry_models.TrustLinkPatch, fields,
                          allow_http_loopback=b.settings.allow_http_loopback)
            return await trust_links.update_trust_link(b, tenant, args.link, patch)

        return _run(args, change, LINK_COLS)
    status = {"suspend": "suspended", "resume": "active", "revoke": "revoked"}[args.action]
    return _run(args, lambda b: trust_links.set_trust_link_status(b, tenant, args.link, status),
                LINK_COLS)


def cmd_connection(args: argparse.Namespace) -> int:
    if args.action == "set":
        rules = {s: "grant" for s in args.grant}
        rules.update({s: "approve" for s in args.approve})
        rules.update({s: "deny" for s in args.deny})
        make = body(connection_models.ManagedConnectionPut, {
            "client_id": args.client, "audience": args.audience, "rules": rules,
            "remote_client_id": args.remote_client_id, "resources": args.resource,
            "max_lifetime": args.max_lifetime, "default_rule": args.default_rule,
            "approver": args.approver})
        return _run(args, lambda b: connections.put_managed_connection(b, args.tenant, make(b)),
                    CONNECTION_COLS)
    if args.action == "list":
        return _run(args, lambda b: connections.list_managed_connections(b, args.tenant),
                    CONNECTION_COLS)
    return _run(args, lambda b: connections.delete_managed_connection(
        b, args.tenant, args.client, args.audience), CONNECTION_COLS)


UPSTREAM_COLS = ("name", "kind", "status", "redirect_uri", "acs_url", "sp_metadata_url")


def _mapping(raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError as exc:
        raise SystemExit(f"error: --mapping is not JSON: {exc}") from None


def cmd_upstream(args: argparse.Namespace) -> int:
    tenant = args.tenant
    if args.action == "list":
        return _run(args, lambda b: upstreams.list_upstreams(b, tenant), UPSTREAM_COLS)
    if args.action in ("disable", "enable"):
        status = "disabled" if args.action == "disable" else "active"
        return _run(args, lambda b: upstreams.set_upstream_status(b, tenant, args.name, status),
                    UPSTREAM_COLS)
    if args.action == "delete":
        return _run(args, lambda b: upstreams.delete_upstream(b, tenant, args.name),
                    UPSTREAM_COLS)
    if args.action == "refresh-metadata":
        refresh = body(upstream_models.MetadataRefresh, {
            "metadata_xml": Path(args.metadata_file).read_text() if args.metadata_file
            else None, "metadata_url": args.metadata_url})
        return _run(args, lambda b: upstreams.refresh_metadata(b, tenant, args.name,
                                                               refresh(b)), UPSTREAM_COLS)
    secret = os.environ.get(args.client_secret_env) if getattr(
        args, "client_secret_env", None) else None
    if args.action == "update":
        oidc = {**({"client_secret": secret} if secret else {}),
                **({"scopes": args.scope} if args.scope else {})}
        patch = body(upstream_models.UpstreamPatch, {
            "display_name": args.display_name, "domains": args.domain or None,
            "mapping": _mapping(args.mapping), "oidc": oidc or None}, args.patch_file)
        return _run(args, lambda b: upstreams.update_upstream(b, tenant, args.name, patch(b)),
                    UPSTREAM_COLS)
    data: dict[str, Any] = {"name": args.name, "kind": args.action.removeprefix("add-"),
                            "display_name": args.display_name or args.name,
                            "domains": args.domain, "mapping": _mapping(args.mapping)}
    if args.action == "add-oidc":
        data["oidc"] = {"issuer": args.issuer, "client_id": args.client_id,
                        "client_auth": args.client_auth, "use_userinfo": args.userinfo,
                        **({"client_secret": secret} if secret else {}),
                        **({"scopes": args.scope} if args.scope else {})}
    else:
        data["saml"] = ({"metadata_xml": Path(args.metadata_file).read_text()}
                        if args.metadata_file else {"metadata_url": args.metadata_url})
    make = body(upstream_models.UpstreamCreate, data)
    return _run(args, lambda b: upstreams.create_upstream(b, tenant, make(b)), UPSTREAM_COLS)


def cmd_detail_type(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _run(args, lambda b: keys_audit.list_detail_types(b, args.tenant),
                    ("type", "description"))
    make = body(detail_models.DetailTypePut, {
        "type": args.type, "schema": _json_file(args.schema_file),
        "description": args.description})
    return _run(args, lambda b: keys_audit.register_detail_type(b, args.tenant, make(b)),
                ("type", "description"))


def cmd_id_token(args: argparse.Namespace) -> int:
    from broker import id_jag
    from broker.runtime import TenantView

    async def mint(b: Broker) -> dict[str, Any]:
        tenant, client = await b.lookup(args.tenant, args.client)
        if client is None:
            raise OAuthError(f"no client {args.client!r} in tenant {args.tenant!r}")
        view = TenantView(tenant.id, tenant.issuer, tenant.settings)
        token = await id_jag.mint_id_token(b, view, subject=args.sub, client_id=args.client,
                                           lifetime=args.lifetime)
        return {"id_token": token}

    if not args.json:
        try:
            print(asyncio.run(_with_broker(mint))["id_token"])
        except OAuthError as exc:
            print(f"error: {exc.description or exc.error}", file=sys.stderr)
            return 2
        return 0
    return _run(args, mint)


def cmd_admin_token(_args: argparse.Namespace) -> int:
    print(Settings.load().admin_token_value())
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Initialise an empty database (schema, master key check value; the master key and admin
    token files unless given); on an initialised one: verify the key and migrate."""
    opened = asyncio.run(open_deployment(Settings.load(), Mode.INIT, admin_token=True))
    settings = opened.settings
    report = {
        "database": settings.database_shown(),
        "initialised": opened.initialised,
        "master_key": opened.key_source,
        "master_key_id": opened.key_id,
        "admin_token": opened.admin_token_source,
        "created": [str(f) for f in opened.created],
    }
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif opened.initialised:
        print(f"initialised the tessera database {report['database']}\n"
              f"  master key:  {report['master_key']} (id {opened.key_id})\n"
              f"  admin token: {report['admin_token']}")
    else:
        print(f"the tessera database {report['database']} is already initialised; its master "
              f"key (id {opened.key_id}) checked, the schema is current")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the schema to head (serialised across replicas), or with ``--check`` say where it
    stands: exit 0 at head, 1 behind (nothing written, no master key needed)."""
    from sqlalchemy.exc import SQLAlchemyError

    from tenants import migrate as migrations
    from tenants.db import create_engine

    settings = Settings.load()
    path = settings.sqlite_path()
    if path is not None and not path.exists():
        raise StartupError(f"no tessera database at {path}; run `tessera init` or "
                           "`tessera serve` first")

    async def where() -> migrations.SchemaStatus:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        try:
            return await migrations.status(engine)
        except (SQLAlchemyError, OSError) as exc:
            raise StartupError(f"cannot use the database {settings.database_shown()}: "
                               f"{type(exc).__name__}") from None
        finally:
            await engine.dispose()

    before = asyncio.run(where())
    if not args.check and before.current is not None and not before.at_head:
        asyncio.run(open_deployment(settings, Mode.MIGRATE))
    after = before if args.check else asyncio.run(where())
    report = {"database": settings.database_shown(), "before": before.current,
              "current": after.current, "head": after.head, "at_head": after.at_head}
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif args.check or before.at_head:
        print(after.describe())
    else:
        print(f"migrated {report['database']} from {before.current} to {after.current}")
    if before.current is None:
        raise StartupError(f"no tessera schema in {settings.database_shown()}; run `tessera "
                           "init` first")
    return 0 if after.at_head else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from broker.serve import event_loop_factory, serve, serve_workers

    if (args.ca_certs or args.client_cert) and not args.certfile:
        print("error: --ca-certs and --client-cert need --certfile", file=sys.stderr)
        return 2
    if args.client_cert and not args.ca_certs:
        print("error: --client-cert needs --ca-certs", file=sys.stderr)
        return 2
    client_cert = args.client_cert or ("optional" if args.ca_certs else None)
    settings = Settings.load().with_base_url(args.host, args.port,
                                             "https" if args.certfile else "http")
    logs.configure(settings)
    if args.no_migrate:
        settings = settings.replace(auto_migrate=False)
    if args.workers > 1:
        return serve_workers(settings, args.host, args.port, args.workers, args.certfile,
                             args.keyfile, ca_certs=args.ca_certs, client_cert=client_cert)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(settings, args.host, args.port, args.certfile, args.keyfile,
                             ca_certs=args.ca_certs, client_cert=client_cert))
    except KeyboardInterrupt:
        pass
    return 0


def _client_options(p: argparse.ArgumentParser, *, update: bool) -> None:
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the broker (Hypercorn)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--keyfile", help="private key of --certfile (PEM)")
    serve.add_argument("--ca-certs", help="CA bundle (PEM) that TLS client certificates must "
                       "chain to (mutual TLS, RFC 8705)")
    serve.add_argument("--client-cert", choices=["optional", "required"],
                       help="ask TLS clients for a certificate (default with --ca-certs: "
                       "optional)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (replicas; use PostgreSQL for more than one)")
    serve.add_argument("--no-migrate", action="store_true",
                       help="refuse a schema that is behind instead of migrating it (run "
                       "`tessera migrate` yourself)")
    serve.set_defaults(func=cmd_serve)

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
    for sp in tsub.choices.values():
        sp.add_argument("--json", action="store_true", help="print JSON")
    tenant.set_defaults(func=cmd_tenant)

    hook = sub.add_parser("webhook", help="a tenant's webhook URL and signing secret")
    hsub = hook.add_subparsers(dest="action", required=True)
    hs = hsub.add_parser("set", help="set the URL (prints the secret if never shown)")
    target = hs.add_mutually_exclusive_group(required=True)
    target.add_argument("--url")
    target.add_argument("--clear", action="store_true", help="send no more events")
    hr = hsub.add_parser("rotate-secret", help="a new secret (printed once); the old one "
                         "signs too for --overlap seconds")
    hr.add_argument("--overlap", type=int, default=tenant_models.DEFAULT_OVERLAP)
    hsub.add_parser("show")
    for sp in hsub.choices.values():
        sp.add_argument("--tenant", required=True)
        sp.add_argument("--json", action="store_true", help="print JSON")
    hook.set_defaults(func=cmd_webhook)

    client = sub.add_parser("client", help="manage OAuth clients of a tenant")
    csub = client.add_subparsers(dest="action", required=True)
    cc = csub.add_parser("create")
    cc.add_argument("--client-id")
    cc.add_argument("--auth-method", default="client_secret_basic",
                    choices=["client_secret_basic", "client_secret_post", "private_key_jwt",
                             "none", "tls_client_auth", "self_signed_tls_client_auth"],
                    help="none: a public client (agent on a device)")
    _client_options(cc, update=False)
    cu = csub.add_parser("update", help="change what is given (lists are replaced)")
    cu.add_argument("client_id")
    _client_options(cu, update=True)
    cu.add_argument("--patch-file", help="a JSON merge patch of the client (null clears)")
    cr = csub.add_parser("rotate-secret", help="a new secret (printed once); the old one "
                         "works --overlap seconds more")
    cr.add_argument("client_id")
    cr.add_argument("--overlap", type=int, default=tenant_models.DEFAULT_OVERLAP)
    csub.add_parser("list")
    for action in ("disable", "enable", "delete"):
        csub.add_parser(action, help="retire it (final), revoke its tokens" if
                        action == "delete" else None).add_argument("client_id")
    for sp in csub.choices.values():
        sp.add_argument("--tenant", required=True)
        sp.add_argument("--json", action="store_true", help="print JSON")
    client.set_defaults(func=cmd_client)

    keys = sub.add_parser("keys", help="signing keys of a tenant")
    ksub = keys.add_subparsers(dest="action", required=True)
    for action in ("rotate", "list"):
        ka = ksub.add_parser(action)
        ka.add_argument("--tenant", required=True)
        ka.add_argument("--json", action="store_true")
    keys.set_defaults(func=cmd_keys)

    aud = sub.add_parser("audit", help="the tenant's hash-chained audit log")
    asub = aud.add_subparsers(dest="action", required=True)
    for action in ("verify", "export"):
        aa = asub.add_parser(action)
        aa.add_argument("--tenant", required=True)
        aa.add_argument("--json", action="store_true")
    aud.set_defaults(func=cmd_audit)

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
    pl = psub.add_parser("list")
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
    for sp in (pr, pl, pu):
        sp.add_argument("--json", action="store_true")
    for action in ("activate", "suspend", "revoke"):
        pa = psub.add_parser(action)
        pa.add_argument("partner")
        pa.add_argument("--json", action="store_true")
    partner.set_defaults(func=cmd_partner)

    trust_p = sub.add_parser("trust", help="trust links of a tenant")
    trsub = trust_p.add_subparsers(dest="action", required=True)
    ta_ = trsub.add_parser("add")
    ta_.add_argument("--tenant", required=True)
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
    td_.add_argument("--tenant", required=True)
    td_.add_argument("link")
    td_.add_argument("--accept", action=argparse.BooleanOptionalAction, default=None)
    td_.add_argument("--send", action=argparse.BooleanOptionalAction, default=None)
    td_.add_argument("--json", action="store_true")
    tu_ = trsub.add_parser("update", help="change directions, scope ceiling or expiry")
    tu_.add_argument("--tenant", required=True)
    tu_.add_argument("link")
    tu_.add_argument("--accept", action=argparse.BooleanOptionalAction, default=None)
    tu_.add_argument("--send", action=argparse.BooleanOptionalAction, default=None)
    ceiling = tu_.add_mutually_exclusive_group()
    ceiling.add_argument("--scope", action="append", default=[],
                         help="the new scope ceiling (repeat)")
    ceiling.add_argument("--no-ceiling", action="store_true")
    until = tu_.add_mutually_exclusive_group()
    until.add_argument("--expires-at", type=float)
    until.add_argument("--no-expiry", action="store_true")
    tl_ = trsub.add_parser("list")
    tl_.add_argument("--tenant", required=True)
    for sp in (ta_, tl_, tu_):
        sp.add_argument("--json", action="store_true")
    for action in ("suspend", "resume", "revoke"):
        tx = trsub.add_parser(action)
        tx.add_argument("--tenant", required=True)
        tx.add_argument("link")
        tx.add_argument("--json", action="store_true")
    trust_p.set_defaults(func=cmd_trust)

    conn = sub.add_parser("connection", help="managed connections (scope rules per audience)")
    mcsub = conn.add_subparsers(dest="action", required=True)
    ms = mcsub.add_parser("set")
    ms.add_argument("--tenant", required=True)
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
    ml = mcsub.add_parser("list")
    ml.add_argument("--tenant", required=True)
    md = mcsub.add_parser("delete")
    md.add_argument("--tenant", required=True)
    md.add_argument("--client", required=True)
    md.add_argument("--audience", required=True)
    for sp in (ms, ml, md):
        sp.add_argument("--json", action="store_true")
    conn.set_defaults(func=cmd_connection)

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
        sp.add_argument("--tenant", required=True)
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
    for sp in (uu, ur, usub.choices["list"], *[usub.choices[a] for a in (
            "disable", "enable", "delete")]):
        sp.add_argument("--tenant", required=True)
    for sp in usub.choices.values():
        sp.add_argument("--json", action="store_true")
    ups.set_defaults(func=cmd_upstream)

    dtp = sub.add_parser("detail-type", help="RAR authorization_details types of a tenant")
    dsub = dtp.add_subparsers(dest="action", required=True)
    da = dsub.add_parser("add")
    da.add_argument("--tenant", required=True)
    da.add_argument("--type", required=True)
    da.add_argument("--schema-file", required=True, help="JSON Schema (2020-12) of one object")
    da.add_argument("--description", default="")
    dl = dsub.add_parser("list")
    dl.add_argument("--tenant", required=True)
    for sp in (da, dl):
        sp.add_argument("--json", action="store_true")
    dtp.set_defaults(func=cmd_detail_type)

    idt = sub.add_parser("id-token", help="sign an ID token for a user of a tenant (development "
                         "and tests, until logins through upstream IdPs exist)")
    idt.add_argument("--tenant", required=True)
    idt.add_argument("--client", required=True, help="the client the ID token is issued to")
    idt.add_argument("--sub", required=True, help="the user")
    idt.add_argument("--lifetime", type=int, default=300)
    idt.add_argument("--json", action="store_true")
    idt.set_defaults(func=cmd_id_token)

    cli_api_keys.add_parser(sub)
    cli_legacy_apps.add_parser(sub)
    cli_runtime.add_parser(sub)
    cli_anomaly.add_parser(sub)

    tok = sub.add_parser("admin-token", help="print the admin API bearer token")
    tok.set_defaults(func=cmd_admin_token)

    init = sub.add_parser("init", help="initialise an empty database: schema, master key and "
                          "admin token (files next to the SQLite file unless given)")
    init.add_argument("--json", action="store_true")
    init.set_defaults(func=cmd_init)
    mig = sub.add_parser("migrate", help="bring the database schema to this version's head "
                         "(serialised across replicas)")
    mig.add_argument("--check", action="store_true",
                     help="only say where the schema stands: exit 0 at head, 1 behind")
    mig.add_argument("--json", action="store_true")
    mig.set_defaults(func=cmd_migrate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StartupError as exc:  # wrong or missing key, no database: one line, nothing written
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
