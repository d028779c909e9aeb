"""Secrets at rest are hashes. Client secrets are 256-bit random values made by tessera, so a
keyed hash (HMAC-SHA-256 under a pepper derived from the master key) is enough: there is no
low-entropy password to stretch, and the token endpoint stays fast."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

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


class Sealer:
    """Secrets tessera must read back (an upstream IdP's client secret): AES-256-GCM under a
    key derived from the master key, bound to where the value belongs (associated data)."""

    def __init__(self, master_key: bytes) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"tessera sealed config v1").derive(master_key)
        self._aead = AESGCM(key)

    def seal(self, secret: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return "gcm$" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith("gcm$"):
            raise ValueError("not a sealed value")
        raw = base64.urlsafe_b64decode(sealed[4:])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
