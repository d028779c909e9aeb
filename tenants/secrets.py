"""Secrets at rest are hashes. Client secrets are 256-bit random values made by tessera, so a
keyed hash (HMAC-SHA-256 under a pepper derived from the master key) is enough: there is no
low-entropy password to stretch, and the token endpoint stays fast."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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
    key derived from the master key, bound to where the value belongs (associated data).
    During a master-key rotation values sealed under an ``accepted`` key open too; ``seal``
    always uses the master key and ``reseal`` moves a value onto it."""

    def __init__(self, master_key: bytes, *, accepted: tuple[bytes, ...] = ()) -> None:
        self._aead = _sealing_key(master_key)
        self._accepted = tuple(_sealing_key(k) for k in accepted if k != master_key)

    def seal(self, secret: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return "gcm$" + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        raw = _raw(sealed)
        for aead in (self._aead, *self._accepted):
            try:
                return aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
            except InvalidTag:
                continue
        raise InvalidTag

    def reseal(self, sealed: str, context: str) -> str | None:
        """``sealed`` under the master key: None when it already is (``InvalidTag`` when no
        key this sealer holds opens it)."""
        raw = _raw(sealed)
        try:
            self._aead.decrypt(raw[:12], raw[12:], context.encode())
            return None
        except InvalidTag:
            return self.seal(self.open(sealed, context), context)


def _raw(sealed: str) -> bytes:
    if not sealed.startswith("gcm$"):
        raise ValueError("not a sealed value")
    return base64.urlsafe_b64decode(sealed[4:])


def _sealing_key(master_key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"tessera sealed config v1").derive(master_key))
