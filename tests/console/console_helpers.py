"""A signed-in console browser for the httpx tests: a real tenant user (linked as a login
through an upstream links one) with a real session row, its cookie in an httpx client over the
ASGI app; the form's CSRF token read from the page as a browser would."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from broker.admin import roles
from broker.login_flow import SESSION_COOKIE
from broker.runtime import Broker
from tenants import login_sessions, pending, users
from tenants.scope import tenant_scope
from tests.admin.role_clients import assign
from tests.conftest import BASE_URL, new_tenant

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Browser:
    tenant: str
    sub: str
    http: httpx.AsyncClient
    cookie: str

    @property
    def base(self) -> str:
        return f"/t/{self.tenant}/console"

    async def csrf(self, page: str = "") -> str:
        r = await self.http.get(self.base + page)
        assert r.status_code == 200, r.text
        found = CSRF.search(r.text)
        assert found, "no form on the page"
        return found[1]

    def valid_csrf(self) -> str:
        """The token the console would put in this session's forms (for a role test where
        the page shows no form: the role, not the token, must refuse)."""
        handle = pending.handle_of(self.cookie)
        return hmac.new(handle.encode(), f"console|{self.tenant}".encode(),
                        hashlib.sha256).hexdigest()

    async def submit(self, path: str, page: str, **fields: str) -> httpx.Response:
        token = await self.csrf(page)
        return await self.http.post(self.base + path, data={"csrf": token, **fields})


async def sign_in(broker: Broker, transport: httpx.AsyncBaseTransport, tenant: str, subject: str,
                  groups: tuple[str, ...] = (), email: str | None = None) -> Browser:
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        user = await users.link(scope, "corp", users.Profile(
            subject=subject, email=email or f"{subject}@corp.example", groups=groups), now)
        value, _row = await login_sessions.start(scope, user_id=user.id, upstream="corp",
                                                 auth={"auth_time": int(now)}, now=now,
                                                 lifetime=3600)
    http = httpx.AsyncClient(transport=transport, base_url=BASE_URL,
                             cookies={SESSION_COOKIE: value})
    return Browser(tenant, user.id, http, value)


async def role_holders(broker: Broker, transport: httpx.AsyncBaseTransport, *,
                       stranger: bool = False) -> dict[str, Browser]:
    """A new tenant's admin, auditor and registry-only administrator, signed in (each by an
    upstream group); with ``stranger``, also an admin of another new tenant."""
    t = await new_tenant(broker)
    held = [(t, "admins", roles.TENANT_ADMIN), (t, "auditors", roles.TENANT_AUDITOR),
            (t, "registry", roles.REGISTRY_ADMIN)]
    other = await new_tenant(broker) if stranger else None
    if other is not None:
        held.append((other, "admins", roles.TENANT_ADMIN))
    for tenant, group, role in held:
        await assign(broker, tenant, "group", group, role)
    found = {"admin": await sign_in(broker, transport, t, "ada", ("admins",)),
             "auditor": await sign_in(broker, transport, t, "audrey", ("auditors",)),
             "registry": await sign_in(broker, transport, t, "rita", ("registry",))}
    if other is not None:
        found["stranger"] = await sign_in(broker, transport, other, "bob", ("admins",))
    return found


async def sign_out_all(browsers: dict[str, Browser]) -> None:
    for b in browsers.values():
        await b.http.aclose()


async def count_rows(broker: Broker, *models: Any) -> tuple[int, ...]:
    """How many rows each model's table holds (to prove a refusal wrote nothing)."""
    async with broker.sessions() as session:
        return tuple([int((await session.execute(select(func.count()).select_from(m)))
                          .scalar_one()) for m in models])
