"""Secrets at rest are hashes. Client secrets are 256-bit random values made by tessera, so a
keyed hash (HMAC-SHA-256 under a pepper derived from the master key) is enough: there is no
low-entropy password to stretch, and the token endpoint stays fast."""

from __future__ import annotations

import hashlib
import hmac

_PREFIX = "hs256$"


class SecretHasher:
    def __init__(self, master_key: bytes) -> None:
        self._pepper = hmac.new(master_key, b"tessera secret pepper v1", hashlib.sha256).digest()

    def hash(self, secret: str) -> str:
        return _PREFIX + hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    def verify(self, secret: str, stored: str | None) -> bool:
        if not stored or not stored.startswith(_PREFIX):
            return False
        return hmac.compare_digest(self.hash(secret), stored)
