"""PKCS#11 key backend: key pairs generated inside a token (SoftHSM2, a hardware HSM) as
sensitive, non-extractable token objects; every signature is computed by the token.

Objects. Each key is a private and a public key object (and, for ES256, a certificate object)
sharing ``CKA_ID`` = SHA-256("tessera pkcs11 key id v1|" + tenant|kid)[:16] and ``CKA_LABEL``
= "tessera|" + tenant|kid, so a restarted process, or any replica, finds the same objects from
the key's row. The private key is made with CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true and
CKA_EXTRACTABLE, CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE false, and is read back after generation:
a token that does not honour that template is refused.

Handle. ``b"p11" 0x01 | len(token label) | token label | CKA_ID``: a versioned reference, never
key material. A handle names its token (a row of another deployment's token is refused) and is
bound to its row: its CKA_ID must be the one derived from the ``context`` it is presented with.

Mechanisms. ES256: SHA-256 in software, then ``CKM_ECDSA``, whose output is already the JOSE
form r||s (checked: 64 octets); many tokens (SoftHSM2 among them) have no ``CKM_ECDSA_SHA256``.
RS256: ``CKM_SHA256_RSA_PKCS`` where offered, else SHA-256 in software and ``CKM_RSA_PKCS``
over the DigestInfo. EdDSA: ``CKM_EDDSA`` (Ed25519) where the token offers it and
``CKM_EC_EDWARDS_KEY_PAIR_GEN``; otherwise generation fails with ``HsmUnsupported``.

Certificates. RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic, so their self-signed
certificate is simply made again (same octets on every replica). A token's ECDSA is randomized,
so an ES256 key's certificate is made once and stored in the token as a ``CKO_CERTIFICATE`` with
the key's CKA_ID; every replica reads it from there. The key service makes it right after
generating the key, before the key's row is committed, so no other replica can know the key yet
and there is no race in the normal course. Should two replicas still both create one (a key
whose certificate was lost), the one with the lowest DER octets is chosen, by everyone.

Sessions. The login is the application's, for the token: one anchor session holds it; a pool
of up to ``sessions`` further sessions does the work, each used by one thread at a time. Every
call into the module is also serialised by one lock per module: python-pkcs11 (like PyKCS11)
initialises the module with ``C_Initialize(NULL)``, which tells it the application does no
concurrent calls, and SoftHSM2 then runs without its mutexes (two signing threads crash it).
Calls are synchronous and short (about 0.2 ms for ES256 on SoftHSM2) and python-pkcs11 releases
the GIL while the token works. A call that fails because the login or session is gone
(CKR_USER_NOT_LOGGED_IN, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_ERROR, a key handle or object gone) finalises and initialises
the module again, logs in again and is retried once; the first thread to see the failure does
that for all. Sessions and object handles from before are then never used or closed again (the
module may have given their numbers to new ones): each carries the module generation it was
opened in, checked under the lock before every call.

The PIN is kept by the pool only; no log line, repr or exception text carries it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, OKPKey, RSAKey
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11._pkcs11 import lib as Pkcs11Lib
from pkcs11.types import Key, SignMixin

from tenants.keys.backend import SUPPORTED_SIGNING_ALGS, GeneratedKey
from tenants.keys.backends import Pkcs11Config

log = logging.getLogger("tessera.keys.pkcs11")

T = TypeVar("T")
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

HANDLE_V1 = b"p11\x01"
ID_SIZE = 16
LABEL_PREFIX = "tessera|"
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")  # OID 1.2.840.10045.3.1.7 (prime256v1)
ED25519_PARAMS = bytes.fromhex("06032b6570")  # OID 1.3.101.112 (id-Ed25519)
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")  # RFC 8017 §9.2
RSA_BITS = 2048
_KEY_CACHE_SIZE = 4_096

_PRIVATE_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
    Attribute.UNWRAP: False, Attribute.DERIVE: False,
}
_PUBLIC_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.VERIFY: True,
}
_SIGN_ONLY = MechanismFlag.SIGN | MechanismFlag.VERIFY

# The session or the login is gone: log in again and retry once.
_RELOGIN: tuple[type[Exception], ...] = (
    p11e.UserNotLoggedIn, p11e.SessionHandleInvalid, p11e.SessionClosed, p11e.DeviceRemoved,
    p11e.TokenNotPresent, p11e.TokenNotRecognised, p11e.DeviceError, p11e.KeyHandleInvalid,
    p11e.ObjectHandleInvalid,
    # a private key is invisible to a session that is not logged in
    p11e.NoSuchKey,
)


class HsmError(RuntimeError):
    """A PKCS#11 operation failed. Messages name the token and the PKCS#11 error only."""


