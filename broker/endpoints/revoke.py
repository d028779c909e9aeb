"""Token revocation (RFC 7009): the owning client revokes; a revoked token is inactive at once
on every replica, because every check reads the revocation table. Revoking a refresh token
ends its grant: the grant's other refresh tokens and its access tokens stop working too."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import (
    InvalidClient,
    InvalidToken,
    OAuthError,
    UnauthorizedClient,
    UnsupportedTokenType,
)
from broker.endpoints.client_request import ClientRequest, authenticate_request, refuse
from broker.errors import NO_STORE
from broker.runtime import Broker, TenantView
from broker.tokens import verify_access_token
from tenants import grants, revocations
from tenants.scope import tenant_scope


async def revocation_endpoint(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    state = ClientRequest(request.path_params["tenant"])
    try:
        caller = await authenticate_request(broker, request, state, "revoke")
        assert state.tenant is not None and state.form is not None
        tenant, client_id = state.tenant, caller.client.client_id
        token = state.form.require("token")
        if caller.claims and await broker.journal.record(tenant.id, claims=caller.claims):
            raise InvalidClient("client assertion replayed")
        hint = state.form.get("token_type_hint")
        if hint not in (None, "access_token", "refresh_token"):
            raise UnsupportedTokenType("token_type_hint must be access_token or refresh_token")
        if token.count(".") != 2:  # not a JWT: a refresh token, or nothing of ours
            await revoke_refresh_token(broker, tenant, token, client_id)
            return Response(status_code=200, headers=NO_STORE)
        try:
            claims = await verify_access_token(broker, tenant, token, check_state=False)
        except InvalidToken:
            return Response(status_code=200, headers=NO_STORE)  # unknown: nothing to do
        if claims["client_id"] != client_id:
            raise UnauthorizedClient("the token was not issued to this client")
        await revoke_jti(broker, tenant, claims["jti"], float(claims["exp"]), client_id,
                         subject=str(claims.get("sub")), reason="revocation endpoint")
    except OAuthError as exc:
        refused = await refuse(broker, state, exc, action="token.revocation_refused")
        assert refused is not None  # a fresh read is never stale
        return refused
    return Response(status_code=200, headers=NO_STORE)


async def revoke_jti(
    broker: Broker, tenant: TenantView, jti: str, expires_at: float, client_id: str | None,
    *, subject: str | None, reason: str,
) -> None:
    async with broker.sessions() as session, session.begin():
        await revocations.revoke(
            session, tenant.id, jti, expires_at=expires_at, now=broker.clock.now(),
            client_id=client_id, subject=subject, reason=reason,
        )


async def revoke_refresh_token(
    broker: Broker, tenant: TenantView, token: str, client_id: str
) -> None:
    """Unknown tokens are fine (RFC 7009 §2.2); another client's are refused, as for access
    tokens."""
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        grant = await grants.by_refresh_token(scope, token)
        if grant is None:
            return
        if grant.client_id != client_id:
            raise UnauthorizedClient("the token was not issued to this client")
        await grants.revoke(scope, grant, now=broker.clock.now(), reason="revocation endpoint")
