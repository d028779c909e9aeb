"""OpenID Federation 1.0 §3 Entity Statements (``typ: entity-statement+jwt``) and the signed
requests a registered entity makes with its federation keys. Pure: no I/O, time passed in.

* ``verify_entity_configuration``: a self-signed statement (§3.1, §9): ``iss == sub`` (the
  entity id the caller fetched it for), ``iat``/``exp``, ``jwks`` of public asymmetric keys
  each with a ``kid``, the signing ``kid`` one of them; with ``trusted_jwks`` the signing key
  must also be one the caller registered before (key continuity: a statement signed by a key
  the entity has only just published does not replace the keys on record).
* ``verify_signed_request``: a short-lived JWT an entity signs with its registered federation
  keys to prove it is that entity (``aud`` = the registry, ``iss == sub``, lifetime bounded).

Every defect raises ``EntityStatementError`` with a message that names the rule, never a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from adapters import jose

STATEMENT_TYP = "entity-statement+jwt"
REQUEST_TYP = "entity-request+jwt"  # tessera's: a registered entity speaking to the registry
ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"})
MAX_KEYS = 20
MAX_REQUEST_LIFETIME = 300
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "EdDSA": "Ed25519"}
_KNOWN_CRIT: frozenset[str] = frozenset()  # extensions we understand: none (§3.1.1 ``crit``)


class EntityStatementError(ValueError):
    """The statement or request is malformed, badly signed or not acceptable."""


@dataclass(frozen=True)
class EntityStatement:
    iss: str
    sub: str
    iat: float
    exp: float
    kid: str  # the key that signed it
    jwks: dict[str, Any]
    metadata: dict[str, dict[str, Any]]
    authority_hints: tuple[str, ...]
    claims: dict[str, Any]


def check_jwks(jwks: object) -> dict[str, Any]:
    """A federation JWKS: 1..MAX_KEYS public asymmetric keys, each with a unique string kid."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise EntityStatementError("jwks must be an object with a keys list")
    keys = jwks["keys"]
    if not 0 < len(keys) <= MAX_KEYS:
        raise EntityStatementError(f"jwks must hold 1 to {MAX_KEYS} keys")
    kids: set[str] = set()
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            raise EntityStatementError(f"jwks key #{index} is not an object")
        if _PRIVATE & jwk.keys() or jwk.get("kty") == "oct":
            raise EntityStatementError(f"jwks key #{index} is not a public asymmetric key")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise EntityStatementError(f"jwks key #{index} has no kid")
        if kid in kids:
            raise EntityStatementError(f"jwks names kid {kid[:40]!r} twice")
        kids.add(kid)
        try:
            jose.import_public_jwk(jwk)
        except jose.JWTError as exc:
            raise EntityStatementError(f"jwks key #{index}: {exc}") from None
    return {"keys": [dict(k) for k in keys]}


def _usable(jwk: Mapping[str, Any], key: Key, alg: str) -> bool:
    if jwk.get("alg") not in (None, alg) or jwk.get("use") not in (None, "sig"):
        return False
    if alg in ("RS256", "PS256"):
        return isinstance(key, RSAKey) and key.public_key.key_size >= 2048
    kind = OKPKey if alg == "EdDSA" else ECKey
    return isinstance(key, kind) and key.curve_name == _CURVES[alg]


def _jwk_named(jwks: Mapping[str, Any], kid: object) -> dict[str, Any] | None:
    if not isinstance(kid, str):
        return None
    found = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid]
    return found[0] if len(found) == 1 else None


def _public_part(jwk: Mapping[str, Any]) -> dict[str, Any]:
    return {n: jwk[n] for n in ("kty", "crv", "x", "y", "n", "e") if n in jwk}


