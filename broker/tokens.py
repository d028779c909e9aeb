"""Minting and checking JWT access tokens (RFC 9068), signed by the tenant's key service."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters import jose
from adapters.errors import InvalidToken
from broker.runtime import Broker, TenantView

AT_TYP = "at+jwt"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: dict[str, Any]
    expires_in: int

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])


def access_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: Sequence[str],
    scope: Sequence[str],
    now: float,
    lifetime: int,
    jkt: str | None = None,
    jti: str | None = None,
) -> dict[str, Any]:
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "client_id": client_id,
        "iat": iat,
        "exp": iat + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
    }
    if scope:
        claims["scope"] = " ".join(scope)
    if jkt:
        claims["cnf"] = {"jkt": jkt}
    return claims


async def mint_access_token(
    broker: Broker, tenant: TenantView, claims: dict[str, Any]
) -> IssuedToken:
    token = await broker.keys.sign(tenant.id, {"typ": AT_TYP}, claims)
    return IssuedToken(token, claims, int(claims["exp"]) - int(claims["iat"]))


async def verify_access_token(
    broker: Broker, tenant: TenantView, token: str, *, check_state: bool = True
) -> dict[str, Any]:
    """Signature by this tenant's published key, ``typ``, ``iss``, expiry, and (with
    ``check_state``) that it is not revoked and its client is still active. Raises
    ``InvalidToken`` with the reason."""
    try:
        header = jose.unverified_header(token)
        kid = header.get("kid")
        key = await broker.keys.verification_key(tenant.id, kid) if isinstance(kid, str) else None
        verified = jose.verify_jws(token, lambda _h: key, typ=AT_TYP)
        claims = verified.claims
        jose.check_times(claims, broker.clock.now(), leeway=0)
    except jose.JWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("iss") != tenant.issuer:
        raise InvalidToken("token was not issued by this tenant")
    if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("client_id"), str):
        raise InvalidToken("token lacks jti or client_id")
    if check_state:
        revoked, client_active = await broker.token_state(
            tenant.id, claims["jti"], claims["client_id"]
        )
        if revoked:
            raise InvalidToken("token was revoked")
        if not client_active:
            raise InvalidToken("the token's client is disabled")
    return claims
