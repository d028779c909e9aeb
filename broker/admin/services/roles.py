"""Role assignments of a tenant: list, assign, remove. Only the operator gives or takes
``registry_admin`` (it reaches beyond the tenant); a user or client must exist to be given a
role (a group is whatever the tenant's upstreams assert); a role held already is a 409. Each
change is one audit event."""

from __future__ import annotations

from adapters.errors import AccessDenied, NotFound
from broker.admin import roles
from broker.admin.models.roles import RoleAssignmentIn, RoleAssignmentOut
from broker.admin.services.common import existing_tenant
from broker.runtime import Broker
from tenants import audit, role_assignments
from tenants.models import Client, RoleAssignment, User
from tenants.scope import TenantScope, scoped, tenant_scope


def _out(tenant: str, row: RoleAssignment) -> RoleAssignmentOut:
    return RoleAssignmentOut(tenant=tenant, kind=row.kind, subject=row.subject, role=row.role,
                             created_at=int(row.created_at), created_by=row.created_by)


def _check_giver(principal: roles.AdminPrincipal, role: str) -> None:
    if role in roles.REGISTRY_ROLES and not principal.operator:
        raise AccessDenied("only the operator gives or takes registry_admin")


async def _check_subject(scope: TenantScope, tenant: str, body: RoleAssignmentIn) -> None:
    if body.kind == "user" and await scope.get(User, body.subject) is None:
        raise NotFound(f"no user {body.subject!r} in tenant {tenant!r}")
    if body.kind == "client" and await scope.get(Client, body.subject) is None:
        raise NotFound(f"no client {body.subject!r} in tenant {tenant!r}")


async def list_role_assignments(broker: Broker, tenant: str) -> list[RoleAssignmentOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = await role_assignments.listing(scoped(session, tenant))
        return [_out(tenant, r) for r in rows]


async def assign_role(broker: Broker, tenant: str, body: RoleAssignmentIn,
                      principal: roles.AdminPrincipal) -> RoleAssignmentOut:
    _check_giver(principal, body.role)
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        await _check_subject(scope, tenant, body)
        row = await role_assignments.assign(scope, body.kind, body.subject, body.role,
                                            now=now, by=principal.actor)
        await audit.record(scope.session, tenant, [audit.Event(
            "role.assigned", "changed", body.subject if body.kind == "client" else None,
            body.subject if body.kind == "user" else None,
            {"kind": body.kind, "subject": body.subject, "role": body.role})], now)
        return _out(tenant, row)


async def remove_role(broker: Broker, tenant: str, body: RoleAssignmentIn,
                      principal: roles.AdminPrincipal) -> RoleAssignmentOut:
    _check_giver(principal, body.role)
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await role_assignments.remove(scope, body.kind, body.subject, body.role)
        if row is None:
            raise NotFound(f"{body.kind} {body.subject!r} does not hold {body.role}")
        await audit.record(scope.session, tenant, [audit.Event(
            "role.removed", "changed", body.subject if body.kind == "client" else None,
            body.subject if body.kind == "user" else None,
            {"kind": body.kind, "subject": body.subject, "role": body.role})], now)
        return _out(tenant, row)
