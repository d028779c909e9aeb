"""Administration of a tenant's login configuration, shared by the CLI and the admin API:
upstream IdPs (OIDC, SAML), RAR ``authorization_details`` types, and the users that logins
created."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from adapters import rar
from adapters.errors import InvalidRequest, NotFound
from adapters.saml_assertion import SAMLError
from adapters.saml_upstream import parse_idp_metadata
from broker import claim_mapping, upstreams
from broker.management import existing_tenant
from broker.runtime import Broker
from registry.remote_keys import RemoteKeyError
from tenants import audit
from tenants.models import DetailType, Upstream, User
from tenants.scope import scoped, tenant_scope

NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
OIDC_FIELDS = ("issuer", "client_id", "client_auth", "scopes", "allowed_algs", "use_userinfo",
               "extra_auth_params", "authorization_endpoint", "token_endpoint", "jwks_uri",
               "userinfo_endpoint")
MAX_METADATA = 512 * 1024
RESERVED = frozenset({"idp"})  # /t/{t}/saml/idp/... is tessera's own SAML IdP
METADATA_TYPES = frozenset({"application/samlmetadata+xml", "application/xml", "text/xml"})


def upstream_json(broker: Broker, row: Upstream) -> dict[str, Any]:
    issuer = broker.issuer(row.tenant_id)
    body: dict[str, Any] = {"tenant": row.tenant_id, "name": row.name, "kind": row.kind,
                            "display_name": row.display_name, "status": row.status,
                            "domains": row.domains or [], "mapping": row.mapping or {}}
    if row.kind == "oidc":
        body["oidc"] = {k: v for k, v in row.config.items() if k != "client_secret_sealed"}
        body["redirect_uri"] = upstreams.oidc_redirect_uri(issuer, row.name)
    else:
        body["saml"] = {"idp_entity_id": row.config.get("idp_entity_id"),
                        "allow_sha1": row.config.get("allow_sha1", False)}
        body["sp_entity_id"] = upstreams.sp_entity_id(issuer, row.name)
        body["acs_url"] = upstreams.acs_url(issuer, row.name)
        body["sp_metadata_url"] = body["sp_entity_id"]
    return body


async def _fetch_metadata(broker: Broker, url: str) -> str:
    """Through the registry's guarded fetcher: https (http only to loopback in development),
    every resolved address checked, size and time bounded."""
    try:
        body = await broker.remote_keys.fetch_document(
            url, media_types=METADATA_TYPES, max_bytes=MAX_METADATA)
    except RemoteKeyError as exc:
        raise InvalidRequest(f"cannot fetch the IdP metadata: {exc}") from exc
    return body.decode("utf-8", "replace")


async def _config(broker: Broker, tenant: str, name: str, kind: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    if kind == "oidc":
        raw = body.get("oidc")
        if not isinstance(raw, dict):
            raise InvalidRequest("oidc settings (an object) are required")
        unknown = set(raw) - {*OIDC_FIELDS, "client_secret"}
        if unknown:
            raise InvalidRequest(f"unknown oidc settings: {', '.join(sorted(unknown))}")
        config = {k: raw[k] for k in OIDC_FIELDS if k in raw}
        config.setdefault("client_auth", "client_secret_basic")
        secret = raw.get("client_secret")
        try:
            upstreams.build_oidc_config(config, secret)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"oidc settings: {exc}") from exc
        if secret is not None:
            config["client_secret_sealed"] = broker.sealer.seal(
                str(secret), upstreams.secret_context(tenant, name))
        return config
    if kind != "saml":
        raise InvalidRequest("kind must be oidc or saml")
    raw = body.get("saml")
    if not isinstance(raw, dict):
        raise InvalidRequest("saml settings (an object) are required")
    xml = raw.get("metadata_xml")
    if xml is None and isinstance(raw.get("metadata_url"), str):
        xml = await _fetch_metadata(broker, raw["metadata_url"])
    if not isinstance(xml, str):
        raise InvalidRequest("saml needs metadata_xml or metadata_url")
    try:
        idp = parse_idp_metadata(xml.encode())
    except SAMLError as exc:
        raise InvalidRequest(f"IdP metadata: {exc}") from exc
    return {"idp_metadata": xml, "idp_entity_id": idp.entity_id,
            "allow_sha1": bool(raw.get("allow_sha1", False)),
            **({"name_id_format": raw["name_id_format"]}
               if isinstance(raw.get("name_id_format"), str) else {})}


async def create_upstream(broker: Broker, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
    await existing_tenant(broker, tenant)
    name, kind = body.get("name"), body.get("kind")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidRequest("name: 1-64 of a-z, 0-9, '-' and '_'")
    if name in RESERVED:
        raise InvalidRequest(f"upstream name {name!r} is reserved")
    if kind not in ("oidc", "saml"):
        raise InvalidRequest("kind must be oidc or saml")
    domains = body.get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise InvalidRequest("domains must be a list of e-mail domains")
    mapping = body.get("mapping", {})
    try:
        mapping = claim_mapping.check(mapping if isinstance(mapping, dict) else {"?": 1})
    except claim_mapping.MappingError as exc:
        raise InvalidRequest(str(exc)) from exc
    config = await _config(broker, tenant, name, kind, body)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        if await scope.get(Upstream, name) is not None:
            raise InvalidRequest(f"upstream {name!r} exists")
        row = scope.add(Upstream(name=name, kind=kind, config=config, mapping=mapping,
                                 display_name=str(body.get("display_name") or name)[:200],
                                 domains=[d.lower() for d in domains], status="active",
                                 created_at=now))
        await audit.record(scope.session, tenant, [audit.Event(
            "upstream.created", "changed", None, None, {"upstream": name, "kind": kind})], now)
    return upstream_json(broker, row)


async def list_upstreams(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await session.execute(select(Upstream).where(Upstream.tenant_id == tenant)
                                      .order_by(Upstream.name))).scalars().all()
    return [upstream_json(broker, r) for r in rows]


async def set_upstream_status(broker: Broker, tenant: str, name: str,
                              status: str) -> dict[str, Any]:
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(Upstream, name)
        if row is None:
            raise NotFound(f"no upstream {name!r} in tenant {tenant!r}")
        row.status = status
        await audit.record(scope.session, tenant, [audit.Event(
            f"upstream.{status}", "changed", None, None, {"upstream": name})], now)
    return upstream_json(broker, row)


async def register_detail_type(broker: Broker, tenant: str,
                               body: dict[str, Any]) -> dict[str, Any]:
    await existing_tenant(broker, tenant)
    type_, schema = body.get("type"), body.get("schema")
    if not isinstance(type_, str) or not type_ or len(type_) > 128:
        raise InvalidRequest("type is required (at most 128 characters)")
    try:
        rar.check_schema(schema)
    except ValueError as exc:
        raise InvalidRequest(f"schema: {exc}") from exc
    assert isinstance(schema, dict)
    description = str(body.get("description") or "")[:500]
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(DetailType, type_)
        if row is None:
            row = scope.add(DetailType(type=type_, schema=schema, description=description,
                                       created_at=now))
        else:
            row.schema, row.description = schema, description
        await audit.record(scope.session, tenant, [audit.Event(
            "authorization_details_type.registered", "changed", None, None,
            {"type": type_})], now)
    return {"type": type_, "schema": schema, "description": description}


async def list_detail_types(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(DetailType).order_by(DetailType.type))).scalars().all()
    return [{"type": t.type, "schema": t.schema, "description": t.description} for t in rows]


async def list_users(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(User).order_by(User.created_at))).scalars().all()
    return [{"sub": u.id, "email": u.email, "name": u.name, "groups": u.groups,
             "status": u.status, "created_at": int(u.created_at),
             "last_login_at": int(u.last_login_at) if u.last_login_at else None} for u in rows]
