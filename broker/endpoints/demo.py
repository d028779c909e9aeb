"""A small protected resource (``/t/{tenant}/demo/whoami``) showing the whole loop work.

It accepts ``Authorization: Bearer`` and ``Authorization: DPoP`` (RFC 6750, RFC 9449 §7):
a DPoP-bound token needs the DPoP scheme and a proof with matching ``ath``, ``htm``, ``htu``
and key; a bound token sent as Bearer is refused. Errors are 401 with a challenge.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.dpop import SUPPORTED_ALGS
from adapters.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    UseDPoPNonce,
)
from adapters.jose import audience_matches
from broker.dpop_check import check_proof, nonce_headers
from broker.errors import challenge, error_response
from broker.runtime import Broker, TenantView
from broker.tokens import verify_access_token

MAX_AUTHORIZATION_BYTES = 8_192


def demo_audience(tenant: TenantView) -> str:
    return f"{tenant.issuer}/demo"


def _credentials(request: Request) -> tuple[str, str] | None:
    headers = request.headers.getlist("authorization")
    query_token = "access_token" in request.query_params
    if len(headers) > 1 or (headers and query_token):
        raise InvalidRequest("more than one credential")
    if query_token:
        raise InvalidRequest("tokens in the query string are not accepted")
    if not headers:
        return None
    value = headers[0]
    if len(value) > MAX_AUTHORIZATION_BYTES:
        raise InvalidRequest("authorization header too large")
    scheme, _, token = value.partition(" ")
    scheme = scheme.lower()
    token = token.strip()
    if scheme not in ("bearer", "dpop") or not token or " " in token:
        raise InvalidRequest("use Authorization: Bearer <token> or DPoP <token>")
    return scheme, token


def _challenges(tenant: TenantView, scheme: str | None, exc: OAuthError | None) -> str:
    params = {}
    if exc is not None:
        params = {"error": exc.error, "error_description": exc.description}
    bearer = challenge("Bearer", {"realm": tenant.issuer, **(params if scheme == "bearer" else {})})
    dpop = challenge("DPoP", {"algs": " ".join(sorted(SUPPORTED_ALGS)),
                              **(params if scheme == "dpop" else {})})
    return f"{bearer}, {dpop}"


async def whoami(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    scheme: str | None = None
    try:
        creds = _credentials(request)
        if creds is None:
            return Response(status_code=401,
                            headers={"WWW-Authenticate": _challenges(tenant, None, None)})
        scheme, token = creds
        claims = await verify_access_token(broker, tenant, token)
        if not audience_matches(claims, demo_audience(tenant)):
            raise InvalidToken(f"token audience is not {demo_audience(tenant)}")
        jkt = (claims.get("cnf") or {}).get("jkt")
        if jkt and scheme != "dpop":
            raise InvalidToken("DPoP-bound token presented as Bearer")
        if scheme == "dpop":
            if not jkt:
                raise InvalidToken("token is not DPoP-bound; use Bearer")
            checked = check_proof(broker, tenant, request, access_token=token, expected_jkt=jkt)
            if checked is None:
                raise InvalidDPoPProof("DPoP proof required")
            if await broker.journal.record(tenant.id, claims=[checked.claim]) is not None:
                raise InvalidDPoPProof("DPoP proof replayed")
    except InvalidRequest as exc:
        return error_response(exc)
    except OAuthError as exc:
        status = 401 if isinstance(exc, InvalidToken | InvalidDPoPProof | UseDPoPNonce) else None
        response = error_response(exc, status=status)
        response.headers["WWW-Authenticate"] = _challenges(tenant, scheme or "bearer", exc)
        response.headers.update(nonce_headers(broker, tenant, exc))
        return response
    body = {k: claims.get(k) for k in ("sub", "client_id", "scope", "aud", "iss", "exp", "cnf")}
    body["token_type"] = "DPoP" if jkt else "Bearer"
    return JSONResponse(body, headers={"Cache-Control": "no-store"})



