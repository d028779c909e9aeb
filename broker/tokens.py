"""Minting and checking JWT access tokens (RFC 9068), signed by the tenant's key service."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters import jose
from adapters.errors import InvalidToken
from broker.runtime import Broker, TenantView
from tenants.models import User

AT_TYP = "at+jwt"
REQUIRED_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")  # RFC 9068 §2.2
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "azp", "nonce",
                             "auth_time", "acr", "amr", "sid", "at_hash", "c_hash", "cnf"})


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
    authorization_details: Sequence[dict[str, Any]] = (),
    x5t: str | None = None,
) -> dict[str, Any]:
    """``jkt``: bound to a DPoP key (RFC 9449 §6); ``x5t``: bound to a TLS client
    certificate, its ``x5t#S256`` (RFC 8705 §3.1). Both may be given."""
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
    if x5t:
        claims.setdefault("cnf", {})["x5t#S256"] = x5t
    if authorization_details:
        claims["authorization_details"] = list(authorization_details)
    return claims


async def mint_access_token(
    broker: Broker, tenant: TenantView, claims: dict[str, Any]
) -> IssuedToken:
    token = await broker.keys.sign(tenant.id, {"typ": AT_TYP}, claims)
    return IssuedToken(token, claims, int(claims["exp"]) - int(claims["iat"]))


async def verify_access_token(
    broker: Broker, tenant: TenantView, token: str, *, check_state: bool = True,
    view_epoch: int | None = None,
) -> dict[str, Any]:
    """Signature by this tenant's published key, ``typ``, ``iss``, expiry, and (with
    ``check_state``) that it is not revoked (nor its grant, agent, user, partner or tenant),
    its client is still live and a partner's user still has a live trust link. Raises
    ``InvalidToken`` with the reason. With ``view_epoch`` (the caller decided on a cached
    view of the directory at that epoch) also ``InvalidToken`` when the token state read finds
    the tenant's epoch moved on: the caller must decide again on a fresh read."""
    try:
        kid, claims = await _verified(broker, tenant, token, check_state)
        jose.check_times(claims, broker.clock.now(), leeway=0)
    except jose.JWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.get("iss") != tenant.issuer:
        raise InvalidToken("token was not issued by this tenant")
    if any(name not in claims for name in REQUIRED_CLAIMS):  # types: adapters.jwt_types
        raise InvalidToken(f"token lacks one of {', '.join(REQUIRED_CLAIMS)}")
    if check_state:
        sub_id = claims.get("sub_id")
        issuer = sub_id.get("iss") if isinstance(sub_id, dict) else None
        iat, sub = claims.get("iat"), claims.get("sub")
        state = await broker.token_state(
            tenant.id, claims["jti"], claims["client_id"],
            iat=iat if isinstance(iat, int | float) else 0,  # no iat: any cutoff counts
            sub=sub if isinstance(sub, str) else None,
            issuer=issuer if isinstance(issuer, str) else None,
            kid=kid,
        )
        if view_epoch is not None and state.epoch != view_epoch:
            raise InvalidToken("the directory changed since this process cached it")
        if state.problem is not None:
            raise InvalidToken(state.problem)
    return claims


async def _verified(broker: Broker, tenant: TenantView, token: str,
                    check_state: bool) -> tuple[Any, dict[str, Any]]:
    """``(kid, claims)`` of a token signed by the tenant's published key. With
    ``check_state`` the caller's token state read also says whether the key is compromised
    (one read instead of two), and a token this process verified before with the very key the
    key service still publishes for its ``kid`` is not verified again
    (``broker.verified_tokens``)."""
    if check_state:
        hit = await broker.verified.recall(broker.keys, tenant.id, token,
                                           check_compromised=False)
        if hit is not None:
            return hit
    header = jose.unverified_header(token)
    kid = header.get("kid")
    key = (await broker.keys.verification_key(tenant.id, kid, check_compromised=not check_state)
           if isinstance(kid, str) else None)
    verified = jose.verify_jws(token, lambda _h: key, typ=AT_TYP)
    if check_state and isinstance(kid, str):
        broker.verified.put(tenant.id, token, kid, key, verified.claims)
    return kid, verified.claims


def token_hash(value: str) -> str:
    """``at_hash``/``c_hash`` (OpenID Connect Core §3.1.3.6, §3.3.2.11): the left half of the
    SHA-256 of the token, base64url (every signing alg we use has a 256-bit hash)."""
    return jose.b64url(hashlib.sha256(value.encode("ascii")).digest()[:16])


def user_claims(user: User, scope: Sequence[str]) -> dict[str, Any]:
    """The standard claims a scope releases (OpenID Connect Core §5.4), plus ``groups`` and
    the upstream's mapped custom claims under ``profile``."""
    claims: dict[str, Any] = {}
    if "profile" in scope:
        claims.update({k: v for k, v in (user.claims or {}).items()
                       if k not in RESERVED_CLAIMS and k != "email_verified"})
        if user.name:
            claims["name"] = user.name
    if "email" in scope and user.email:
        claims["email"] = user.email
        if isinstance((user.claims or {}).get("email_verified"), bool):
            claims["email_verified"] = user.claims["email_verified"]
    if "groups" in scope:
        claims["groups"] = list(user.groups or [])
    return claims


async def mint_id_token(
    broker: Broker, tenant: TenantView, *, user: User, client_id: str, scope: Sequence[str],
    auth: dict[str, Any], now: float, nonce: str | None = None, sid: str | None = None,
    access_token: str | None = None, extra: dict[str, Any] | None = None,
) -> str:
    iat = int(now)
    claims: dict[str, Any] = {
        **user_claims(user, scope),
        "iss": tenant.issuer, "sub": user.id, "aud": client_id, "azp": client_id,
        "iat": iat, "exp": iat + tenant.settings.id_token_lifetime,
        **{k: auth[k] for k in ("auth_time", "acr", "amr") if auth.get(k) is not None},
    }
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    if access_token:
        claims["at_hash"] = token_hash(access_token)
    claims.update(extra or {})
    return await broker.keys.sign(tenant.id, {"typ": "JWT"}, claims)
