"""Who may call which admin route: the principals, their roles, and the one check every
admin operation passes (``authorize``), whether it came over HTTP, from the console or from
the local command line.

    operator         the super-admin bearer (and the local command line): every route
    tenant_admin     everything inside one tenant (its own; another tenant's is a 404)
    tenant_auditor   read-only inside one tenant, audit export and verify included
    registry_admin   the trust registry's partners (registry-wide, no tenant's rows)

Every route declares ``roles`` (the roles besides the operator that may call it; empty:
operator only). A tenant-bound principal asking for another tenant's path gets ``404
not_found`` whatever the route (nothing tells it the tenant exists); a role the route does not
list gets ``403 access_denied``. Refusals happen before the handler runs: nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapters.errors import AccessDenied, NotFound

TENANT_ADMIN = "tenant_admin"
TENANT_AUDITOR = "tenant_auditor"
REGISTRY_ADMIN = "registry_admin"

TENANT_ROLES = frozenset({TENANT_ADMIN, TENANT_AUDITOR})  # bound to the principal's tenant
REGISTRY_ROLES = frozenset({REGISTRY_ADMIN})  # registry-wide
ROLES = TENANT_ROLES | REGISTRY_ROLES

# the declarations routes use
OPERATOR_ONLY: frozenset[str] = frozenset()
READ = frozenset({TENANT_ADMIN, TENANT_AUDITOR})  # a tenant's configuration, read
WRITE = frozenset({TENANT_ADMIN})  # a tenant's configuration, changed
REGISTRY = frozenset({REGISTRY_ADMIN})


@dataclass(frozen=True)
class AdminPrincipal:
    """The caller of an admin operation. ``actor`` is what audit events name:
    ``operator``, ``cli``, ``user:<tenant>/<sub>`` or ``client:<tenant>/<client_id>``."""

    actor: str
    tenant: str | None = None  # the tenant a user or client belongs to
    roles: frozenset[str] = frozenset()
    operator: bool = False

    def may(self, role: str) -> bool:
        return self.operator or role in self.roles

    def roles_at(self, tenant: str | None) -> frozenset[str]:
        """The roles that count for a path of ``tenant`` (None: a path of no tenant)."""
        if tenant is not None and tenant == self.tenant:
            return self.roles
        return self.roles & REGISTRY_ROLES


OPERATOR = AdminPrincipal("operator", operator=True)
CLI = AdminPrincipal("cli", operator=True)


def user(tenant: str, sub: str, roles: frozenset[str]) -> AdminPrincipal:
    return AdminPrincipal(f"user:{tenant}/{sub}", tenant, roles)


def client(tenant: str, client_id: str, roles: frozenset[str]) -> AdminPrincipal:
    return AdminPrincipal(f"client:{tenant}/{client_id}", tenant, roles)


def authorize(principal: AdminPrincipal, allowed: frozenset[str],
              params: Mapping[str, str]) -> None:
    """Raise unless ``principal`` may call a route allowing ``allowed`` with ``params``."""
    if principal.operator:
        return
    tenant = params.get("tenant")
    usable = principal.roles_at(tenant) & allowed
    if tenant is not None and tenant != principal.tenant and not usable:
        raise NotFound("no such tenant")
    if not usable:
        raise AccessDenied("your role does not allow this operation")
