"""Helpers for the runtime-control tests: tokens, introspection, a second replica, users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from broker.app import create_app
from broker.runtime import Broker
from broker.tokens import access_token_claims, mint_access_token
from tenants import grants, login_sessions, users
from tenants.models import LoginSession
from tenants.scope import tenant_scope
from tests.conftest import ADMIN_TOKEN, BASE_URL, TestClient

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CC = {"grant_type": "client_credentials"}


async def token(http: httpx.AsyncClient, client: TestClient) -> httpx.Response:
    return await http.post(client.token_url, data=CC, auth=client.basic)


async def access_token(http: httpx.AsyncClient, client: TestClient) -> str:
    r = await token(http, client)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def active(http: httpx.AsyncClient, probe: TestClient, value: str) -> bool:
    r = await http.post(f"{probe.issuer}/introspect", data={"token": value}, auth=probe.basic)
    assert r.status_code == 200, r.text
    return bool(r.json()["active"])


async def whoami(http: httpx.AsyncClient, client: TestClient, value: str) -> int:
    r = await http.get(f"{client.issuer}/demo/whoami",
                       headers={"Authorization": f"Bearer {value}"})
    return r.status_code


async def admin(http: httpx.AsyncClient, method: str, path: str,
                body: dict[str, Any] | None = None) -> httpx.Response:
    return await http.request(method, f"{BASE_URL}/admin/v1{path}", json=body, headers=ADMIN)


@asynccontextmanager
async def replica_http(replica: Broker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(replica, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as other:
        yield other


async def new_user(broker: Broker, tenant: str, subject: str = "alice") -> str:
    async with tenant_scope(broker.sessions, tenant) as scope:
        user = await users.link(scope, "corp", users.Profile(subject, email=f"{subject}@x"),
                                broker.clock.now())
        return user.id


async def user_token(broker: Broker, client: TestClient, sub: str, *,
                     jti: str | None = None) -> str:
    tenant = await broker.tenant(client.tenant)
    claims = access_token_claims(
        issuer=tenant.issuer, subject=sub, client_id=client.client_id,
        audience=[f"{tenant.issuer}/demo"], scope=["read"], now=broker.clock.now(),
        lifetime=300, jti=jti)
    return (await mint_access_token(broker, tenant, claims)).token


async def user_grant(broker: Broker, client: TestClient, sub: str) -> tuple[str, str]:
    """(grant id, refresh token) of a grant of ``sub`` to ``client``."""
    async with tenant_scope(broker.sessions, client.tenant) as scope:
        grant = await grants.create(
            scope, client_id=client.client_id, user_id=sub, scope_=["read"], details=[],
            audience=[f"{client.issuer}/demo"], auth={}, session_id=None,
            now=broker.clock.now(), lifetime=3600)
        refresh = await grants.add_refresh_token(scope, grant, jkt=None, now=broker.clock.now())
        return grant.id, refresh


async def user_session(broker: Broker, tenant: str, sub: str) -> str:
    async with tenant_scope(broker.sessions, tenant) as scope:
        _, row = await login_sessions.start(scope, user_id=sub, upstream="corp", auth={},
                                            now=broker.clock.now(), lifetime=3600)
        return row.handle


async def session_ended(broker: Broker, tenant: str, handle: str) -> bool:
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(LoginSession, handle)
        assert row is not None
        return row.ended_at is not None


async def refresh(http: httpx.AsyncClient, client: TestClient, value: str) -> httpx.Response:
    return await http.post(client.token_url, auth=client.basic,
                           data={"grant_type": "refresh_token", "refresh_token": value})
