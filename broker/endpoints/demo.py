"""A small protected resource (``/t/{tenant}/demo/whoami``) showing the whole loop work: it
accepts the tenant's access tokens for the audience ``{issuer}/demo`` (see ``broker.bearer``
for the Bearer and DPoP rules)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.errors import InvalidToken, OAuthError
from adapters.jose import audience_matches
from broker import bearer
from broker.errors import error_response
from broker.runtime import Broker, TenantView


def demo_audience(tenant: TenantView) -> str:
    return f"{tenant.issuer}/demo"


async def whoami(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    try:
        claims, _ = await bearer.authenticate(broker, tenant, request)
        if not audience_matches(claims, demo_audience(tenant)):
            raise InvalidToken(f"token audience is not {demo_audience(tenant)}")
    except (OAuthError, bearer.Unauthenticated) as exc:
        return bearer.refusal(broker, tenant, request, exc)
    jkt = (claims.get("cnf") or {}).get("jkt")
    body = {k: claims.get(k) for k in ("sub", "client_id", "scope", "aud", "iss", "exp", "cnf")}
    body["token_type"] = "DPoP" if jkt else "Bearer"
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
