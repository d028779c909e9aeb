"""The key backend protocol: generate a key pair, sign bytes, certify a key. Private keys never
leave it.

``sign`` returns the raw signature octets of ``alg`` over ``data``: the JWS form (RFC 7518 §3.4
for ES256: r||s, 32 octets each; PKCS#1 v1.5 for RS256), which is also what XML Signature 1.1
§6.4.3 (ECDSA) and RFC 6931 §2.3.2 (RSA-SHA256) put in a SignatureValue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

SUPPORTED_SIGNING_ALGS = ("ES256", "EdDSA", "RS256")


@dataclass(frozen=True)
class GeneratedKey:
    public_jwk: dict[str, Any]
    handle: bytes  # opaque to callers: wrapped key material or an HSM object reference


class KeyBackend(Protocol):
    name: str

    def generate(self, alg: str, *, context: bytes) -> GeneratedKey:
        """Create a key pair for ``alg``; ``context`` (tenant|kid) binds the handle to its row."""
        ...

    def sign(self, alg: str, handle: bytes, data: bytes, *, context: bytes) -> bytes:
        """Sign ``data`` (a JWS signing input, a canonical XML SignedInfo) and return the raw
        signature bytes."""
        ...

    def certificate(self, alg: str, handle: bytes, *, context: bytes, common_name: str,
                    not_before: float, not_after: float) -> bytes:
        """A self-signed X.509 certificate (DER) of the key, for SAML metadata and KeyInfo.
        Deterministic: the same inputs give the same octets on every replica."""
        ...

    def destroy(self, handle: bytes, *, context: bytes) -> None:
        """The key has retired: erase what the backend holds of it (idempotent)."""
        ...
