"""The key backend protocol: generate a key pair, sign bytes. Private keys never leave it."""

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
        """Sign ``data`` (a JWS signing input) and return the JWS signature bytes."""
        ...
