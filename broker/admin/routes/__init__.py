"""The admin API's one route table, in order: ``ROUTES`` (the areas' rows, see ``route``
for a row), and what each path parameter is. ``broker.admin.http`` serves it and
``broker.admin.openapi`` documents it; a route without models fails ``tests/admin``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import StringConstraints

from broker.admin.models.common import Audience, ClientId, PartnerId, TenantName, UpstreamName
from broker.admin.models.legacy_apps import EntityId
from broker.admin.models.resources import ResourceName
from broker.admin.route import PREFIX, AdminRoute, Call
from broker.admin.routes.approvals import APPROVALS
from broker.admin.routes.login import LOGIN
from broker.admin.routes.registry import REGISTRY
from broker.admin.routes.resources import RESOURCES
from broker.admin.routes.roles import ROLES
from broker.admin.routes.runtime import RUNTIME
from broker.admin.routes.self_registration import SELF_REGISTRATION
from broker.admin.routes.tenants import CLIENTS, TENANTS

__all__ = ["PATH_PARAMETERS", "PREFIX", "ROUTES", "AdminRoute", "Call"]

ROUTES: tuple[AdminRoute, ...] = (*TENANTS, *CLIENTS, *REGISTRY, *SELF_REGISTRATION, *LOGIN,
                                   *RUNTIME, *RESOURCES, *ROLES, *APPROVALS)

# what each path parameter is (for the OpenAPI document)
PATH_PARAMETERS: dict[str, tuple[Any, str]] = {
    "tenant": (TenantName, "the tenant's name"),
    "client_id": (ClientId, "a client of the tenant"),
    "partner": (PartnerId, "a partner's id in the registry"),
    "link": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
             "a trust link's id"),
    "audience": (Audience, "the managed connection's audience (percent-encoded)"),
    "upstream": (UpstreamName, "an upstream IdP's name"),
    "key_id": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
               "an API key's public id"),
    "sub": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
            "a user's sub at this tenant"),
    "entity_id": (EntityId, "the app's SAML entity ID (percent-encoded)"),
    "kid": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
            "a signing key's kid"),
    "resource": (ResourceName, "a resource server's name"),
    "approval": (Annotated[str, StringConstraints(min_length=1, max_length=100)],
                 "a pending request's id"),
    "invitation": (Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")],
                   "an invitation's id"),
}
