"""Software key backend: keys generated in process, stored wrapped with AES-256-GCM.

The wrapping key is derived (HKDF-SHA256) from the master key; each handle is bound to its
tenant and kid as associated data, so a row copied to another tenant does not unwrap.
Unwrapped keys are kept in memory of this backend only; nothing outside asks for them.

During a master-key rotation (``tenants.master_key_rotation``) the backend also holds the
``accepted`` keys: a handle wrapped under any of them opens; new keys are always wrapped under
the master key, and ``rewrap`` moves a handle onto it.

``certificate`` makes the key's self-signed X.509 certificate here, with the private key, and
makes it deterministically (serial from the context, validity from the caller, RFC 6979
deterministic ECDSA; PKCS#1 v1.5 and Ed25519 are deterministic anyway), so every replica
derives the very same octets: a SAML SP that compares the KeyInfo certificate with the one in
the IdP metadata (samlify does) sees one certificate per key, with nothing stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, OKPKey, RSAKey

from adapters.jose import ECDSA_SHA256
from tenants.keys.backend import SUPPORTED_SIGNING_ALGS, GeneratedKey

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


_SHA256 = hashes.SHA256()  # immutable, made once (as adapters.jose.ECDSA_SHA256)


def _alg_of(key: object) -> str:
    """The JWS algorithm a private key signs: ES256, EdDSA or RS256 ('' for any other key)."""
    return ("ES256" if isinstance(key, ec.EllipticCurvePrivateKey)
            else "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey)
            else "RS256" if isinstance(key, rsa.RSAPrivateKey) else "")


class SoftwareBackend:
    name = "software"

    def __init__(self, master_key: bytes, *, accepted: tuple[bytes, ...] = ()) -> None:
        if len(master_key) < 32 or any(len(k) < 32 for k in accepted):
            raise ValueError("master key must be at least 32 bytes")
        self._aead = _wrapper(master_key)
        self._accepted = tuple(_wrapper(k) for k in accepted if k != master_key)
        # by (handle, context): a handle presented for another row must unwrap (and fail) again;
        # with the algorithm the key signs, found once when it is unwrapped
        self._unwrapped: dict[tuple[bytes, bytes], tuple[PrivateKey, str]] = {}

    def generate(self, alg: str, *, context: bytes) -> GeneratedKey:
        key: PrivateKey
        if alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
            public: dict[str, Any] = ECKey.import_key(key.public_key()).as_dict(private=False)
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
            public = OKPKey.import_key(key.public_key()).as_dict(private=False)
        elif alg == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = RSAKey.import_key(key.public_key()).as_dict(private=False)
        else:
            raise ValueError(f"unsupported alg {alg!r}; choose one of {SUPPORTED_SIGNING_ALGS}")
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = os.urandom(12)
        handle = nonce + self._aead.encrypt(nonce, der, context)
        return GeneratedKey(public_jwk=dict(public), handle=handle)

    def opens(self, handle: bytes, context: bytes) -> bool:
        """Whether ``handle`` was wrapped under this master key for ``context`` (AES-GCM
        authenticates: a wrong key fails, it never yields other bytes). Nothing is kept."""
        if len(handle) <= 12:
            return False
        try:
            self._aead.decrypt(handle[:12], handle[12:], context)
        except InvalidTag:
            return False
        return True

    def _unwrap(self, handle: bytes, context: bytes) -> bytes:
        for aead in (self._aead, *self._accepted):
            try:
                return aead.decrypt(handle[:12], handle[12:], context)
            except InvalidTag:
                continue
        raise InvalidTag

    def rewrap(self, handle: bytes, context: bytes) -> bytes | None:
        """``handle`` wrapped under the master key: None when it already is; ``InvalidTag``
        when no key this backend holds opens it."""
        if self.opens(handle, context):
            return None
        der = self._unwrap(handle, context)
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, der, context)

    def _key(self, handle: bytes, context: bytes) -> PrivateKey:
        return self._loaded(handle, context)[0]

    def _loaded(self, handle: bytes, context: bytes) -> tuple[PrivateKey, str]:
        """The unwrapped key and the algorithm it signs."""
        loaded = self._unwrapped.get((handle, context))
        if loaded is None:
            der = self._unwrap(handle, context)
            key = serialization.load_der_private_key(der, password=None)
            alg = _alg_of(key)
            if not alg:
                raise ValueError("unsupported key material")
            loaded = self._unwrapped[(handle, context)] = (cast(PrivateKey, key), alg)
        return loaded

    def sign(self, alg: str, handle: bytes, data: bytes, *, context: bytes) -> bytes:
        key, kind = self._loaded(handle, context)
        if alg != kind:
            raise ValueError(f"key does not sign {alg}")
        if kind == "ES256":
            r, s = decode_dss_signature(cast(ec.EllipticCurvePrivateKey, key).sign(
                data, ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if kind == "EdDSA":
            return cast(ed25519.Ed25519PrivateKey, key).sign(data)
        return cast(rsa.RSAPrivateKey, key).sign(data, padding.PKCS1v15(), _SHA256)

    def certificate(self, alg: str, handle: bytes, *, context: bytes, common_name: str,
                    not_before: float, not_after: float) -> bytes:
        key = self._key(handle, context)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
        serial = int.from_bytes(hashlib.sha256(b"tessera cert serial|" + context).digest()[:16],
                                "big") >> 1 or 1
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(dt.datetime.fromtimestamp(int(not_before), dt.UTC))
                   .not_valid_after(dt.datetime.fromtimestamp(int(not_after), dt.UTC))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True))
        if isinstance(key, ed25519.Ed25519PrivateKey):
            cert = builder.sign(key, None)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            cert = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        else:
            cert = builder.sign(key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.DER)

    def forget(self, handle: bytes) -> None:
        for cached in [k for k in self._unwrapped if k[0] == handle]:
            self._unwrapped.pop(cached, None)

    def destroy(self, handle: bytes, *, context: bytes) -> None:
        """The wrapped key lives in its row (blanked on retirement); drop the unwrapped copy."""
        self._unwrapped.pop((handle, context), None)


def _wrapper(master_key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"tessera key wrap v1").derive(master_key))
