"""Token introspection (RFC 7662): client-authenticated; inactive tokens say nothing more."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.errors import InvalidClient, InvalidToken, OAuthError
from broker.endpoints.client_request import ClientRequest, authenticate_request, refuse
from broker.errors import NO_STORE
from broker.runtime import Broker
from broker.tokens import verify_access_token

REPORTED = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf", "act",
            "authorization_details", "akid", "acr", "amr", "auth_time")


async def introspection_endpoint(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    state = ClientRequest(request.path_params["tenant"])
    try:
        caller = await authenticate_request(broker, request, state, "introspect")
        assert state.tenant is not None and state.form is not None
        if caller.client.public:
            raise InvalidClient("public clients cannot introspect tokens")
        token = state.form.require("token")
        if caller.claims and await broker.journal.record(state.tenant.id, claims=caller.claims):
            raise InvalidClient("client assertion replayed")
    except OAuthError as exc:
        refused = await refuse(broker, state, exc, action="introspection.refused")
        assert refused is not None  # a fresh read is never stale
        return refused
    try:
        claims = await verify_access_token(broker, state.tenant, token)
    except InvalidToken:
        return JSONResponse({"active": False}, headers=NO_STORE)
    body: dict[str, Any] = {"active": True}
    body.update({k: claims[k] for k in REPORTED if k in claims})
    body["token_type"] = "DPoP" if "jkt" in (claims.get("cnf") or {}) else "Bearer"
    return JSONResponse(body, headers=NO_STORE)
