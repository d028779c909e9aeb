"""Routes of a tenant's resource servers (protected resources, MCP servers)."""

from __future__ import annotations

from broker.admin.models.resources import ResourceCreate, ResourceOut, ResourcePatch
from broker.admin.roles import READ, WRITE
from broker.admin.route import EXISTS, AdminRoute, T, route
from broker.admin.services import resources

RS = T + "/resource-servers/{resource}"

RESOURCES: tuple[AdminRoute, ...] = (
    route("GET", T + "/resource-servers", "List resource servers", "resource servers",
          lambda c: resources.list_resources(c.broker, c["tenant"]),
          response=list[ResourceOut], roles=READ, name="list_resources"),
    route("POST", T + "/resource-servers", "Register a resource server (its identifier URL, "
          "scopes, clients, token lifetime, DPoP/mTLS requirement)", "resource servers",
          lambda c: resources.create_resource(c.broker, c["tenant"], c.body),
          request=ResourceCreate, response=ResourceOut, status=201,
          creates=(("resource", "name"),), conflict=EXISTS, roles=WRITE,
          name="create_resource"),
    route("GET", RS, "Read a resource server", "resource servers",
          lambda c: resources.get_resource(c.broker, c["tenant"], c["resource"]),
          response=ResourceOut, roles=READ, name="get_resource"),
    route("PATCH", RS, "Change a resource server (the merged registration is checked whole)",
          "resource servers",
          lambda c: resources.update_resource(c.broker, c["tenant"], c["resource"], c.body),
          request=ResourcePatch, response=ResourceOut, roles=WRITE, name="update_resource"),
    route("DELETE", RS, "Delete a resource server (tokens already issued stay valid until "
          "they expire)", "resource servers",
          lambda c: resources.delete_resource(c.broker, c["tenant"], c["resource"]),
          response=ResourceOut, roles=WRITE, name="delete_resource"),
)
