"""Token introspection (RFC 7662): client-authenticated; inactive tokens say nothing more."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.errors import InvalidClient, InvalidToken, OAuthError
from broker.client_auth import authenticate
from broker.errors import NO_STORE, error_response
from broker.forms import read_form
from broker.runtime import Broker
from broker.tokens import verify_access_token
from tenants import audit

REPORTED = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf", "act",
            "authorization_details")


async def introspection_endpoint(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    try:
        form = await read_form(request, broker.settings.max_body_bytes)
        caller = await authenticate(
            broker, tenant, request, form,
            {f"{tenant.issuer}/introspect", f"{tenant.issuer}/token", tenant.issuer},
        )
        token = form.require("token")
    except OAuthError as exc:
        await broker.journal.record(tenant.id, granted=[audit.Event(
            "introspection.refused", "refused", detail={"error": exc.error,
                                                        "description": exc.description})])
        return error_response(exc)
    if caller.claims:
        reused = await broker.journal.record(tenant.id, claims=caller.claims)
        if reused is not None:
            return error_response(InvalidClient("client assertion replayed"))
    try:
        claims = await verify_access_token(broker, tenant, token)
    except InvalidToken:
        return JSONResponse({"active": False}, headers=NO_STORE)
    body: dict[str, Any] = {"active": True}
    body.update({k: claims[k] for k in REPORTED if k in claims})
    body["token_type"] = "DPoP" if "jkt" in (claims.get("cnf") or {}) else "Bearer"
    return JSONResponse(body, headers=NO_STORE)
