"""The shared front of client-authenticated endpoints (token, introspection, revocation):
read the form, read the presented credentials, fetch tenant and client in one read, judge."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import NotFound, OAuthError
from broker import logs
from broker.client_auth import AuthenticatedClient, presented_credentials, verify_client
from broker.dpop_check import nonce_headers
from broker.errors import error_response
from broker.forms import Form, read_form
from broker.runtime import Broker, TenantView
from tenants import audit
from tenants.journal import STALE


@dataclass
class ClientRequest:
    """What is known so far; on refusal the endpoint audits with whatever was learnt."""

    tenant_id: str
    tenant: TenantView | None = None
    form: Form | None = None
    client: AuthenticatedClient | None = None
    presented_client_id: str | None = None
    cached: bool = False  # tenant and client came from this process's directory cache

    @property
    def expect(self) -> tuple[str, int] | None:
        """What the journal must find unchanged for a decision made on a cached view."""
        if self.cached and self.tenant is not None:
            return (self.tenant.id, self.tenant.epoch)
        return None

    async def known_tenant(self, broker: Broker) -> TenantView:
        """The tenant, fetched if the refusal came before it was (raises ``NotFound``)."""
        if self.tenant is None:
            self.tenant, _ = await broker.lookup(self.tenant_id, None)
        return self.tenant


async def authenticate_request(
    broker: Broker, request: Request, state: ClientRequest, endpoint: str
) -> AuthenticatedClient:
    """Fill ``state`` step by step; raise the first ``OAuthError``. A client assertion may
    name this endpoint, the token endpoint or the issuer as its audience. With
    ``state.cached`` the directory is read from the process cache (see ``ClientRequest.expect``)."""
    if state.form is None:
        state.form = await read_form(request, broker.settings.max_body_bytes)
    creds = presented_credentials(request, state.form)
    state.presented_client_id = creds.client_id
    read = broker.cached_lookup if state.cached else broker.lookup
    state.tenant, client = await read(state.tenant_id, creds.client_id)
    issuer = state.tenant.issuer
    audiences = (f"{issuer}/{endpoint}", f"{issuer}/token", issuer)
    state.client = verify_client(broker, client, creds, audiences)
    logs.note(client_id=state.client.client.client_id)
    return state.client




async def refuse(
    broker: Broker, state: ClientRequest, exc: OAuthError, *, action: str | None,
    nonce: bool = False,
) -> Response | None:
    """Audit the refusal as ``action`` (None: already audited with the request's one-time
    values) and render it; ``nonce`` adds a DPoP-Nonce where the tenant uses nonces. None:
    the refusal rested on a stale cached view and was not recorded; decide again."""
    if isinstance(exc, NotFound):
        return error_response(exc)
    try:
        tenant = await state.known_tenant(broker)
    except NotFound as missing:
        return error_response(missing)
    if action is not None:
        outcome = await broker.journal.record(
            tenant.id, granted=[refusal_event(state, exc, action)], expect=state.expect)
        if outcome is STALE:
            return None
    response = error_response(exc)
    if nonce:
        response.headers.update(nonce_headers(broker, tenant, exc))
    return response


def refusal_event(
    state: ClientRequest, reason: OAuthError | str, action: str = "token.refused"
) -> audit.Event:
    """One refusal: the error, and what was asked for (never a credential)."""
    detail: dict[str, object] = {}
    if action == "token.refused" and state.form is not None:
        detail["grant_type"] = state.form.get("grant_type")
        for name in ("scope", "audience", "resource", "requested_token_type"):
            values = state.form.all(name)
            if values:
                detail[name] = values[0][:512] if len(values) == 1 else [v[:512] for v in values]
    if isinstance(reason, OAuthError):
        detail.update(error=reason.error, description=reason.description)
    else:
        detail.update(error="replay", description=reason)
    client_id = state.client.client.client_id if state.client else None
    if client_id is None and state.presented_client_id:
        detail["presented_client_id"] = state.presented_client_id[:128]
    return audit.Event(action, "refused", client_id, None, detail)
