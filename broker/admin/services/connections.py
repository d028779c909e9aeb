"""Managed connections of a tenant: for (client, audience) the rule per scope (grant,
approve, deny), the remote client id, resources and the ID-JAG lifetime ceiling. Create or
replace (PUT), list, read, change (PATCH), delete. A connection is configuration only: deleting
it removes the row (the audit chain keeps what it was)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from adapters.errors import NotFound
from broker.admin.errors import InvalidField
from broker.admin.models.connections import (
    ManagedConnectionOut,
    ManagedConnectionPatch,
    ManagedConnectionPut,
)
from broker.admin.services.common import existing_tenant
from broker.runtime import Broker
from tenants import audit
from tenants.models import Client, ManagedConnectionRow, Tenant
from tenants.scope import TenantScope, scoped, tenant_scope

SETTINGS = ("rules", "default_rule", "resources", "remote_client_id", "max_lifetime",
            "approver")


def connection_out(row: ManagedConnectionRow) -> ManagedConnectionOut:
    return ManagedConnectionOut(
        tenant=row.tenant_id, client_id=row.client_id, audience=row.audience,
        rules=dict(row.rules or {}), default_rule=row.default_rule,
        resources=list(row.resources or []), remote_client_id=row.remote_client_id,
        max_lifetime=row.max_lifetime, approver=row.approver)


def _missing() -> NotFound:
    return NotFound("no such managed connection")


async def _audit(scope: TenantScope, row: ManagedConnectionRow, action: str, outcome: str,
                 now: float) -> None:
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        action, outcome, row.client_id,
        detail={"audience": row.audience, "rules": dict(row.rules or {}),
                "default_rule": row.default_rule, "resources": list(row.resources or []),
                "remote_client_id": row.remote_client_id, "approver": row.approver})], now)


async def put_managed_connection(broker: Broker, tenant: str,
                                 body: ManagedConnectionPut) -> ManagedConnectionOut:
    """Create or replace the managed connection for (tenant, client, audience)."""
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        if await scope.get(Client, body.client_id) is None:  # the body names it: a 400
            raise InvalidField("client_id", f"no client {body.client_id!r} in tenant "
                                            f"{tenant!r}")
        row = await scope.get(ManagedConnectionRow, body.client_id, body.audience)
        if row is None:
            row = scope.add(ManagedConnectionRow(client_id=body.client_id,
                                                 audience=body.audience, created_at=now,
                                                 remote_client_id=""))
        _apply(row, body.model_dump(include=set(SETTINGS)))
        await _check_resources(broker, row)
        await scope.session.flush()
        await _audit(scope, row, "managed_connection.set", "changed", now)
        return connection_out(row)


def _apply(row: ManagedConnectionRow, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(row, name, list(value) if name == "resources" else
                dict(value) if name == "rules" else value)


async def list_managed_connections(broker: Broker, tenant: str) -> list[ManagedConnectionOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await scoped(session, tenant).session.execute(
            select(ManagedConnectionRow).order_by(ManagedConnectionRow.client_id,
                                                  ManagedConnectionRow.audience))).scalars()
        return [connection_out(r) for r in rows]


async def get_managed_connection(broker: Broker, tenant: str, client_id: str,
                                 audience: str) -> ManagedConnectionOut:
    async with broker.sessions() as session:
        row = await scoped(session, tenant).get(ManagedConnectionRow, client_id, audience)
    if row is None:
        raise _missing()
    return connection_out(row)


async def update_managed_connection(broker: Broker, tenant: str, client_id: str,
                                    audience: str, body: ManagedConnectionPatch
                                    ) -> ManagedConnectionOut:
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(ManagedConnectionRow, client_id, audience)
        if row is None:
            raise _missing()
        _apply(row, body.model_dump(include=body.model_fields_set))
        await _check_resources(broker, row)
        await scope.session.flush()
        await _audit(scope, row, "managed_connection.set", "changed", now)
        return connection_out(row)


async def _check_resources(broker: Broker, row: ManagedConnectionRow) -> None:
    """When the audience is a tenant of this deployment, every resource the connection names
    must be a resource server registered there (or, as before resource servers, one of the
    audiences of the remote client there): a typo is a 400 now, not an ID-JAG refused later."""
    prefix = broker.issuer("")
    if not row.audience.startswith(prefix) or not row.resources:
        return
    peer = row.audience.removeprefix(prefix)
    async with broker.sessions() as session:
        if "/" in peer or await session.get(Tenant, peer) is None:
            return
        remote = await scoped(session, peer).get(Client, row.remote_client_id)
    audiences = set(remote.audiences or []) if remote is not None else set()
    for resource in row.resources:
        if resource in audiences:
            continue
        rs = await broker.resource_server(peer, identifier=resource)
        if rs is None:
            raise InvalidField("resources", f"{resource} is not a resource server of tenant "
                                            f"{peer!r}")
        if not rs.allows_client(row.remote_client_id):
            raise InvalidField("resources", f"resource server {rs.name!r} of tenant {peer!r} "
                                            f"does not let client {row.remote_client_id!r} in")


async def delete_managed_connection(broker: Broker, tenant: str, client_id: str,
                                    audience: str) -> ManagedConnectionOut:
    await existing_tenant(broker, tenant, change=True)
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(ManagedConnectionRow, client_id, audience)
        if row is None:
            raise _missing()
        out = connection_out(row)
        await scope.session.delete(row)
        await audit.record(scope.session, tenant, [audit.Event(
            "managed_connection.deleted", "revoked", client_id,
            detail={"audience": audience})], broker.clock.now())
    return out
