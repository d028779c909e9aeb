"""The UserInfo endpoint (OpenID Connect Core §5.3): claims of the token's user, as far as the
token's scopes release them; Bearer or DPoP (``broker.bearer``), GET or POST.

Only for the tenant's own users: a token whose subject another issuer asserted (``sub_id``,
``adapters.subjects``) or a client's own token (``sub`` = ``client_id``) names no user here
and is refused, so a partner cannot read a local user by asserting their id."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters import subjects
from adapters.errors import InsufficientScope, InvalidToken, OAuthError
from broker import bearer
from broker.errors import error_response
from broker.json_response import JSONResponse
from broker.runtime import Broker
from broker.tokens import user_claims
from tenants.models import User
from tenants.scope import tenant_scope


async def userinfo(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    try:
        claims, _ = await bearer.authenticate(broker, tenant, request)
        scope = str(claims.get("scope", "")).split()
        if "openid" not in scope:
            raise InsufficientScope("the token lacks the openid scope")
        if subjects.is_foreign(claims) or claims.get("sub") == claims.get("client_id"):
            raise InvalidToken("the token's subject is not a user of this tenant")
        async with tenant_scope(broker.sessions, tenant.id) as scope_:
            user = await scope_.get(User, str(claims["sub"]))
        if user is None or user.status != "active":
            raise InvalidToken("the token's user is unknown or disabled")
    except (OAuthError, bearer.Unauthenticated) as exc:
        return bearer.refusal(broker, tenant, request, exc)
    return JSONResponse({"sub": user.id, **user_claims(user, scope)},
                        headers={"Cache-Control": "no-store"})
