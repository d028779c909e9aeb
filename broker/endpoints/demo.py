"""A small protected resource (``/t/{tenant}/demo/whoami``) showing the whole loop work: it
accepts the tenant's access tokens for the audience ``{issuer}/demo`` (see ``broker.bearer``
for the Bearer and DPoP rules), and, for comparison, the tenant's API keys directly as
``Authorization: ApiKey tsk_<tenant>_<key_id>_<secret>`` when the key's client may address
that audience. Both answer the same JSON shape (``token_type`` Bearer, DPoP or ApiKey); a
refused credential gets 401 with a ``WWW-Authenticate`` challenge naming the error under the
scheme that was used."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import InvalidRequest, InvalidToken, OAuthError
from adapters.jose import audience_matches
from broker import bearer
from broker.errors import challenge, error_response
from broker.grants.exchange_api_key import KeyRefused, verify_api_key
from broker.json_response import JSONResponse
from broker.runtime import Broker, TenantView

API_KEY_SCHEME = "ApiKey"
NO_STORE = {"Cache-Control": "no-store"}


def demo_audience(tenant: TenantView) -> str:
    return f"{tenant.issuer}/demo"


def _presented_api_key(request: Request) -> str | None:
    """The key of ``Authorization: ApiKey <key>``; None when another scheme (or nothing) is
    used, which ``broker.bearer`` then judges."""
    headers = request.headers.getlist("authorization")
    if len(headers) != 1:
        return None
    scheme, _, value = headers[0].partition(" ")
    if scheme.lower() != API_KEY_SCHEME.lower():
        return None
    if "access_token" in request.query_params:
        raise InvalidRequest("more than one credential")
    value = value.strip()
    if len(headers[0]) > bearer.MAX_AUTHORIZATION_BYTES or not value or " " in value:
        raise InvalidRequest("use Authorization: ApiKey <key>")
    return value


def _api_key_challenge(tenant: TenantView, exc: OAuthError | None) -> str:
    params = {"realm": tenant.issuer}
    if exc is not None:
        params.update(error=exc.error, error_description=exc.description)
    return f"{bearer.challenges(tenant, None, None)}, {challenge(API_KEY_SCHEME, params)}"


async def _whoami_api_key(broker: Broker, tenant: TenantView, value: str) -> Response:
    try:
        try:
            key = await verify_api_key(broker, tenant, value, broker.clock.now())
        except KeyRefused as exc:
            raise InvalidToken(exc.description) from None
        if demo_audience(tenant) not in key.client_audiences:
            raise InvalidToken(f"the API key's client may not address {demo_audience(tenant)}")
    except InvalidToken as exc:
        response = error_response(exc)
        response.headers["WWW-Authenticate"] = _api_key_challenge(tenant, exc)
        return response
    scopes = [s for s in key.scopes if s in key.client_scopes]
    body = {"sub": key.client_id, "client_id": key.client_id,
            "scope": " ".join(scopes) or None, "aud": demo_audience(tenant),
            "iss": tenant.issuer, "exp": None if key.expires_at is None else int(key.expires_at),
            "cnf": None, "akid": key.key_id, "token_type": API_KEY_SCHEME}
    return JSONResponse(body, headers=NO_STORE)


async def whoami(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
        api_key = _presented_api_key(request)
    except OAuthError as exc:
        return error_response(exc)
    if api_key is not None:
        return await _whoami_api_key(broker, tenant, api_key)
    try:
        claims, _ = await bearer.authenticate(broker, tenant, request)
        if not audience_matches(claims, demo_audience(tenant)):
            raise InvalidToken(f"token audience is not {demo_audience(tenant)}")
    except bearer.Unauthenticated as exc:
        response = bearer.refusal(broker, tenant, request, exc)
        response.headers["WWW-Authenticate"] = _api_key_challenge(tenant, None)
        return response
    except OAuthError as exc:
        return bearer.refusal(broker, tenant, request, exc)
    jkt = (claims.get("cnf") or {}).get("jkt")
    body = {k: claims.get(k) for k in ("sub", "client_id", "scope", "aud", "iss", "exp", "cnf")}
    if "sub_id" in claims:  # a user of another issuer, named as that issuer names them
        body["sub_id"] = claims["sub_id"]
    body["token_type"] = "DPoP" if jkt else "Bearer"
    return JSONResponse(body, headers=NO_STORE)
