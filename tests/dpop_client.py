"""Build DPoP proofs for tests, including deliberately defective ones.

``make_proof`` signs whatever header and claims it is told to (``alg`` ``none``, ``HS256``,
missing members, a private ``jwk``...) so negative tests can hit every check.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Collection
from typing import Any

from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_b64(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def new_key(alg: str = "ES256") -> Key:
    """A fresh private key for ``alg``: EC for ES*, Ed25519 for EdDSA, RSA-2048 for RS*/PS*,
    and a 256-bit oct key for HS* (negative tests)."""
    if alg in _CURVES:
        return ECKey.generate_key(_CURVES[alg])
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    if alg.startswith(("RS", "PS")):
        return RSAKey.generate_key(2048)
    if alg.startswith("HS"):
        return OctKey.generate_key(256)
    raise ValueError(f"no test key for {alg}")


def public_jwk(key: Key) -> dict[str, Any]:
    """The public JWK of ``key`` (no kid, no private members)."""
    return dict(key.as_dict(private=False))


def make_proof(
    key: Key | None,
    *,
    htm: str,
    htu: str,
    iat: int | None = None,
    jti: str | None = None,
    nonce: str | None = None,
    access_token: str | None = None,
    typ: str = "dpop+jwt",
    alg: str = "ES256",
    extra_claims: dict[str, Any] | None = None,
    extra_header: dict[str, Any] | None = None,
    include_jwk: bool = True,
    omit: Collection[str] = (),
    private_jwk: bool = False,
    jwk: dict[str, Any] | None = None,
) -> str:
    """A compact DPoP proof signed by ``key`` with ``alg`` (``none``: empty signature).

    ``iat`` defaults to now and ``jti`` to a random value; ``access_token`` adds ``ath``.
    ``omit`` drops header parameters or claims by name (``typ``, ``alg``, ``jwk``, ``jti``,
    ``htm``, ``htu``, ``iat``...); ``private_jwk`` puts the private JWK in the header;
    ``jwk`` replaces the header JWK; ``extra_header``/``extra_claims`` are merged last and
    may override anything (e.g. ``{"iat": "soon"}``).
    """
    header: dict[str, Any] = {"typ": typ, "alg": alg}
    if include_jwk:
        if jwk is not None:
            header["jwk"] = jwk
        elif key is not None:
            header["jwk"] = dict(key.as_dict(private=private_jwk))
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": htm,
        "htu": htu,
        "iat": iat if iat is not None else int(time.time()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = _b64(hashlib.sha256(access_token.encode("ascii")).digest())
    header.update(extra_header or {})
    claims.update(extra_claims or {})
    for name in omit:
        header.pop(name, None)
        claims.pop(name, None)
    signing_input = f"{_json_b64(header)}.{_json_b64(claims)}"
    if alg == "none":
        signature = b""
    else:
        signature = JWSRegistry.algorithms[alg].sign(signing_input.encode("ascii"), key)
    return f"{signing_input}.{_b64(signature)}"