class HsmUnsupported(HsmError):
    """The token lacks the mechanisms an algorithm needs."""


# -- handles and object names ---------------------------------------------------------------
def key_id(context: bytes) -> bytes:
    """The CKA_ID of the key of ``context`` (tenant|kid)."""
    return hashlib.sha256(b"tessera pkcs11 key id v1|" + context).digest()[:ID_SIZE]


def key_label(context: bytes) -> str:
    return LABEL_PREFIX + context.decode("utf-8", "replace")


def encode_handle(token_label: str, cka_id: bytes) -> bytes:
    label = token_label.encode()
    if len(label) > 255 or len(cka_id) != ID_SIZE:
        raise ValueError("bad token label or key id")
    return HANDLE_V1 + bytes([len(label)]) + label + cka_id


def decode_handle(handle: bytes) -> tuple[str, bytes]:
    """(token label, CKA_ID) of a handle; ``HsmError`` for anything else."""
    if not handle.startswith(HANDLE_V1) or len(handle) < len(HANDLE_V1) + 1 + ID_SIZE:
        raise HsmError("not a PKCS#11 key handle")
    size = handle[len(HANDLE_V1)]
    start = len(HANDLE_V1) + 1
    label, cka_id = handle[start:start + size], handle[start + size:]
    if len(cka_id) != ID_SIZE:
        raise HsmError("not a PKCS#11 key handle")
    return label.decode(errors="replace"), cka_id


# -- module, pool, sessions ------------------------------------------------------------------
class _Module:
    """A loaded PKCS#11 module: its call lock and its generation. A recovery finalises and
    initialises the module again (closing every session of the process and its login) and
    counts a generation: sessions and object handles of an older one are never used or closed
    again, since the module may have given their numbers to new ones."""

    def __init__(self, lib: Pkcs11Lib) -> None:
        self.lib = lib
        self.lock = threading.RLock()
        self.generation = 0

    def recover(self, seen: int) -> None:
        """Start a new generation, unless one was started since ``seen`` (call with the lock)."""
        if seen != self.generation:
            return
        self.generation += 1
        with suppress(p11e.PKCS11Error):
            self.lib.reinitialize()


_MODULES: dict[str, _Module] = {}
_MODULES_LOCK = threading.Lock()


def _module(path: str) -> _Module:
    """The loaded module; one per process and path (python-pkcs11 itself loads and initialises
    a module once per path)."""
    with _MODULES_LOCK:
        found = _MODULES.get(path)
        if found is None:
            try:
                lib = pkcs11.lib(path)
            except p11e.PKCS11Error as exc:
                raise HsmError(f"cannot load the PKCS#11 module {path!r} "
                               f"({type(exc).__name__})") from exc
            found = _MODULES[path] = _Module(lib)
        return found


class _Session:
    """A pooled session and the key objects it has found (handles are per session here)."""

    def __init__(self, session: pkcs11.Session, generation: int) -> None:
        self.session = session
        self.generation = generation
        self.keys: dict[bytes, SignMixin] = {}

    def private_key(self, cka_id: bytes) -> SignMixin:
        key = self.keys.get(cka_id)
        if key is None:
            found = self.session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=cka_id)
            if not isinstance(found, SignMixin):
                raise HsmError("the token's object for this key does not sign")
            if len(self.keys) >= _KEY_CACHE_SIZE:
                self.keys.clear()
            key = self.keys[cka_id] = found
        return key


def _close(session: pkcs11.Session) -> None:
    with suppress(p11e.PKCS11Error):
        session.close()


class _Stale(Exception):
    """A session of an older module generation: not to be used."""


