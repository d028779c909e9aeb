"""tessera as a SAML 2.0 IdP for a tenant's legacy apps (placeholder until it lands)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from broker import pages
from broker.login_flow import Parked
from broker.runtime import Broker, TenantView
from tenants.models import LoginSession, User


async def resume(broker: Broker, request: Request, tenant: TenantView, flow: Parked,
                 session: LoginSession, user: User) -> Response:
    """Answer the parked AuthnRequest now that the user has logged in."""
    return pages.error_page("invalid_request", "SAML sign-on is not available yet.")


async def refuse(broker: Broker, tenant: TenantView, flow: Parked, reason: str) -> Response:
    """The login failed: tell the legacy app (a SAML error Response) or the user."""
    return pages.error_page("access_denied", reason, status=403)
