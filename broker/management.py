"""Administrative operations shared by the CLI and the admin API (one implementation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.errors import InvalidRequest, NotFound
from broker.runtime import Broker
from tenants import audit, directory
from tenants.models import Client, Tenant
from tenants.scope import scoped, tenant_scope


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
        "created_at": int(client.created_at),
    }
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


async def _existing_tenant(broker: Broker, name: str) -> None:
    async with broker.sessions() as session:
        if await session.get(Tenant, name) is None:
            raise NotFound(f"no tenant {name!r}")


async def create_client(
    broker: Broker, tenant: str, *, name: str, client_id: str | None = None,
    auth_method: str = "client_secret_basic", scopes: Sequence[str] = (),
    audiences: Sequence[str] = (), jwks: dict[str, Any] | None = None,
    access_token_lifetime: int = 300, dpop_bound_access_tokens: bool = False,
) -> dict[str, Any]:
    await _existing_tenant(broker, tenant)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            created = await directory.create_client(
                scope, name=name, hasher_hash=broker.hasher.hash, now=broker.clock.now(),
                client_id=client_id, auth_method=auth_method, scopes=scopes,
                audiences=audiences, jwks=jwks, access_token_lifetime=access_token_lifetime,
                dpop_bound_access_tokens=dpop_bound_access_tokens,
            )
    except (directory.DirectoryError, TypeError) as exc:
        raise _bad(exc) from exc
    return client_json(created.client, created.secret)


async def list_clients(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await _existing_tenant(broker, tenant)
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
    await _existing_tenant(broker, tenant)
    rotation = await broker.keys.rotate(tenant)
    return {
        "tenant": tenant,
        "active": rotation.activated,
        "retiring": rotation.retiring,
        "next": rotation.published_next,
        "retired": list(rotation.retired),
    }


async def list_keys(broker: Broker, tenant: str) -> list[dict[str, Any]]:
    await _existing_tenant(broker, tenant)
    return [
        {"kid": k.kid, "alg": k.alg, "state": k.state, "activated_at": k.activated_at,
         "retire_after": k.retire_after}
        for k in await broker.keys.keys(tenant)
    ]


async def verify_audit(broker: Broker, tenant: str) -> dict[str, Any]:
    await _existing_tenant(broker, tenant)
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
    await _existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        return [
            {"tenant": tenant, "seq": e.seq, "at": e.at, "action": e.action,
             "outcome": e.outcome, "client_id": e.client_id, "subject": e.subject,
             "detail": e.detail, "prev_hash": e.prev_hash, "hash": e.hash}
            async for e in audit.iter_events(session, tenant)
        ]