class _Pool:
    """The token's login (one anchor session) and up to ``size`` working sessions, all of one
    module generation; everything of an older generation is dropped, never closed."""

    def __init__(self, module: _Module, token_label: str, pin: str, size: int) -> None:
        self._module = module
        self.token_label = token_label
        self.__pin = pin
        self._size = size
        self._open = 0  # working sessions of this generation, idle or in use
        self._returned = threading.Condition(module.lock)
        self._idle: list[_Session] = []
        self._token: pkcs11.Token | None = None
        self._anchor: pkcs11.Session | None = None
        self._generation = module.generation
        self.mechanisms: frozenset[Mechanism] = frozenset()

    def __repr__(self) -> str:
        return f"<PKCS#11 session pool for token {self.token_label!r}>"

    def _current(self) -> None:
        """Forget sessions of an older generation (the module closed them)."""
        if self._generation != self._module.generation:
            self._generation = self._module.generation
            self._idle.clear()
            self._open = 0
            self._token = self._anchor = None
            self._returned.notify_all()

    def login(self) -> None:
        """Open the anchor session and log in, unless done (call with the module lock)."""
        self._current()
        if self._anchor is not None:
            return
        try:
            token = self._module.lib.get_token(token_label=self.token_label)
        except (p11e.NoSuchToken, p11e.MultipleTokensReturned) as exc:
            raise HsmError(f"PKCS#11 token {self.token_label!r}: not found exactly once in the "
                           f"module ({type(exc).__name__})") from None
        try:
            anchor = token.open(rw=True, user_pin=self.__pin)
        except p11e.UserAlreadyLoggedIn:
            # this process is logged in already (another backend over the same token); the
            # session python-pkcs11 opened for the refused login stays open until exit
            anchor = token.open(rw=True)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange, p11e.PinLocked,
                p11e.PinExpired, p11e.UserPinNotInitialized) as exc:
            raise HsmError(f"PKCS#11 token {self.token_label!r}: login refused "
                           f"({type(exc).__name__})") from None
        self._token, self._anchor = token, anchor
        self.mechanisms = frozenset(token.slot.get_mechanisms())
        log.info("PKCS#11 token %r: logged in", self.token_label)

    @contextmanager
    def session(self) -> Iterator[_Session]:
        """A session for this thread alone; back to the pool afterwards if it worked, closed
        if it failed, dropped if its generation has passed."""
        with self._module.lock:
            self.login()
            while not self._idle and self._open >= self._size:
                self._returned.wait()
                self.login()
            if self._idle:
                taken = self._idle.pop()
            else:
                assert self._token is not None
                taken = _Session(self._token.open(rw=True), self._generation)
                self._open += 1
        healthy = False
        try:
            yield taken
            healthy = True
        finally:
            with self._module.lock:
                if taken.generation == self._module.generation == self._generation:
                    if healthy:
                        self._idle.append(taken)
                    else:
                        _close(taken.session)
                        self._open -= 1
                self._returned.notify()

    def check(self, session: _Session) -> None:
        """Raise ``_Stale`` for a session of a passed generation (call with the module lock)."""
        if session.generation != self._module.generation:
            raise _Stale

    def idle_sessions(self) -> list[_Session]:
        return list(self._idle)

    def close(self) -> None:
        """Close this pool's sessions and log out (the process's login to the token ends)."""
        with self._module.lock:
            self._current()
            for pooled in self._idle:
                _close(pooled.session)
            self._idle.clear()
            self._open = 0
            if self._anchor is not None:
                _close(self._anchor)
            self._token = self._anchor = None


