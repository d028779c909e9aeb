"""Token introspection (RFC 7662): client-authenticated; inactive tokens say nothing more."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import InvalidClient, InvalidToken, OAuthError
from broker.endpoints.client_request import ClientRequest, authenticate_request, refuse
from broker.errors import NO_STORE
from broker.json_response import JSONResponse
from broker.runtime import Broker
from broker.tokens import verify_access_token
from tenants.journal import STALE

REPORTED = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf", "act",
            "authorization_details", "akid", "acr", "amr", "auth_time")


async def introspection_endpoint(request: Request) -> Response:
    """Authenticate the caller on the process's cached view of the tenant and its clients,
    and confirm that view in the token state read (``tenants.token_state``: it also returns
    the tenant's directory epoch): one database read per introspection instead of two. Any
    other outcome (a refusal, an inactive token, a view gone stale) is decided again on a
    fresh read, so a suspended or deleted caller, a rotated secret or a disabled tenant counts
    at the very next request on every replica."""
    broker: Broker = request.app.state.broker
    state = ClientRequest(request.path_params["tenant"], cached=True)
    response = await _introspect(broker, request, state)
    if response is None:
        fresh = ClientRequest(state.tenant_id, form=state.form)
        response = await _introspect(broker, request, fresh)
        assert response is not None  # a fresh read is never stale
        if state.tenant is not None and (fresh.tenant is None
                                         or fresh.tenant.epoch != state.tenant.epoch):
            broker.forget_directory(state.tenant_id)  # only a view that did go stale
    return response


async def _introspect(broker: Broker, request: Request, state: ClientRequest) -> Response | None:
    """The answer, or None: decided on a cached view that could not be confirmed current."""
    try:
        caller = await authenticate_request(broker, request, state, "introspect")
        assert state.tenant is not None and state.form is not None
        if caller.client.public:
            raise InvalidClient("public clients cannot introspect tokens")
        token = state.form.require("token")
        # a view is confirmed by the journal (it records a client assertion's jti only if the
        # tenant's epoch is still the view's) or else by the token-state read below
        confirmed = not state.cached
        if caller.claims:
            reused = await broker.journal.record(state.tenant.id, claims=caller.claims,
                                                 expect=state.expect)
            if reused is STALE:
                return None
            if reused is not None:
                raise InvalidClient("client assertion replayed")
            confirmed = True  # and its jti is spent: this request must not be decided again
    except OAuthError as exc:
        if state.cached and state.form is not None:
            return None  # refuse only on a fresh read (the body was read: it can be again)
        state.cached = False  # the body itself was refused: no cached view was used
        refused = await refuse(broker, state, exc, action="introspection.refused")
        assert refused is not None  # recorded without an expected epoch: never stale
        return refused
    view = None if confirmed else state.tenant.epoch
    try:
        claims = await verify_access_token(broker, state.tenant, token, view_epoch=view)
    except InvalidToken:
        if not confirmed:
            return None  # inactive, or the view is stale: say so only after a fresh read
        return JSONResponse({"active": False}, headers=NO_STORE)
    body: dict[str, Any] = {"active": True}
    body.update({k: claims[k] for k in REPORTED if k in claims})
    body["token_type"] = "DPoP" if "jkt" in (claims.get("cnf") or {}) else "Bearer"
    return JSONResponse(body, headers=NO_STORE)
