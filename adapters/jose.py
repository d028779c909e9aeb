"""JWS/JWT helpers on joserfc (RFC 7515, RFC 7519): compact encoding, typ checks, alg allow-lists.

Signing is split in two so private keys never have to leave the key service: callers build the
JWS signing input here, the key service signs the bytes, and ``compact`` joins the parts.

Every header and claims set is read by ``adapters.json_reader`` (size, depth, finite numbers,
no duplicate member names: RFC 7515 §5.2, RFC 7519 §4), and its registered members must have
their registered types (``adapters.jwt_types``: ``exp``/``iat``/``nbf``/``auth_time`` finite
numbers in [0, 2**41), ``cnf`` an object...): a ``NaN`` never reaches a time comparison, nor
``"cnf": 5`` a ``.get``. Every defect raises ``JWTError``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from adapters import json_reader, json_writer, jwt_types

ASYMMETRIC_ALGS = frozenset({"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"})
MAX_HEADER_BYTES = 8_192
MAX_CLAIMS_BYTES = 65_536


class JWTError(Exception):
    """A token that is malformed, badly signed or not acceptable; the message says why."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _json(value: Mapping[str, Any]) -> bytes:
    return json_writer.dumps(value)


def signing_input(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bytes:
    return f"{b64url(_json(header))}.{b64url(_json(claims))}".encode("ascii")


def compact(signing_input_: bytes, signature: bytes) -> str:
    return f"{signing_input_.decode('ascii')}.{b64url(signature)}"


def _segment(token: str, index: int, limit: int, what: str) -> bytes:
    parts = token.split(".", 3)
    if len(parts) <= index:
        raise JWTError(f"malformed JWT {what}: missing")
    segment = parts[index]
    if len(segment) > (limit * 4 + 2) // 3:
        raise JWTError(f"malformed JWT {what}: larger than {limit} bytes")
    try:
        return b64url_decode(segment)
    except ValueError:  # binascii.Error, and non-ASCII text
        raise JWTError(f"malformed JWT {what}: not base64url") from None


def _header(data: bytes) -> dict[str, Any]:
    try:
        header = json_reader.load_object(data, max_bytes=MAX_HEADER_BYTES)
        jwt_types.check(header, jwt_types.HEADER, "header parameter")
    except ValueError as exc:  # JSONInputError is one
        raise JWTError(f"malformed JWT header: {exc}") from None
    return header


def _claims(data: bytes) -> dict[str, Any]:
    try:
        claims = json_reader.load_object(data, max_bytes=MAX_CLAIMS_BYTES)
        jwt_types.check(claims, jwt_types.CLAIMS, "claim")
    except ValueError as exc:
        raise JWTError(f"malformed JWT claims: {exc}") from None
    return claims


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header before verification (RFC 7515 §4): to choose the key."""
    return _header(_segment(token, 0, MAX_HEADER_BYTES, "header"))


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload before verification: only to find out who claims to have signed it."""
    return _claims(_segment(token, 1, MAX_CLAIMS_BYTES, "claims"))


def numeric_date(claims: Mapping[str, Any], name: str) -> int | float | None:
    """Claim ``name`` as an RFC 7519 §2 NumericDate: None when absent; ``JWTError`` unless a
    finite number (not a boolean) in [0, 2**41)."""
    if name not in claims:
        return None
    value = claims[name]
    if not jwt_types.is_numeric_date(value):
        raise JWTError(f"{name} is not a number of seconds since 1970 (NumericDate)")
    return cast(int | float, value)


def import_public_jwk(jwk: Mapping[str, Any]) -> Key:
    kty = jwk.get("kty")
    cls = {"EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}.get(str(kty))
    if cls is None:
        raise JWTError(f"unsupported key type {kty!r}")
    try:
        return cls.import_key(dict(jwk))
    except (JoseError, ValueError, TypeError) as exc:
        raise JWTError("unusable public key") from exc


_PLAIN_HEADER = frozenset({"typ", "alg", "kid"})
# immutable, made once: ~2.7 µs to build for every ES256 signature and verification
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def verify_es256(public: ec.EllipticCurvePublicKey, token: str) -> bytes:
    """ES256 straight on cryptography: one ECDSA verify, no header judgement (callers vet the
    header first). Returns the payload bytes; raises ValueError or InvalidSignature."""
    head, body, sig = token.split(".")
    signature = b64url_decode(sig)
    if len(signature) != 64:
        raise ValueError("ES256 signatures are 64 bytes")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public.verify(der, f"{head}.{body}".encode("ascii"), ECDSA_SHA256)
    return b64url_decode(body)


def _verify_es256(token: str, key: Key) -> bytes:
    """The common case (the header holds nothing joserfc would have to judge)."""
    public = key.get_op_key("verify")
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise TypeError("ES256 needs an EC public key")
    return verify_es256(public, token)


@dataclass(frozen=True)
class VerifiedJWT:
    header: dict[str, Any]
    claims: dict[str, Any]


def verify_jws(
    token: str,
    key_for: Callable[[dict[str, Any]], Key | None],
    *,
    algorithms: frozenset[str] = ASYMMETRIC_ALGS,
    typ: str | None = None,
) -> VerifiedJWT:
    """Verify a compact JWS whose key is chosen by ``key_for(header)``; returns header+claims.

    Refuses ``none`` and symmetric algorithms unless explicitly allowed, a wrong ``typ``
    (compared case-insensitively, ``application/`` prefix tolerated), and non-object claims.
    """
    if token.count(".") != 2:
        raise JWTError("not a compact JWS")
    header = unverified_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise JWTError(f"alg {alg!r} is not allowed")
    if typ is not None:
        got = str(header.get("typ", "")).lower().removeprefix("application/")
        if got != typ.lower():
            raise JWTError(f"typ must be {typ!r}")
    key = key_for(header)
    if key is None:
        raise JWTError("no key known for this token")
    try:
        if alg == "ES256" and header.keys() <= _PLAIN_HEADER:
            payload = _verify_es256(token, key)
        else:
            payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
    except (JoseError, ValueError, TypeError, InvalidSignature) as exc:
        raise JWTError("signature does not verify") from exc
    return VerifiedJWT(header, _claims(payload))


def check_times(claims: Mapping[str, Any], now: float, *, leeway: int = 30) -> None:
    """``exp`` required and in the future; ``nbf``/``iat`` not in the future (with leeway).
    Each must be a NumericDate (``numeric_date``), so ``NaN`` or ``true`` is refused here too
    for claims that did not come through this module's reader."""
    exp = numeric_date(claims, "exp")
    if exp is None:
        raise JWTError("exp missing")
    if now >= exp + leeway:
        raise JWTError("token expired")
    for name in ("nbf", "iat"):
        value = numeric_date(claims, name)
        if value is not None and value > now + leeway:
            raise JWTError(f"{name} is in the future")
    numeric_date(claims, "auth_time")


def audience_matches(claims: Mapping[str, Any], expected: str) -> bool:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return aud == expected
    return isinstance(aud, list) and expected in aud