# -- the backend -----------------------------------------------------------------------------
class Pkcs11Backend:
    name = "pkcs11"

    def __init__(self, config: Pkcs11Config) -> None:
        self._module = _module(config.module)
        self.token_label = config.token_label
        self._lock = self._module.lock
        self._pool = _Pool(self._module, config.token_label, config.pin, config.sessions)
        self._public: dict[bytes, PublicKey] = {}
        try:
            with self._lock:
                self._pool.login()  # fail at start: wrong module, token or PIN
        except p11e.PKCS11Error as exc:
            raise HsmError(f"PKCS#11 token {self.token_label!r}: cannot open a session "
                           f"({type(exc).__name__})") from exc

    def __repr__(self) -> str:
        return f"<Pkcs11Backend token={self.token_label!r}>"

    def close(self) -> None:
        self._pool.close()

    def check(self) -> None:
        """Readiness: a logged-in session can be had (``HsmError`` otherwise)."""
        self._run("a readiness check", lambda _session: None)

    # -- plumbing
    def _run(self, what: str, op: Callable[[_Session], T]) -> T:
        """``op`` on a pooled session under the module lock. When the session or the login was
        lost, the module is initialised again (once for all threads that saw it) and ``op`` is
        retried once; a session that turns out stale before ``op`` ran is just replaced."""
        failures, stale = 0, 0
        while True:
            seen: int | None = None
            try:
                with self._pool.session() as session, self._lock:
                    self._pool.check(session)
                    seen = session.generation
                    return op(session)
            except _Stale:
                stale += 1
                if stale > 3:
                    raise HsmError(f"PKCS#11 token {self.token_label!r}: {what} failed: the "
                                   "module keeps being re-initialised") from None
            except _RELOGIN as exc:
                failures += 1
                if failures == 2:
                    raise HsmError(f"PKCS#11 token {self.token_label!r}: {what} failed after "
                                   f"logging in again ({type(exc).__name__})") from exc
                log.warning("PKCS#11 token %r: %s failed (%s); initialising the module and "
                            "logging in again", self.token_label, what, type(exc).__name__)
                with self._lock:
                    self._module.recover(self._module.generation if seen is None else seen)
            except p11e.PKCS11Error as exc:
                raise HsmError(f"PKCS#11 token {self.token_label!r}: {what} failed "
                               f"({type(exc).__name__})") from exc

    def _key_id(self, handle: bytes, context: bytes) -> bytes:
        token_label, cka_id = decode_handle(handle)
        if token_label != self.token_label:
            raise HsmError(f"key handle names token {token_label!r}, this backend holds "
                           f"{self.token_label!r}")
        if cka_id != key_id(context):
            raise HsmError("key handle does not belong to this key")
        return cka_id

    def supports(self, alg: str) -> bool:
        mechs = self._pool.mechanisms
        if alg == "ES256":
            return {Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA} <= mechs
        if alg == "RS256":
            return Mechanism.RSA_PKCS_KEY_PAIR_GEN in mechs and bool(
                {Mechanism.SHA256_RSA_PKCS, Mechanism.RSA_PKCS} & mechs)
        if alg == "EdDSA":
            return {Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA} <= mechs
        return False

    # -- KeyBackend
    def generate(self, alg: str, *, context: bytes) -> GeneratedKey:
        if alg not in SUPPORTED_SIGNING_ALGS:
            raise ValueError(f"unsupported alg {alg!r}; choose one of {SUPPORTED_SIGNING_ALGS}")
        if not self.supports(alg):
            needs = {"ES256": "CKM_EC_KEY_PAIR_GEN and CKM_ECDSA",
                     "RS256": "CKM_RSA_PKCS_KEY_PAIR_GEN and CKM_(SHA256_)RSA_PKCS",
                     "EdDSA": "CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA"}[alg]
            raise HsmUnsupported(f"PKCS#11 token {self.token_label!r} cannot make {alg} keys: "
                                 f"it does not offer {needs}")
        cka_id, label = key_id(context), key_label(context)

        def op(s: _Session) -> PublicKey:
            session = s.session
            for leftover in list(session.get_objects({Attribute.ID: cka_id})):
                leftover.destroy()  # of an attempt that failed half-way (kids are fresh)
            common: dict[str, Any] = {"id": cka_id, "label": label, "store": True,
                                      "capabilities": _SIGN_ONLY,
                                      "public_template": _PUBLIC_TEMPLATE,
                                      "private_template": _PRIVATE_TEMPLATE}
            if alg == "RS256":
                pub, priv = session.generate_keypair(
                    KeyType.RSA, RSA_BITS, **{**common, "public_template": {
                        **_PUBLIC_TEMPLATE, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"}})
            else:
                key_type = KeyType.EC if alg == "ES256" else KeyType.EC_EDWARDS
                params = session.create_domain_parameters(key_type, {
                    Attribute.EC_PARAMS: P256_PARAMS if alg == "ES256" else ED25519_PARAMS},
                    local=True)
                pub, priv = params.generate_keypair(**common)
            _check_private(priv)
            assert isinstance(priv, SignMixin)
            s.keys[cka_id] = priv
            return _public_key(alg, pub)

        public = self._run(f"generating an {alg} key", op)
        self._public[cka_id] = public
        return GeneratedKey(public_jwk=_jwk(public), handle=encode_handle(self.token_label,
                                                                          cka_id))

    def sign(self, alg: str, handle: bytes, data: bytes, *, context: bytes) -> bytes:
        cka_id = self._key_id(handle, context)
        mechs = self._pool.mechanisms
        if alg == "ES256":
            mechanism, payload = Mechanism.ECDSA, hashlib.sha256(data).digest()
        elif alg == "RS256" and Mechanism.SHA256_RSA_PKCS in mechs:
            mechanism, payload = Mechanism.SHA256_RSA_PKCS, data
        elif alg == "RS256":
            mechanism = Mechanism.RSA_PKCS
            payload = SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
        elif alg == "EdDSA":
            mechanism, payload = Mechanism.EDDSA, data
        else:
            raise ValueError(f"unsupported alg {alg!r}")

        def op(s: _Session) -> bytes:
            return bytes(s.private_key(cka_id).sign(payload, mechanism=mechanism))

        signature = self._run(f"signing with {alg}", op)
        if alg in ("ES256", "EdDSA") and len(signature) != 64:
            raise HsmError(f"PKCS#11 token {self.token_label!r}: {alg} signature of "
                           f"{len(signature)} octets, expected 64")
        return signature

    def certificate(self, alg: str, handle: bytes, *, context: bytes, common_name: str,
                    not_before: float, not_after: float) -> bytes:
        cka_id = self._key_id(handle, context)
        public = self.public_key(handle, context=context)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
        serial = int.from_bytes(hashlib.sha256(b"tessera cert serial|" + context).digest()[:16],
                                "big") >> 1 or 1
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(public).serial_number(serial)
                   .not_valid_before(dt.datetime.fromtimestamp(int(not_before), dt.UTC))
                   .not_valid_after(dt.datetime.fromtimestamp(int(not_after), dt.UTC))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True))

        def raw_sign(data: bytes) -> bytes:
            return self.sign(alg, handle, data, context=context)

        if alg == "EdDSA" and isinstance(public, ed25519.Ed25519PublicKey):
            return builder.sign(_Ed25519InToken(public, raw_sign), None).public_bytes(
                serialization.Encoding.DER)
        if alg == "RS256" and isinstance(public, rsa.RSAPublicKey):
            return builder.sign(_RsaInToken(public, raw_sign), hashes.SHA256()).public_bytes(
                serialization.Encoding.DER)
        if not (alg == "ES256" and isinstance(public, ec.EllipticCurvePublicKey)):
            raise HsmError(f"key does not sign {alg}")
        # randomized ECDSA: the certificate is made once and kept in the token
        fresh = builder.sign(_EcInToken(public, raw_sign), hashes.SHA256())
        fresh.verify_directly_issued_by(fresh)
        tbs = fresh.tbs_certificate_bytes
        label = key_label(context)

        def op(s: _Session) -> bytes:
            stored = _stored_certificates(s.session, cka_id, tbs)
            if not stored:
                s.session.create_object({
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.ID: cka_id,
                    Attribute.LABEL: label, Attribute.SUBJECT: name.public_bytes(),
                    Attribute.VALUE: fresh.public_bytes(serialization.Encoding.DER),
                })
                stored = _stored_certificates(s.session, cka_id, tbs)
            return min(stored)  # two replicas raced: every one picks the same

        return self._run("storing a certificate", op)

    def public_key(self, handle: bytes, *, context: bytes) -> PublicKey:
        """The key's public key, read from the token (cached)."""
        cka_id = self._key_id(handle, context)
        public = self._public.get(cka_id)
        if public is None:
            def op(s: _Session) -> PublicKey:
                obj = s.session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=cka_id)
                alg = {KeyType.EC: "ES256", KeyType.EC_EDWARDS: "EdDSA",
                       KeyType.RSA: "RS256"}.get(obj[Attribute.KEY_TYPE], "")
                return _public_key(alg, obj)

            public = self._public[cka_id] = self._run("reading a public key", op)
        return public

    def destroy(self, handle: bytes, *, context: bytes) -> None:
        """Remove the key's objects (private, public, certificate) from the token: a retired
        key's material is gone. Idempotent."""
        cka_id = self._key_id(handle, context)

        def op(s: _Session) -> int:
            objects = list(s.session.get_objects({Attribute.ID: cka_id}))
            for obj in objects:
                obj.destroy()
            for pooled in (s, *self._pool.idle_sessions()):
                pooled.keys.pop(cka_id, None)
            return len(objects)

        removed = self._run("destroying a key", op)
        self._public.pop(cka_id, None)
        log.info("PKCS#11 token %r: destroyed %d objects of a retired key", self.token_label,
                 removed)


