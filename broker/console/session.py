"""Who is at the console: the tenant's signed-in user (the same browser session every login of
the tenant makes) and the administrative roles they hold now, directly or through an upstream
group; and the CSRF token of their forms (an HMAC of the session, checked on every POST, with
the Origin header when the browser sends one)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters.errors import InvalidRequest
from broker import login_flow
from broker.admin import roles
from broker.console import render
from broker.runtime import Broker, TenantView
from tenants import role_assignments
from tenants.models import LoginSession, User
from tenants.scope import tenant_scope


@dataclass(frozen=True)
class Admin:
    tenant: TenantView
    user: User
    session: LoginSession
    principal: roles.AdminPrincipal

    @property
    def csrf(self) -> str:
        return hmac.new(self.session.handle.encode(), b"console|" + self.tenant.id.encode(),
                        hashlib.sha256).hexdigest()

    @property
    def can_write(self) -> bool:
        return roles.TENANT_ADMIN in self.principal.roles

    @property
    def tenant_roles(self) -> frozenset[str]:
        return self.principal.roles & roles.TENANT_ROLES

    @property
    def registry_admin(self) -> bool:
        return roles.REGISTRY_ADMIN in self.principal.roles

    def uses(self, section: str, registry_sections: frozenset[str]) -> bool:
        """Whether the navigation offers ``section`` (the operations decide anyway)."""
        if section == "partners":
            return self.registry_admin
        return bool(self.tenant_roles) or section in registry_sections

    @property
    def name(self) -> str:
        return self.user.email or self.user.name or self.user.id


def home(tenant: TenantView) -> str:
    return f"/t/{tenant.id}/console"


async def signed_in(request: Request, broker: Broker, tenant: TenantView
                    ) -> Admin | Response:
    """The administrator, or the answer instead: a login through the tenant's IdP that comes
    back to this page (GET), or a refusal page (no role; a POST without a session)."""
    found = await login_flow.current_session(broker, tenant, request)
    if found is None:
        if request.method != "GET":
            return render.page("console_refused.html", status=401, tenant=tenant,
                               message="Your session has ended. Sign in again.")
        back = request.url.path if request.url.path.startswith(home(tenant)) else home(tenant)
        login = f"{tenant.issuer}/login?flow="
        return await login_flow.park_return(
            broker, tenant, back, lambda h: RedirectResponse(login + h, status_code=303))
    session, user = found
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        held = await role_assignments.roles_of(scope, "user", user.id, user.groups or [])
    principal = roles.user(tenant.id, user.id, held)
    if not held & roles.ROLES:
        return render.page("console_refused.html", status=403, tenant=tenant,
                           message="You are signed in, but you hold no administrative role "
                           "at this organisation. Ask one of its administrators.")
    return Admin(tenant, user, session, principal)


def check_csrf(request: Request, admin: Admin, token: str | None, base_url: str) -> None:
    """Refuse a form that is not the console's own (wrong token, or another Origin)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != base_url.rstrip("/"):
        raise InvalidRequest("the form came from another site")
    if not hmac.compare_digest((token or "").encode(), admin.csrf.encode()):
        raise InvalidRequest("the form was not the console's (reload the page and try again)")
