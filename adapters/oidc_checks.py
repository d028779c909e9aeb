"""Pure checks of tessera's upstream OpenID Connect login: no I/O, time passed in as ``now``.

Specs: OpenID Connect Core 1.0 §3.1.2.5-7 (authorization response), §3.1.3.7 (ID token
validation); RFC 9207 (``iss`` in the authorization response); RFC 7636 §4.2 (S256). API::

    s256_challenge(code_verifier) -> str
    check_callback(metadata, params, expected_state) -> code
    check_id_token_claims(claims, *, issuer, client_id, nonce, now) -> None
    forbidden_alg(alg) -> bool                     "none" and HS*: never for ID tokens
    oauth_error(body) -> str                       ": code (description)", sanitised, or ""

Every refusal raises ``adapters.oidc_discovery.UpstreamError``. Used by
``adapters.oidc_upstream``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from adapters.jose import JWTError, audience_matches, b64url, check_times
from adapters.oidc_discovery import ProviderMetadata, UpstreamError, short

__all__ = ["LEEWAY", "MAX_ID_TOKEN_AGE", "check_callback", "check_id_token_claims",
           "forbidden_alg", "oauth_error", "s256_challenge", "same_secret"]

LEEWAY = 60  # seconds of clock skew tolerated on exp and iat
MAX_ID_TOKEN_AGE = 600  # an ID token issued longer ago than this (plus leeway) is refused


def s256_challenge(code_verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


def forbidden_alg(alg: str) -> bool:
    return alg.lower() == "none" or alg.upper().startswith("HS")


def same_secret(got: object, expected: str) -> bool:
    """Constant-time equality; an empty ``expected`` never matches."""
    return (bool(expected) and isinstance(got, str)
            and hmac.compare_digest(got.encode(), expected.encode()))


def oauth_error(body: Mapping[str, Any]) -> str:
    """The IdP's OAuth ``error`` (and description) made safe to quote in a message."""
    error = body.get("error")
    if not isinstance(error, str):
        return ""
    description = body.get("error_description")
    detail = f" ({short(description, 200)})" if isinstance(description, str) else ""
    return f": {short(error)}{detail}"


def check_callback(
    metadata: ProviderMetadata, params: Mapping[str, str], expected_state: str
) -> str:
    """The redirect back from the IdP: state, then iss (RFC 9207), then error; the code."""
    if not same_secret(params.get("state"), expected_state):
        raise UpstreamError("callback state does not match this login")
    iss = params.get("iss")
    if iss is None and metadata.authorization_response_iss_parameter_supported:
        raise UpstreamError("callback has no iss although the IdP announces it (RFC 9207)")
    if iss is not None and iss != metadata.issuer:
        raise UpstreamError(f"callback iss {short(iss, 120)} is not the IdP's issuer")
    if params.get("error") is not None:
        raise UpstreamError(f"IdP refused the login{oauth_error(params)}")
    code = params.get("code")
    if not isinstance(code, str) or not code:
        raise UpstreamError("callback has no code")
    return code


def check_id_token_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, nonce: str, now: float
) -> None:
    """OIDC Core §3.1.3.7 steps 2-5 and 9-11 on claims whose signature has been verified."""
    if claims.get("iss") != issuer:
        raise UpstreamError(f"ID token iss {short(claims.get('iss'), 120)} is not {issuer}")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if (not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences)
            or not audience_matches(claims, client_id)):
        raise UpstreamError("ID token aud does not name this client")
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise UpstreamError("ID token has several audiences but no azp")
    if azp is not None and azp != client_id:
        raise UpstreamError(f"ID token azp {short(azp)} is not this client")
    if "iat" not in claims:
        raise UpstreamError("ID token has no iat")
    try:
        check_times(claims, now, leeway=LEEWAY)
    except JWTError as exc:
        raise UpstreamError(f"ID token refused: {exc}") from None
    if now - claims["iat"] > MAX_ID_TOKEN_AGE + LEEWAY:
        raise UpstreamError("ID token was issued too long ago")
    if "nonce" not in claims:
        raise UpstreamError("ID token has no nonce")
    if not same_secret(claims["nonce"], nonce):
        raise UpstreamError("ID token nonce does not match this login")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise UpstreamError("ID token sub is missing or not a string of 1-255 characters")
    if not isinstance(claims.get("acr", ""), str):
        raise UpstreamError("ID token acr is not a string")
    amr = claims.get("amr", [])
    if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
        raise UpstreamError("ID token amr is not a list of strings")
    auth_time = claims.get("auth_time", 0)
    if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
        raise UpstreamError("ID token auth_time is not a number")