def _verify(token: str, jwks: Mapping[str, Any], typ: str) -> jose.VerifiedJWT:
    if not isinstance(token, str) or len(token) > 100_000:
        raise EntityStatementError("not a compact JWS")

    def key_for(header: dict[str, Any]) -> Key | None:
        if "crit" in header:
            raise EntityStatementError("crit header parameters are not understood")
        jwk = _jwk_named(jwks, header.get("kid"))
        if jwk is None:
            raise EntityStatementError("the signing kid is not one of the entity's keys")
        key = jose.import_public_jwk(jwk)
        if not _usable(jwk, key, str(header.get("alg"))):
            raise EntityStatementError("the signing key does not fit the alg")
        return key

    try:
        return jose.verify_jws(token, key_for, algorithms=ALGORITHMS, typ=typ)
    except jose.JWTError as exc:
        raise EntityStatementError(str(exc)) from None


def _times(claims: Mapping[str, Any], now: float, leeway: int) -> tuple[float, float]:
    try:
        iat, exp = jose.numeric_date(claims, "iat"), jose.numeric_date(claims, "exp")
    except jose.JWTError as exc:
        raise EntityStatementError(str(exc)) from None
    if iat is None or exp is None:
        raise EntityStatementError("iat and exp are required")
    if iat > now + leeway:
        raise EntityStatementError("iat is in the future")
    if exp <= now - leeway:
        raise EntityStatementError("the statement has expired")
    if exp <= iat:
        raise EntityStatementError("exp must be after iat")
    return float(iat), float(exp)


def _metadata(value: object) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise EntityStatementError("metadata must map entity types to objects")
    return {str(k): dict(v) for k, v in value.items()}


def verify_entity_configuration(
    token: str, *, entity_id: str, now: float, trusted_jwks: Mapping[str, Any] | None = None,
    leeway: int = 30,
) -> EntityStatement:
    """The Entity Configuration of ``entity_id``, verified as described in the module."""
    try:
        unverified = jose.unverified_claims(token) if isinstance(token, str) else None
    except jose.JWTError as exc:
        raise EntityStatementError(str(exc)) from None
    if unverified is None:
        raise EntityStatementError("not a compact JWS")
    own = check_jwks(unverified.get("jwks"))
    verified = _verify(token, own, STATEMENT_TYP)
    kid = str(verified.header["kid"])
    if trusted_jwks is not None:
        trusted = _jwk_named(trusted_jwks, kid)
        if trusted is None or _public_part(trusted) != _public_part(_jwk_named(own, kid) or {}):
            raise EntityStatementError("signed by a key the registry does not hold for it")
    claims = verified.claims
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str):
        raise EntityStatementError("iss and sub are required strings")
    if iss != sub:
        raise EntityStatementError("an Entity Configuration has iss == sub")
    if sub != entity_id:
        raise EntityStatementError("sub is not the entity id it was fetched for")
    if "crit" in claims:
        crit = claims["crit"]
        if not isinstance(crit, list) or not set(map(str, crit)) <= _KNOWN_CRIT:
            raise EntityStatementError("crit names claims that are not understood")
    iat, exp = _times(claims, now, leeway)
    hints = claims.get("authority_hints", [])
    if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
        raise EntityStatementError("authority_hints must be a list of entity ids")
    return EntityStatement(iss, sub, iat, exp, kid, own, _metadata(claims.get("metadata")),
                           tuple(hints), claims)


def verify_signed_request(
    token: str, *, jwks: Mapping[str, Any], entity_id: str, audience: str, now: float,
    leeway: int = 30,
) -> dict[str, Any]:
    """The claims of a request ``entity_id`` signed with one of its registered ``jwks``."""
    verified = _verify(token, jwks, REQUEST_TYP)
    claims = verified.claims
    if claims.get("iss") != entity_id or claims.get("sub") != entity_id:
        raise EntityStatementError("iss and sub must be the entity id")
    if not jose.audience_matches(claims, audience):
        raise EntityStatementError("aud is not this registry")
    iat, exp = _times(claims, now, leeway)
    if exp - iat > MAX_REQUEST_LIFETIME:
        raise EntityStatementError(f"a request lives at most {MAX_REQUEST_LIFETIME} s")
    return claims
