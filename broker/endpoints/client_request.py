"""The shared front of client-authenticated endpoints (token, introspection, revocation):
read the form, read the presented credentials, fetch tenant and client in one read, judge."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from broker.client_auth import AuthenticatedClient, presented_credentials, verify_client
from broker.forms import Form, read_form
from broker.runtime import Broker, TenantView


@dataclass
class ClientRequest:
    """What is known so far; on refusal the endpoint audits with whatever was learnt."""

    tenant_id: str
    tenant: TenantView | None = None
    form: Form | None = None
    client: AuthenticatedClient | None = None
    presented_client_id: str | None = None

    async def known_tenant(self, broker: Broker) -> TenantView:
        """The tenant, fetched if the refusal came before it was (raises ``NotFound``)."""
        if self.tenant is None:
            self.tenant, _ = await broker.lookup(self.tenant_id, None)
        return self.tenant


async def authenticate_request(
    broker: Broker, request: Request, state: ClientRequest, endpoint: str
) -> AuthenticatedClient:
    """Fill ``state`` step by step; raise the first ``OAuthError``. A client assertion may
    name this endpoint, the token endpoint or the issuer as its audience."""
    state.form = await read_form(request, broker.settings.max_body_bytes)
    creds = presented_credentials(request, state.form)
    state.presented_client_id = creds.client_id
    state.tenant, client = await broker.lookup(state.tenant_id, creds.client_id)
    issuer = state.tenant.issuer
    audiences = (f"{issuer}/{endpoint}", f"{issuer}/token", issuer)
    state.client = verify_client(broker, client, creds, audiences)
    return state.client


