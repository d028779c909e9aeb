"""Administrative operations shared by the CLI and the admin API (one implementation)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from adapters.errors import InvalidRequest, NotFound
from broker.runtime import Broker
from registry import partners, trust
from tenants import audit, directory
from tenants.models import Client, ManagedConnectionRow, Partner, Tenant, TrustLink
from tenants.scope import scoped, tenant_scope

APPROVER = re.compile(r"^group:[^\s]{1,128}$")


def tenant_json(broker: Broker, tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "display_name": tenant.display_name,
        "status": tenant.status,
        "issuer": broker.issuer(tenant.id),
        "created_at": int(tenant.created_at),
        "settings": tenant.settings,
    }


def client_json(client: Client, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant": client.tenant_id,
        "client_id": client.client_id,
        "name": client.name,
        "status": client.status,
        "token_endpoint_auth_method": client.auth_method,
        "scopes": client.scopes,
        "audiences": client.audiences,
        "access_token_lifetime": client.access_token_lifetime,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "redirect_uris": client.redirect_uris or [],
        "post_logout_redirect_uris": client.post_logout_redirect_uris or [],
        "first_party": client.first_party if client.first_party is not None else True,
        "require_pushed_authorization_requests": bool(client.require_par),
        "authorization_details_types": client.authorization_details_types or [],
        "tls_client_certificate_bound_access_tokens":
            bool(client.tls_client_certificate_bound_access_tokens),
        "created_at": int(client.created_at),
    }
    for name in ("tls_client_auth_subject_dn", "tls_client_auth_san_uri",
                 "tls_client_auth_san_dns", "backchannel_token_delivery_mode",
                 "backchannel_client_notification_endpoint"):
        if getattr(client, name):
            body[name] = getattr(client, name)
    if client.jwks:
        body["jwks"] = client.jwks
    if secret is not None:
        body["client_secret"] = secret
    return body


def _bad(exc: Exception) -> InvalidRequest:
    return InvalidRequest(str(exc))


async def create_tenant(
    broker: Broker, name: str, *, display_name: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if settings and "anomaly_rules" in settings:
        from broker.anomaly import check_rules  # anomaly imports runtime; keep it lazy

        try:
            settings = {**settings, "anomaly_rules": list(check_rules(settings["anomaly_rules"]))}
        except ValueError as exc:
            raise _bad(exc) from exc
    try:
        async with broker.sessions() as session, session.begin():
            tenant = await directory.create_tenant(
                session, name, display_name=display_name, settings=settings,
                now=broker.clock.now(),
            )
            await broker.keys.ensure(name, session)
    except (directory.DirectoryError, TypeError) as exc:
        raise _bad(exc) from exc
    return tenant_json(broker, tenant)


async def list_tenants(broker: Broker) -> list[dict[str, Any]]:
    async with broker.sessions() as session:
        return [tenant_json(broker, t) for t in await directory.list_tenants(session)]


async def get_tenant(broker: Broker, name: str) -> dict[str, Any]:
    async with broker.sessions() as session:
        tenant = await session.get(Tenant, name)
        if tenant is None:
            raise NotFound(f"no tenant {name!r}")
        return tenant_json(broker, tenant)


async def set_tenant_status(broker: Broker, name: str, status: str) -> dict[str, Any]:
    try:
        async with broker.sessions() as session, session.begin():
            tenant = await directory.set_tenant_status(session, name, status, broker.clock.now())
    except LookupError as exc:
        raise NotFound(f"no tenant {name!r}") from exc
    return tenant_json(broker, tenant)


async def existing_tenant(broker: Broker, name: str) -> None:
    """``NotFound`` unless the tenant exists (in any status)."""
    async with broker.sessions() as session:
        if await session.get(Tenant, name) is None:
            raise NotFound(f"no tenant {name!r}")


async def create_client(
    broker: Broker, tenant: str, *, name: str, client_id: str | None = None,
    auth_method: str = "client_secret_basic", scopes: Sequence[str] = (),
    audiences: Sequence[str] = (), jwks: dict[str, Any] | None = None,
    access_token_lifetime: int = 300, dpop_bound_access_tokens: bool = False,
    **login: Any,
) -> dict[str, Any]:
    """``login``: the authorization-code settings of ``directory.create_client``
    (redirect_uris, post_logout_redirect_uris, first_party, require_par,
    authorization_details_types) and its mutual-TLS ones (tls_client_auth_subject_dn,
    tls_client_auth_san_uri, tls_client_auth_san_dns,
    tls_client_certificate_bound_access_tokens)."""
    await existing_tenant(broker, tenant)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            created = await directory.create_client(
                scope, name=name, hasher_hash=broker.hasher.hash, now=broker.clock.now(),
                client_id=client_id, auth_method=auth_method, scopes=scopes,
                audiences=audiences, jwks=jwks, access_token_lifetime=access_token_lifetime,
                dpop_bound_access_tokens=dpop_bound_access_tokens, **login,
            )
    except (directory.DirectoryError, TypeError) as exc:
        raise _bad(exc) from exc
    return client_json(created.client, created.secret)


async def list_clients(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [client_json(c) for c in await directory.list_clients(scoped(session, tenant))]


async def get_client(broker: Broker, tenant: str, client_id: str) -> dict[str, Any]:
    async with broker.sessions() as session:
        client = await scoped(session, tenant).get(Client, client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r} in tenant {tenant!r}")
    return client_json(client)


async def set_client_status(
    broker: Broker, tenant: str, client_id: str, status: str
) -> dict[str, Any]:
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            client = await directory.set_client_status(scope, client_id, status,
                                                       broker.clock.now())
    except LookupError as exc:
        raise NotFound(f"no client {client_id!r} in tenant {tenant!r}") from exc
    return client_json(client)


async def rotate_keys(broker: Broker, tenant: str) -> dict[str, Any]:
    await existing_tenant(broker, tenant)
    rotation = await broker.keys.rotate(tenant)
    return {
        "tenant": tenant,
        "active": rotation.activated,
        "retiring": rotation.retiring,
        "next": rotation.published_next,
        "retired": list(rotation.retired),
    }


async def list_keys(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    return [
        {"kid": k.kid, "alg": k.alg, "state": k.state, "activated_at": k.activated_at,
         "retire_after": k.retire_after}
        for k in await broker.keys.keys(tenant)
    ]


async def verify_audit(broker: Broker, tenant: str) -> dict[str, Any]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        report = await audit.verify_chain(session, tenant)
    return {
        "tenant": tenant,
        "events": report.events,
        "intact": report.intact,
        "first_broken_seq": report.first_broken_seq,
        "reason": report.reason,
    }


async def export_audit(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [
            {"tenant": tenant, "seq": e.seq, "at": e.at, "action": e.action,
             "outcome": e.outcome, "client_id": e.client_id, "subject": e.subject,
             "detail": e.detail, "prev_hash": e.prev_hash, "hash": e.hash}
            async for e in audit.iter_events(session, tenant)
        ]


# -- trust registry ------------------------------------------------------------------------

def partner_json(partner: Partner) -> dict[str, Any]:
    return {
        "id": partner.id, "issuer": partner.issuer, "display_name": partner.display_name,
        "contact": partner.contact, "jwks_uri": partner.jwks_uri, "jwks": partner.jwks,
        "metadata": partner.metadata_, "status": partner.status,
        "expires_at": partner.expires_at, "created_at": int(partner.created_at),
    }


def link_json(link: TrustLink) -> dict[str, Any]:
    return {
        "id": link.id, "tenant": link.tenant_id, "issuer": link.issuer,
        "partner": link.partner_id, "peer_tenant": link.peer_tenant,
        "directions": trust.directions(link), "accept": bool(link.accept),
        "send": bool(link.send), "scope_ceiling": link.scope_ceiling, "status": link.status,
        "expires_at": link.expires_at, "created_at": int(link.created_at),
    }


def connection_json(row: ManagedConnectionRow) -> dict[str, Any]:
    return {
        "tenant": row.tenant_id, "client_id": row.client_id, "audience": row.audience,
        "rules": row.rules, "default_rule": row.default_rule, "resources": row.resources,
        "remote_client_id": row.remote_client_id, "max_lifetime": row.max_lifetime,
        "approver": row.approver,
    }


async def register_partner(broker: Broker, **fields: Any) -> dict[str, Any]:
    try:
        async with broker.sessions() as session, session.begin():
            partner = await partners.register(
                session, now=broker.clock.now(),
                allow_http_loopback=broker.settings.allow_http_loopback, **fields)
    except (partners.RegistryError, TypeError) as exc:
        raise _bad(exc) from exc
    return partner_json(partner)


async def list_partners(broker: Broker) -> list[dict[str, Any]]:
    async with broker.sessions() as session:
        return [partner_json(p) for p in await partners.list_partners(session)]


async def set_partner_status(broker: Broker, partner_id: str, status: str) -> dict[str, Any]:
    try:
        async with broker.sessions() as session, session.begin():
            partner = await partners.set_status(session, partner_id, status, broker.clock.now())
    except LookupError as exc:
        raise NotFound(f"no partner {partner_id!r}") from exc
    except partners.RegistryError as exc:
        raise _bad(exc) from exc
    if partner.jwks_uri:
        broker.remote_keys.forget(partner.jwks_uri)
    return partner_json(partner)


async def add_trust_link(
    broker: Broker, tenant: str, *, partner_id: str | None = None,
    peer_tenant: str | None = None, scope_ceiling: Sequence[str] | None = None,
    expires_at: float | None = None, accept: bool = False, send: bool = False,
) -> dict[str, Any]:
    """A trust link in at least one direction: ``accept`` (redeem what the peer issues),
    ``send`` (issue ID-JAGs to the peer)."""
    await existing_tenant(broker, tenant)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            link = await trust.add_link(
                scope, now=broker.clock.now(), partner_id=partner_id, peer_tenant=peer_tenant,
                issuer_of_tenant=broker.issuer(peer_tenant) if peer_tenant else None,
                scope_ceiling=scope_ceiling, expires_at=expires_at, accept=accept, send=send,
            )
    except partners.RegistryError as exc:
        raise _bad(exc) from exc
    return link_json(link)


async def set_trust_link_directions(
    broker: Broker, tenant: str, link_id: str, *, accept: bool | None = None,
    send: bool | None = None,
) -> dict[str, Any]:
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            link = await trust.set_directions(scope, link_id, broker.clock.now(), accept=accept,
                                              send=send)
    except LookupError as exc:
        raise NotFound(f"no trust link {link_id!r} in tenant {tenant!r}") from exc
    except partners.RegistryError as exc:
        raise _bad(exc) from exc
    return link_json(link)


async def list_trust_links(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [link_json(x) for x in await trust.list_links(scoped(session, tenant))]


async def set_trust_link_status(
    broker: Broker, tenant: str, link_id: str, status: str
) -> dict[str, Any]:
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            link = await trust.set_link_status(scope, link_id, status, broker.clock.now())
    except LookupError as exc:
        raise NotFound(f"no trust link {link_id!r} in tenant {tenant!r}") from exc
    except partners.RegistryError as exc:
        raise _bad(exc) from exc
    return link_json(link)


RULES = ("grant", "approve", "deny")


async def put_managed_connection(
    broker: Broker, tenant: str, *, client_id: str, audience: str, rules: dict[str, str],
    remote_client_id: str, resources: Sequence[str] = (), max_lifetime: int = 300,
    default_rule: str = "deny", approver: str | None = None,
) -> dict[str, Any]:
    """Create or replace the managed connection for (tenant, client, audience). ``approver``:
    who approves its ``approve`` scopes — None for the user themself, or ``group:<name>``."""
    if approver is not None and not APPROVER.match(approver):
        raise InvalidRequest("approver: group:<name> (1-128 characters, no spaces)")
    if not isinstance(rules, dict) or any(
        not isinstance(k, str) or not k or " " in k or v not in RULES for k, v in rules.items()
    ):
        raise InvalidRequest("rules: an object of scope -> grant | approve | deny")
    if default_rule not in RULES:
        raise InvalidRequest("default_rule: grant | approve | deny")
    if not 1 <= int(max_lifetime) <= 300:
        raise InvalidRequest("max_lifetime: 1..300 seconds (an ID-JAG is short-lived)")
    if not remote_client_id or not audience:
        raise InvalidRequest("audience and remote_client_id are required")
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        if await scope.get(Client, client_id) is None:
            raise NotFound(f"no client {client_id!r} in tenant {tenant!r}")
        row = await scope.get(ManagedConnectionRow, client_id, audience)
        if row is None:
            row = scope.add(ManagedConnectionRow(client_id=client_id, audience=audience,
                                                 created_at=now, remote_client_id=""))
        row.rules, row.default_rule = dict(rules), default_rule
        row.resources, row.remote_client_id = list(resources), remote_client_id
        row.max_lifetime, row.approver = int(max_lifetime), approver
        await scope.session.flush()
        await audit.record(scope.session, tenant, [audit.Event(
            "managed_connection.set", "changed", client_id,
            detail={"audience": audience, "rules": rules, "default_rule": default_rule,
                    "resources": list(resources), "remote_client_id": remote_client_id})], now)
        return connection_json(row)


async def list_managed_connections(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(ManagedConnectionRow).order_by(ManagedConnectionRow.client_id,
                                                  ManagedConnectionRow.audience))).scalars()
        return [connection_json(r) for r in rows]


async def delete_managed_connection(
    broker: Broker, tenant: str, client_id: str, audience: str
) -> dict[str, Any]:
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(ManagedConnectionRow, client_id, audience)
        if row is None:
            raise NotFound("no such managed connection")
        body = connection_json(row)
        await scope.session.delete(row)
        await audit.record(scope.session, tenant, [audit.Event(
            "managed_connection.deleted", "revoked", client_id,
            detail={"audience": audience})], broker.clock.now())
    return body
