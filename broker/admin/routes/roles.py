"""Routes of a tenant's administrative roles (who may administer it)."""

from __future__ import annotations

from broker.admin.models.roles import RoleAssignmentIn, RoleAssignmentOut
from broker.admin.roles import READ, WRITE
from broker.admin.route import EXISTS, AdminRoute, T, route
from broker.admin.services import roles

ROLES: tuple[AdminRoute, ...] = (
    route("GET", T + "/role-assignments", "List who holds which administrative role", "roles",
          lambda c: roles.list_role_assignments(c.broker, c["tenant"]),
          response=list[RoleAssignmentOut], roles=READ, name="list_role_assignments"),
    route("POST", T + "/role-assignments", "Give a user, a group or an admin client a role "
          "(registry_admin: the operator only)", "roles",
          lambda c: roles.assign_role(c.broker, c["tenant"], c.body, c.principal),
          request=RoleAssignmentIn, response=RoleAssignmentOut, status=201, conflict=EXISTS,
          roles=WRITE, name="assign_role"),
    route("POST", T + "/role-assignments/remove", "Take a role away", "roles",
          lambda c: roles.remove_role(c.broker, c["tenant"], c.body, c.principal),
          request=RoleAssignmentIn, response=RoleAssignmentOut, roles=WRITE,
          name="remove_role"),
)
