"""Resource servers of a tenant: register, list, read, change (PATCH), delete. Each answer
names the RFC 9728 metadata URL tessera serves for the resource. Configuration only: deleting
one removes the row (the audit chain keeps what it was); tokens already issued for it stay
valid until they expire or are revoked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from adapters.errors import Conflict, NotFound
from broker.admin.errors import InvalidField
from broker.admin.models.resources import ResourceCreate, ResourceOut, ResourcePatch
from broker.admin.services.common import existing_tenant
from broker.runtime import Broker
from tenants import audit
from tenants.directory import bump_epoch
from tenants.models import Client, ResourceServerRow
from tenants.scope import TenantScope, scoped, tenant_scope

SETTINGS = ("display_name", "scopes", "default_scopes", "allowed_clients",
            "access_token_lifetime", "require_dpop", "require_mtls")


def metadata_location(broker: Broker, tenant: str, name: str) -> str:
    return f"{broker.issuer(tenant)}/resources/{name}/.well-known/oauth-protected-resource"


def resource_out(broker: Broker, row: ResourceServerRow) -> ResourceOut:
    return ResourceOut(
        tenant=row.tenant_id, name=row.name, identifier=row.identifier,
        display_name=row.display_name, scopes=dict(row.scopes or {}),
        default_scopes=list(row.default_scopes or []),
        allowed_clients=list(row.allowed_clients or []),
        access_token_lifetime=row.access_token_lifetime, require_dpop=row.require_dpop,
        require_mtls=row.require_mtls, authorization_server=broker.issuer(row.tenant_id),
        resource_metadata_url=metadata_location(broker, row.tenant_id, row.name))


def _missing(tenant: str, name: str) -> NotFound:
    return NotFound(f"no resource server {name!r} in tenant {tenant!r}")


async def _check(scope: TenantScope, row: ResourceServerRow) -> None:
    """The merged row whole: defaults among the scopes, every allowed client registered."""
    unknown = [s for s in row.default_scopes or [] if s not in (row.scopes or {})]
    if unknown:
        raise InvalidField("default_scopes", f"not among scopes: {' '.join(unknown)}")
    for client_id in row.allowed_clients or []:
        if await scope.get(Client, client_id) is None:
            raise InvalidField("allowed_clients", f"no client {client_id!r} in tenant "
                                                  f"{scope.tenant_id!r}")


async def _audit(scope: TenantScope, row: ResourceServerRow, action: str, outcome: str,
                 now: float) -> None:
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        action, outcome, None,
        detail={"name": row.name, "identifier": row.identifier,
                "scopes": sorted(row.scopes or {}),
                "default_scopes": list(row.default_scopes or []),
                "allowed_clients": list(row.allowed_clients or []),
                "access_token_lifetime": row.access_token_lifetime,
                "require_dpop": row.require_dpop, "require_mtls": row.require_mtls})], now)


def _apply(row: ResourceServerRow, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(row, name, dict(value) if isinstance(value, dict) else
                list(value) if isinstance(value, list | tuple) else value)


async def create_resource(broker: Broker, tenant: str, body: ResourceCreate) -> ResourceOut:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        if await scope.get(ResourceServerRow, body.name) is not None:
            raise Conflict(f"resource server {body.name!r} exists in tenant {tenant!r}")
        same = (await scope.session.execute(select(ResourceServerRow).where(
            ResourceServerRow.identifier == body.identifier))).scalars().first()
        if same is not None:
            raise Conflict(f"identifier: resource server {same.name!r} has this identifier")
        row = scope.add(ResourceServerRow(name=body.name, identifier=body.identifier,
                                          display_name=body.display_name or body.name,
                                          created_at=now))
        _apply(row, body.model_dump(include=set(SETTINGS) - {"display_name"}))
        await _check(scope, row)
        await scope.session.flush()
        await bump_epoch(scope.session, tenant)  # token decisions cache resource servers
        await _audit(scope, row, "resource_server.created", "changed", now)
        return resource_out(broker, row)


async def list_resources(broker: Broker, tenant: str) -> list[ResourceOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(ResourceServerRow).order_by(ResourceServerRow.name))).scalars()
        return [resource_out(broker, r) for r in rows]


async def get_resource(broker: Broker, tenant: str, name: str) -> ResourceOut:
    async with broker.sessions() as session:
        row = await scoped(session, tenant).get(ResourceServerRow, name)
    if row is None:
        raise _missing(tenant, name)
    return resource_out(broker, row)


async def update_resource(broker: Broker, tenant: str, name: str,
                          body: ResourcePatch) -> ResourceOut:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(ResourceServerRow, name)
        if row is None:
            raise _missing(tenant, name)
        _apply(row, body.model_dump(include=body.model_fields_set))
        await _check(scope, row)
        await scope.session.flush()
        await bump_epoch(scope.session, tenant)
        await _audit(scope, row, "resource_server.changed", "changed", now)
        return resource_out(broker, row)


async def delete_resource(broker: Broker, tenant: str, name: str) -> ResourceOut:
    await existing_tenant(broker, tenant, change=True)
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(ResourceServerRow, name)
        if row is None:
            raise _missing(tenant, name)
        out = resource_out(broker, row)
        await scope.session.delete(row)
        await bump_epoch(scope.session, tenant)
        await audit.record(scope.session, tenant, [audit.Event(
            "resource_server.deleted", "revoked", None,
            detail={"name": name, "identifier": out.identifier})], broker.clock.now())
    return out
