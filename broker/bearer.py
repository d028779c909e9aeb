"""Protected-resource side of tessera's own endpoints (the demo resource, userinfo):
``Authorization: Bearer`` (RFC 6750) and ``Authorization: DPoP`` (RFC 9449 §7).

A DPoP-bound token needs the DPoP scheme and a proof with matching ``ath``, ``htm``, ``htu``
and key; a bound token sent as Bearer is refused. A certificate-bound token (RFC 8705 §3,
``cnf.x5t#S256``) needs the same TLS client certificate (``broker.client_cert``). Errors are
401 with a challenge for each scheme (only the one used carries the error).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from adapters.dpop import SUPPORTED_ALGS
from adapters.errors import InvalidDPoPProof, InvalidRequest, InvalidToken, OAuthError, UseDPoPNonce
from broker import anomaly, logs
from broker.client_cert import check_bound_token
from broker.dpop_check import check_proof, nonce_headers
from broker.errors import challenge, error_response
from broker.json_response import JSONResponse
from broker.runtime import Broker, TenantView
from broker.tokens import verify_access_token

MAX_AUTHORIZATION_BYTES = 8_192


class Unauthenticated(Exception):
    """No credential at all: answer with the bare challenges."""


def credentials(request: Request) -> tuple[str, str] | None:
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


def challenges(tenant: TenantView, scheme: str | None, exc: OAuthError | None) -> str:
    params = {}
    if exc is not None:
        params = {"error": exc.error, "error_description": exc.description}
    bearer = challenge("Bearer", {"realm": tenant.issuer, **(params if scheme == "bearer" else {})})
    dpop = challenge("DPoP", {"algs": " ".join(sorted(SUPPORTED_ALGS)),
                              **(params if scheme == "dpop" else {})})
    return f"{bearer}, {dpop}"


async def authenticate(broker: Broker, tenant: TenantView, request: Request
                       ) -> tuple[dict[str, Any], str]:
    """The verified access token's claims and the scheme used; raises ``Unauthenticated`` or
    an ``OAuthError`` (render it with ``refusal``)."""
    creds = credentials(request)
    if creds is None:
        raise Unauthenticated
    scheme, token = creds
    request.state.auth_scheme = scheme
    claims = await verify_access_token(broker, tenant, token)
    logs.note(client_id=claims.get("client_id"))
    check_bound_token(request, claims)
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
    anomaly.count(broker, tenant, claims.get("client_id"), anomaly.RESOURCE_READS)
    return claims, scheme


def refusal(broker: Broker, tenant: TenantView, request: Request,
            exc: OAuthError | Unauthenticated) -> Response:
    if isinstance(exc, Unauthenticated):
        return Response(status_code=401,
                        headers={"WWW-Authenticate": challenges(tenant, None, None)})
    if isinstance(exc, InvalidRequest):
        return error_response(exc)
    status = 401 if isinstance(exc, InvalidToken | InvalidDPoPProof | UseDPoPNonce) else None
    response: JSONResponse = error_response(exc, status=status)
    scheme = getattr(request.state, "auth_scheme", None) or "bearer"
    response.headers["WWW-Authenticate"] = challenges(tenant, scheme, exc)
    response.headers.update(nonce_headers(broker, tenant, exc))
    return response