def _check_private(key: Key) -> None:
    """Refuse a key the token would let out: it must be sensitive and never extractable."""
    flags = {a: key[a] for a in (Attribute.SENSITIVE, Attribute.EXTRACTABLE,
                                 Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE,
                                 Attribute.TOKEN)}
    if not (flags[Attribute.SENSITIVE] and flags[Attribute.ALWAYS_SENSITIVE]
            and flags[Attribute.NEVER_EXTRACTABLE] and flags[Attribute.TOKEN]
            and not flags[Attribute.EXTRACTABLE]):
        key.destroy()
        raise HsmError("the token did not make the private key sensitive and non-extractable")


def _stored_certificates(session: pkcs11.Session, cka_id: bytes, tbs: bytes) -> list[bytes]:
    """DER of the key's stored certificates with exactly these contents (``tbs``)."""
    found = []
    for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                    Attribute.ID: cka_id}):
        der = bytes(obj[Attribute.VALUE])
        try:
            same = x509.load_der_x509_certificate(der).tbs_certificate_bytes == tbs
        except ValueError:
            same = False
        if same:
            found.append(der)
    return found


def _unwrap_point(point: bytes, size: int) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING (some tokens give the bare point)."""
    if len(point) == size + 2 and point[0] == 0x04 and point[1] == size:
        return point[2:]
    if len(point) == size:
        return point
    raise HsmError("unexpected CKA_EC_POINT encoding")


def _public_key(alg: str, obj: Key) -> PublicKey:
    if alg == "ES256":
        point = _unwrap_point(bytes(obj[Attribute.EC_POINT]), 65)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    if alg == "EdDSA":
        return ed25519.Ed25519PublicKey.from_public_bytes(
            _unwrap_point(bytes(obj[Attribute.EC_POINT]), 32))
    if alg == "RS256":
        n = int.from_bytes(bytes(obj[Attribute.MODULUS]), "big")
        e = int.from_bytes(bytes(obj[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise HsmError("the token holds a key of a type tessera does not sign with")


def _jwk(public: PublicKey) -> dict[str, Any]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return dict(ECKey.import_key(public).as_dict(private=False))
    if isinstance(public, ed25519.Ed25519PublicKey):
        return dict(OKPKey.import_key(public).as_dict(private=False))
    return dict(RSAKey.import_key(public).as_dict(private=False))


# -- private keys in the token, as ``cryptography`` sees them (to sign a certificate) ----------
RawSign = Callable[[bytes], bytes]
Buffer = bytes | bytearray | memoryview


class _EcInToken(ec.EllipticCurvePrivateKey):
    def __init__(self, public: ec.EllipticCurvePublicKey, sign: RawSign) -> None:
        self._pub, self._sign = public, sign

    def sign(self, data: Buffer,
             signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not (isinstance(signature_algorithm, ec.ECDSA)
                and isinstance(signature_algorithm.algorithm, hashes.SHA256)):
            raise ValueError("the token key signs ECDSA with SHA-256 only")
        raw = self._sign(bytes(data))
        return encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                    int.from_bytes(raw[32:], "big"))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._pub

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._pub.curve

    @property
    def key_size(self) -> int:
        return self._pub.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise NotImplementedError("a token key only signs")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise NotImplementedError("a token key is not extractable")

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        raise NotImplementedError("a token key is not extractable")

    def __copy__(self) -> _EcInToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _EcInToken:
        return self


class _RsaInToken(rsa.RSAPrivateKey):
    def __init__(self, public: rsa.RSAPublicKey, sign: RawSign) -> None:
        self._pub, self._sign = public, sign

    def sign(self, data: Buffer, pad: AsymmetricPadding, algorithm: Any) -> bytes:
        if not (isinstance(pad, PKCS1v15) and isinstance(algorithm, hashes.SHA256)):
            raise ValueError("the token key signs PKCS#1 v1.5 with SHA-256 only")
        return self._sign(bytes(data))

    def public_key(self) -> rsa.RSAPublicKey:
        return self._pub

    @property
    def key_size(self) -> int:
        return self._pub.key_size

    def decrypt(self, ciphertext: bytes, pad: AsymmetricPadding) -> bytes:
        raise NotImplementedError("a token key only signs")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise NotImplementedError("a token key is not extractable")

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        raise NotImplementedError("a token key is not extractable")

    def __copy__(self) -> _RsaInToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _RsaInToken:
        return self


class _Ed25519InToken(ed25519.Ed25519PrivateKey):
    def __init__(self, public: ed25519.Ed25519PublicKey, sign: RawSign) -> None:
        self._pub, self._sign = public, sign

    def sign(self, data: Buffer) -> bytes:
        return self._sign(bytes(data))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._pub

    def private_bytes(self, encoding: serialization.Encoding,
                      format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        raise NotImplementedError("a token key is not extractable")

    def private_bytes_raw(self) -> bytes:
        raise NotImplementedError("a token key is not extractable")

    def __copy__(self) -> _Ed25519InToken:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Ed25519InToken:
        return self
