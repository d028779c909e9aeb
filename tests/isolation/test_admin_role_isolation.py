"""Tenant isolation of the admin API with each role: administrators, auditors and registry
administrators of tenant A (real admin clients, client credentials + DPoP) call every route of
tenant B with the ids of B's real objects (a client, an upstream, an API key, a trust link, a
managed connection, a user) and get ``404 not_found`` every time; B's rows and audit chain
stay exactly as they were."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from broker.admin import dispatch, roles
from broker.admin.route import PREFIX
from broker.admin.routes import ROUTES, AdminRoute
from broker.runtime import Broker
from tenants import users
from tenants.models import (
    ApiKey,
    AuditEvent,
    Client,
    ManagedConnectionRow,
    RoleAssignment,
    TrustLink,
    Upstream,
)
from tenants.scope import tenant_scope
from tests import admin_ops as ops
from tests.admin.admin_helpers import metadata, new_key
from tests.admin.role_clients import admin_client, path_of
from tests.conftest import new_client, new_tenant

TENANT_ROUTES = [r for r in ROUTES if "{tenant}" in r.path]
TABLES = (AuditEvent, Client, Upstream, ApiKey, TrustLink, ManagedConnectionRow,
          RoleAssignment)


async def _counts(broker: Broker, tenant: str) -> dict[str, int]:
    out = {}
    async with broker.sessions() as session:
        for model in TABLES:
            out[model.__name__] = int((await session.execute(select(func.count()).select_from(
                model).where(model.tenant_id == tenant))).scalar_one())
    return out


@pytest.fixture(scope="module")
async def b_objects(broker: Broker) -> dict[str, str]:
    b, peer = await new_tenant(broker), await new_tenant(broker)
    client = await new_client(broker, b, name="b's client", audiences=["https://api.b.example"])
    await ops.create_upstream(broker, b, {"name": "b-saml", "kind": "saml",
                                          "saml": {"metadata_xml": metadata(new_key())}})
    key = await dispatch.run(broker, "create_api_key", {"tenant": b}, principal=roles.OPERATOR,
                             body={"client_id": client.client_id, "name": "b key"})
    link = await ops.add_trust_link(broker, b, peer_tenant=peer, accept=True)
    await ops.put_managed_connection(broker, b, client_id=client.client_id,
                                     audience="https://api.b.example",
                                     remote_client_id="remote", rules={"read": "grant"})
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, b) as scope:
        user = await users.link(scope, "b-saml", users.Profile(subject="bob"), now)
    return {"tenant": b, "client_id": client.client_id, "upstream": "b-saml",
            "key_id": key["key_id"], "link": link["id"], "audience": "https://api.b.example",
            "sub": user.id, "partner": "no-partner", "approval": "none",
            "entity_id": "https://sp.b.example",
            "kid": next(k.kid for k in await broker.keys.keys(b) if k.state == "active"),
            "resource": "no-resource", "invitation": "0123456789abcdef"}


@pytest.mark.parametrize("who", [roles.TENANT_ADMIN, roles.TENANT_AUDITOR,
                                 roles.REGISTRY_ADMIN])
async def test_every_route_of_b_is_a_404_for_a(broker: Broker, http: httpx.AsyncClient,
                                               b_objects: dict[str, str], who: str) -> None:
    a = await new_tenant(broker)
    caller = await admin_client(broker, http, a, who)
    b = b_objects["tenant"]
    before = await _counts(broker, b)
    statuses: dict[str, int] = {}
    for r in TENANT_ROUTES:
        path = PREFIX + path_of(r.path, **b_objects)
        got = await caller.call(http, r.method, path,
                                json={} if r.request is not None else None)
        statuses[r.operation_id] = got.status_code
        assert got.status_code == 404, (who, r.operation_id, got.text)
        assert got.json()["error"] == "not_found"
        assert b not in got.text or "no such tenant" in got.text
    assert await _counts(broker, b) == before
    assert set(statuses) == {r.operation_id for r in TENANT_ROUTES}


def _route(name: str) -> AdminRoute:
    return next(r for r in ROUTES if r.operation_id == name)


async def test_the_same_calls_at_a_work(broker: Broker, http: httpx.AsyncClient) -> None:
    """The refusals above are the tenant's, not the request's: A's admin gets A's objects."""
    a = await new_tenant(broker)
    admin = await admin_client(broker, http, a, roles.TENANT_ADMIN)
    mine = await new_client(broker, a, name="a's client")
    for name, params in (("list_clients", {}), ("get_client", {"client_id": mine.client_id}),
                         ("list_keys", {}), ("verify_audit", {})):
        path = PREFIX + path_of(_route(name).path, tenant=a, **params)
        got = await admin.call(http, "GET", path)
        assert got.status_code == 200, (name, got.text)
