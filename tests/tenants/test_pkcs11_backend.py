"""The PKCS#11 key backend against a throwaway SoftHSM2 token: keys made and kept in the token,
signatures that verify with the published JWKS, rotation, restart, a move from software keys,
re-login, the PIN kept out of every message.

Skipped (with the reason) when python-pkcs11, the SoftHSM2 module or softhsm2-util is absent:
``apt install softhsm2`` and ``pip install -e '.[test]'`` run them. Nothing else depends on them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pkcs11 = pytest.importorskip(
    "pkcs11", reason="python-pkcs11 is not installed (pip install -e '.[hsm]' or '.[test]')")

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
if not Path(SOFTHSM_MODULE).exists() or shutil.which("softhsm2-util") is None:
    pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE} or softhsm2-util missing; "
                "apt install softhsm2)", allow_module_level=True)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.jwk import ECKey, KeySet, RSAKey  # noqa: E402
from pkcs11 import Attribute, CertificateType, ObjectClass  # noqa: E402
from pkcs11 import exceptions as p11e  # noqa: E402

from adapters import jose  # noqa: E402
from adapters.clock import FrozenClock  # noqa: E402
from broker.config import Settings  # noqa: E402
from broker.runtime import Broker  # noqa: E402
from tenants.keys.backends import Pkcs11Config, key_backends  # noqa: E402
from tenants.keys.hsm import (  # noqa: E402
    HsmError,
    Pkcs11Backend,
    _Stale,
    encode_handle,
    key_id,
    key_label,
)
from tenants.migrate import upgrade  # noqa: E402
from tenants.models import SigningKey  # noqa: E402
from tests.conftest import REPO_ROOT, make_settings, new_tenant  # noqa: E402

DAY = 86_400
LABEL = "tessera-test"
PIN_LABEL = "tessera-pin"  # a token this process logs in to only in the PIN test
PIN = "pin-" + secrets.token_hex(8)  # distinctive, so a leak is found by substring
SO_PIN = "so-" + secrets.token_hex(8)


def _init_token(conf: Path, label: str, pin: str) -> None:
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", SO_PIN], env={**os.environ, "SOFTHSM2_CONF": str(conf)},
                   check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SoftHSM2 configuration with two fresh tokens; this process uses it from now on
    (SoftHSM2 reads SOFTHSM2_CONF once, when the module is initialised)."""
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    _init_token(conf, LABEL, PIN)
    _init_token(conf, PIN_LABEL, PIN)
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    yield conf
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before


@pytest.fixture(scope="session")
def hsm(softhsm: Path) -> Iterator[Pkcs11Backend]:
    backend = Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, LABEL, PIN, sessions=4))
    yield backend
    backend.close()


def hsm_settings(url: str, **overrides: Any) -> Settings:
    return make_settings(url, key_backend="pkcs11", pkcs11_module=SOFTHSM_MODULE,
                         pkcs11_token_label=LABEL, pkcs11_pin=PIN, **overrides)


@pytest.fixture
async def hsm_broker(softhsm: Path, tmp_path: Path) -> AsyncIterator[tuple[Broker, FrozenClock]]:
    """A broker whose new keys are made in the token, on a database of its own."""
    clock = FrozenClock()
    broker = Broker.build(hsm_settings(f"sqlite+aiosqlite:///{tmp_path}/hsm.db"), clock=clock)
    await upgrade(broker.engine)
    yield broker, clock
    await broker.close()


def token_objects(cka_id: bytes) -> list[ObjectClass]:
    """The classes of the token's objects with this CKA_ID, seen from a session of our own
    (this process is logged in, so private objects are visible)."""
    token = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=LABEL)
    with token.open() as session:
        return sorted(obj[Attribute.CLASS] for obj in session.get_objects({Attribute.ID: cka_id}))


def compact(data: bytes, signature: bytes) -> str:
    return jose.compact(data, signature)


async def row(broker: Broker, tenant: str, kid: str) -> SigningKey:
    async with broker.sessions() as session:
        found = await session.get(SigningKey, (kid, tenant))
        assert found is not None
        return found


async def active_kid(broker: Broker, tenant: str) -> str:
    return next(k.kid for k in await broker.keys.keys(tenant) if k.state == "active")


# -- the backend on its own ----------------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_generate_sign_and_verify_with_the_published_jwk(hsm: Pkcs11Backend, alg: str) -> None:
    context = f"acme|{secrets.token_urlsafe(8)}".encode()
    generated = hsm.generate(alg, context=context)
    assert "d" not in generated.public_jwk and "p" not in generated.public_jwk
    data = jose.signing_input({"alg": alg, "kid": "k1", "typ": "JWT"}, {"sub": "alice"})
    signature = hsm.sign(alg, generated.handle, data, context=context)
    if alg in ("ES256", "EdDSA"):
        assert len(signature) == 64  # JOSE form r||s (ES256), Ed25519 signature
    keys = KeySet.import_key_set({"keys": [{**generated.public_jwk, "kid": "k1", "alg": alg}]})
    assert jwt.decode(compact(data, signature), keys, algorithms=[alg]).claims == {"sub": "alice"}
    # a signature over other data does not verify
    other = jose.signing_input({"alg": alg, "kid": "k1", "typ": "JWT"}, {"sub": "mallory"})
    with pytest.raises(Exception):  # noqa: B017 - joserfc's BadSignatureError
        jwt.decode(compact(other, signature), keys, algorithms=[alg])


def test_private_key_is_a_sensitive_non_extractable_token_object(hsm: Pkcs11Backend) -> None:
    context = b"acme|attrs"
    generated = hsm.generate("ES256", context=context)
    cka_id = key_id(context)
    # the handle is a small versioned reference: token label and CKA_ID, nothing else
    assert generated.handle == encode_handle(LABEL, cka_id) and len(generated.handle) < 64
    token = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=LABEL)
    with token.open() as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=cka_id)
        assert private[Attribute.LABEL] == key_label(context) == "tessera|acme|attrs"
        assert private[Attribute.TOKEN] is True and private[Attribute.PRIVATE] is True
        assert private[Attribute.SENSITIVE] is True and private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.DECRYPT] is False and private[Attribute.DERIVE] is False
        with pytest.raises(p11e.AttributeSensitive):
            private[Attribute.VALUE]  # the private scalar never leaves the token
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=cka_id)
        assert public[Attribute.TOKEN] is True


def test_a_handle_signs_only_for_its_own_row_and_token(hsm: Pkcs11Backend) -> None:
    generated = hsm.generate("ES256", context=b"acme|bound")
    with pytest.raises(HsmError, match="does not belong"):
        hsm.sign("ES256", generated.handle, b"x", context=b"other|bound")
    foreign = encode_handle("another-token", key_id(b"acme|bound"))
    with pytest.raises(HsmError, match="another-token"):
        hsm.sign("ES256", foreign, b"x", context=b"acme|bound")
    with pytest.raises(HsmError, match="not a PKCS#11 key handle"):
        hsm.sign("ES256", b"\x00" * 40, b"x", context=b"acme|bound")


def test_eddsa_needs_the_mechanisms_and_rs256_falls_back_to_digest_info(
        tmp_path: Path) -> None:
    """A token without CKM_EDDSA / CKM_EC_EDWARDS_KEY_PAIR_GEN / CKM_SHA256_RSA_PKCS (SoftHSM2
    told to hide them): EdDSA fails at generation with a clear error; RS256 is signed with
    CKM_RSA_PKCS over the SHA-256 DigestInfo and verifies. SoftHSM2 reads its configuration
    once per process, so this runs in a child process."""
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n"
                    # SoftHSM 2.6 skips the first name after '-': it is repeated on purpose
                    "slots.mechanisms = -CKM_EDDSA,CKM_EDDSA,CKM_EC_EDWARDS_KEY_PAIR_GEN,"
                    "CKM_SHA256_RSA_PKCS\n")
    _init_token(conf, "limited", PIN)
    script = textwrap.dedent(f"""
        import base64, json
        from tenants.keys.backends import Pkcs11Config
        from tenants.keys.hsm import HsmUnsupported, Pkcs11Backend
        b = Pkcs11Backend(Pkcs11Config({SOFTHSM_MODULE!r}, "limited", {PIN!r}))
        try:
            b.generate("EdDSA", context=b"acme|ed")
            eddsa = "generated"
        except HsmUnsupported as exc:
            eddsa = str(exc)
        g = b.generate("RS256", context=b"acme|rsa")
        sig = b.sign("RS256", g.handle, b"payload", context=b"acme|rsa")
        print(json.dumps({{"eddsa": eddsa, "jwk": g.public_jwk,
                          "sig": base64.b64encode(sig).decode(), "rs256": b.supports("RS256"),
                          "es256": b.supports("ES256")}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "SOFTHSM2_CONF": str(conf),
                               "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "cannot make EdDSA keys" in out["eddsa"] and "CKM_EDDSA" in out["eddsa"]
    assert out["rs256"] and out["es256"]
    public = RSAKey.import_key(out["jwk"]).public_key
    public.verify(base64.b64decode(out["sig"]), b"payload", padding.PKCS1v15(), hashes.SHA256())
    assert PIN not in proc.stdout + proc.stderr


def test_es256_certificate_is_stored_once_and_the_same_for_every_replica(
        hsm: Pkcs11Backend) -> None:
    context = b"acme|cert"
    generated = hsm.generate("ES256", context=context)
    args: dict[str, Any] = {"context": context, "common_name": "tessera acme",
                            "not_before": 1_700_000_000, "not_after": 2_000_000_000}
    first = hsm.certificate("ES256", generated.handle, **args)
    cert = x509.load_der_x509_certificate(first)
    cert.verify_directly_issued_by(cert)  # self-signed by the token's key
    assert cert.public_key() == ECKey.import_key(generated.public_jwk).public_key
    assert token_objects(key_id(context)).count(ObjectClass.CERTIFICATE) == 1
    # a second replica (a backend of its own, nothing cached) publishes the very same octets
    replica = Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, LABEL, PIN))
    assert replica.certificate("ES256", generated.handle, **args) == first
    assert token_objects(key_id(context)).count(ObjectClass.CERTIFICATE) == 1

    # two replicas raced and both stored one: take the first out, let another replica store
    # its own (same contents, another randomized signature), put the first back
    token = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=LABEL)
    cert_query = {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id(context)}
    with token.open(rw=True) as session:
        for obj in list(session.get_objects(cert_query)):
            obj.destroy()
    racer = Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, LABEL, PIN)).certificate(
        "ES256", generated.handle, **args)
    assert racer != first
    assert x509.load_der_x509_certificate(racer).tbs_certificate_bytes == cert.tbs_certificate_bytes
    with token.open(rw=True) as session:
        session.create_object({
            **cert_query, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True, Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.VALUE: first})
    assert token_objects(key_id(context)).count(ObjectClass.CERTIFICATE) == 2
    for _ in range(2):  # every replica, however often asked, picks the lowest octets
        fresh = Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, LABEL, PIN))
        assert fresh.certificate("ES256", generated.handle, **args) == min(first, racer)
    # other inputs, another certificate (a stored one is not handed out blindly)
    other = hsm.certificate("ES256", generated.handle, **{**args, "common_name": "tessera x"})
    assert x509.load_der_x509_certificate(other).subject.rfc4514_string() == "CN=tessera x"


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_deterministic_certificates_are_not_stored(hsm: Pkcs11Backend, alg: str) -> None:
    context = f"acme|det-{alg}".encode()
    generated = hsm.generate(alg, context=context)
    args: dict[str, Any] = {"context": context, "common_name": "tessera acme",
                            "not_before": 1_700_000_000, "not_after": 2_000_000_000}
    first = hsm.certificate(alg, generated.handle, **args)
    replica = Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, LABEL, PIN))
    assert replica.certificate(alg, generated.handle, **args) == first
    cert = x509.load_der_x509_certificate(first)
    cert.verify_directly_issued_by(cert)
    assert ObjectClass.CERTIFICATE not in token_objects(key_id(context))


def test_concurrent_signing_from_threads(hsm: Pkcs11Backend) -> None:
    """Threads share the backend; the module's calls are serialised (SoftHSM2 initialised
    without locking crashes otherwise) and every signature verifies."""
    context = b"acme|threads"
    generated = hsm.generate("ES256", context=context)
    public = ECKey.import_key(generated.public_jwk).public_key
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(150):
                data = f"{n}-{i}".encode()
                results.append((data, hsm.sign("ES256", generated.handle, data,
                                               context=context)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8 * 150
    assert 1 <= len(hsm._pool.idle_sessions()) <= 4  # the pool never opened more than its size
    for data, raw in results:
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                           int.from_bytes(raw[32:], "big")),
                      data, ec.ECDSA(hashes.SHA256()))


def test_logs_in_again_when_its_sessions_are_closed_under_it(
        hsm: Pkcs11Backend, caplog: pytest.LogCaptureFixture) -> None:
    context = b"acme|relogin"
    generated = hsm.generate("ES256", context=context)
    public = ECKey.import_key(generated.public_jwk).public_key

    def signs() -> None:
        raw = hsm.sign("ES256", generated.handle, b"still here", context=context)
        public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                           int.from_bytes(raw[32:], "big")),
                      b"still here", ec.ECDSA(hashes.SHA256()))

    signs()
    caplog.set_level(logging.DEBUG)
    # every pooled session closed behind the backend's back: CKR_SESSION_HANDLE_INVALID
    idle = hsm._pool.idle_sessions()
    assert idle
    for pooled in idle:
        pooled.session.close()
    signs()
    assert "logging in again" in caplog.text and "SessionHandleInvalid" in caplog.text
    caplog.clear()
    # the login itself ended (the anchor session logged out): the pooled sessions survive
    # but no longer see the private key
    anchor = hsm._pool._anchor
    assert anchor is not None
    anchor.close()
    signs()
    assert "logging in again" in caplog.text
    assert PIN not in caplog.text


def test_concurrent_signers_survive_the_login_ending_under_them(hsm: Pkcs11Backend) -> None:
    """A lost login is renewed once for all threads: a thread holding a session of the old
    login gets a fresh one instead of failing or tearing the new login down again. The login
    is ended ten times, each time only after every thread has signed since the last (the
    backend retries once: it rides out one loss at a time, not a burst)."""
    context = b"acme|storm"
    generated = hsm.generate("ES256", context=context)
    errors: list[BaseException] = []
    signed = [0] * 6
    done = threading.Event()

    def signer(n: int) -> None:
        try:
            while not done.is_set():
                hsm.sign("ES256", generated.handle, b"x", context=context)
                signed[n] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=signer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    generation = hsm._module.generation
    try:
        for _ in range(10):
            # two more signatures each: the first may have started before the last loss
            seen = list(signed)
            deadline = time.monotonic() + 30
            while any(a < b + 2 for a, b in zip(signed, seen, strict=True)) and not errors:
                assert time.monotonic() < deadline, "signers made no progress"
                time.sleep(0.005)
            if errors:
                break
            with hsm._lock:  # the module's calls are serialised; so is this one
                hsm._pool.login()  # the current login's anchor session
                anchor = hsm._pool._anchor
                assert anchor is not None
                anchor.close()  # C_Logout: every session of the process loses the login
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == []
    # one recovery per loss, not one per thread that saw it
    assert hsm._module.generation == generation + 10


def test_sessions_of_a_passed_login_are_neither_used_nor_closed(hsm: Pkcs11Backend) -> None:
    """After the module is initialised again it hands out session numbers anew (SoftHSM2
    starts over): a session object from before may carry the number of a live session now.
    The backend must not run an operation on it, nor close it (closing would end the live
    one)."""
    context = b"acme|stale"
    generated = hsm.generate("ES256", context=context)
    with pytest.raises(RuntimeError, match="failed on purpose"), \
            hsm._pool.session() as stale:
        with hsm._lock:
            stale.private_key(key_id(context))
            hsm._module.recover(hsm._module.generation)  # what a lost login leads to
        hsm.sign("ES256", generated.handle, b"x", context=context)  # a new login, new sessions
        # (SoftHSM2 usually hands the stale object's number to a live session now; which
        # number depends on the sessions other tests of this process hold, so it is not
        # asserted: what counts is that the pool recognises the object as stale)
        with hsm._lock, pytest.raises(_Stale):
            hsm._pool.check(stale)  # what _run does before every operation
        raise RuntimeError("failed on purpose")  # the pool closes a failed session...
    # ... unless it is stale: the live session with its number still works, no new recovery
    generation = hsm._module.generation
    hsm.sign("ES256", generated.handle, b"x", context=context)
    assert hsm._module.generation == generation


def test_a_key_gone_from_the_token_fails_after_one_retry(hsm: Pkcs11Backend) -> None:
    context = b"acme|gone"
    generated = hsm.generate("ES256", context=context)
    hsm.destroy(generated.handle, context=context)
    assert token_objects(key_id(context)) == []
    with pytest.raises(HsmError, match="after logging in again") as raised:
        hsm.sign("ES256", generated.handle, b"x", context=context)
    assert LABEL in str(raised.value)
    hsm.destroy(generated.handle, context=context)  # idempotent


def test_the_pin_appears_in_no_log_repr_or_error(
        softhsm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + secrets.token_hex(8)
    with pytest.raises(HsmError) as raised:
        Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, PIN_LABEL, wrong))
    assert "login refused (PinIncorrect)" in str(raised.value)
    text = "".join(traceback.format_exception(raised.value)) + repr(raised.value)
    assert wrong not in text and PIN not in text
    with pytest.raises(HsmError, match="not found") as missing:
        Pkcs11Backend(Pkcs11Config(SOFTHSM_MODULE, "no-such-token", PIN))
    assert PIN not in "".join(traceback.format_exception(missing.value))

    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    config = Pkcs11Config.of(module=SOFTHSM_MODULE, token_label=PIN_LABEL,
                             pin_file=str(pin_file))
    assert config.pin == PIN and PIN not in repr(config)
    backend = Pkcs11Backend(config)
    generated = backend.generate("ES256", context=b"acme|pin")
    backend.sign("ES256", generated.handle, b"x", context=b"acme|pin")
    with backend._lock:  # what a lost session leads to: the module initialised again
        backend._module.recover(backend._module.generation)
    backend.sign("ES256", generated.handle, b"x", context=b"acme|pin")
    assert PIN not in repr(backend) and PIN not in repr(backend._pool)
    settings = hsm_settings("sqlite+aiosqlite:///unused.db")
    assert settings.pkcs11_pin == PIN and PIN not in repr(settings)
    assert "logged in" in caplog.text and PIN not in caplog.text and wrong not in caplog.text
    backend.close()

    with pytest.raises(ValueError, match="TESSERA_PKCS11_PIN"):
        Pkcs11Config.of(module=SOFTHSM_MODULE, token_label=PIN_LABEL)
    with pytest.raises(ValueError, match="TESSERA_PKCS11_MODULE"):
        key_backends("pkcs11", b"\x00" * 32, token_label=LABEL, pin=PIN)


# -- through the key service -----------------------------------------------------------------
async def test_key_service_signs_with_token_keys(
        hsm_broker: tuple[Broker, FrozenClock]) -> None:
    broker, _ = hsm_broker
    for alg in ("ES256", "RS256", "EdDSA"):
        tenant = await new_tenant(broker, key_alg=alg)
        kid = await active_kid(broker, tenant)
        stored = await row(broker, tenant, kid)
        assert stored.backend == "pkcs11" and stored.private_blob.startswith(b"p11\x01")
        assert ObjectClass.PRIVATE_KEY in token_objects(key_id(f"{tenant}|{kid}".encode()))
        token = await broker.keys.sign(tenant, {"typ": "JWT"}, {"alg-test": alg})
        keys = KeySet.import_key_set(await broker.keys.jwks(tenant))
        assert jose.unverified_header(token)["kid"] == kid
        assert jwt.decode(token, keys, algorithms=[alg]).claims == {"alg-test": alg}
        # SAML-style raw signatures and the published certificate come from the same key
        signer = await broker.keys.raw_signer(tenant)
        cert = x509.load_pem_x509_certificate(signer.certificate.encode())
        cert.verify_directly_issued_by(cert)


async def test_rotation_on_the_schedule_retires_and_destroys_token_keys(
        hsm_broker: tuple[Broker, FrozenClock]) -> None:
    broker, clock = hsm_broker
    tenant = await new_tenant(broker, key_rotation_seconds=DAY)
    first = await active_kid(broker, tenant)
    old_token = await broker.keys.sign(tenant, {}, {"n": 1})
    clock.advance(DAY - 60)
    assert [r for r in await broker.keys.tick() if r.tenant_id == tenant] == []
    clock.advance(120)
    rotated = [r for r in await broker.keys.tick() if r.tenant_id == tenant]
    assert len(rotated) == 1 and rotated[0].retiring == first
    new_token = await broker.keys.sign(tenant, {}, {"n": 2})
    assert jose.unverified_header(new_token)["kid"] == rotated[0].activated != first
    keys = KeySet.import_key_set(await broker.keys.jwks(tenant))
    assert jwt.decode(old_token, keys).claims == {"n": 1}  # the retiring key still verifies
    first_id = key_id(f"{tenant}|{first}".encode())
    assert ObjectClass.PRIVATE_KEY in token_objects(first_id)

    clock.advance(3_600 + broker.keys.retire_margin + 1)
    await broker.keys.tick()
    broker.keys.invalidate(tenant)
    assert first not in {k["kid"] for k in (await broker.keys.jwks(tenant))["keys"]}
    retired = await row(broker, tenant, first)
    assert retired.state == "retired" and retired.private_blob == b""
    assert token_objects(first_id) == []  # the token no longer holds the retired key
    assert jwt.decode(await broker.keys.sign(tenant, {}, {"n": 3}),
                      KeySet.import_key_set(await broker.keys.jwks(tenant))).claims == {"n": 3}


async def test_a_restarted_process_signs_with_the_same_token_keys(
        hsm_broker: tuple[Broker, FrozenClock], tmp_path: Path) -> None:
    broker, _ = hsm_broker
    tenant = await new_tenant(broker)
    kid = await active_kid(broker, tenant)
    before = token_objects(key_id(f"{tenant}|{kid}".encode()))
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN)
    pin_file.chmod(0o600)
    settings = broker.settings
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT),
           "TESSERA_DATABASE_URL": settings.database_url,
           "TESSERA_MASTER_KEY": settings.master_key, "TESSERA_DEMO": "false",
           "TESSERA_KEY_BACKEND": "pkcs11", "TESSERA_PKCS11_MODULE": SOFTHSM_MODULE,
           "TESSERA_PKCS11_TOKEN_LABEL": LABEL, "TESSERA_PKCS11_PIN_FILE": str(pin_file),
           "TESSERA_LOG_LEVEL": "debug"}
    env.pop("TESSERA_PKCS11_PIN", None)
    script = textwrap.dedent("""
        import asyncio, json, logging, sys
        logging.basicConfig(level=logging.DEBUG)
        from broker.config import Settings
        from broker.runtime import Broker

        async def main():
            broker = Broker.build(Settings.load())
            token = await broker.keys.sign(sys.argv[1], {"typ": "JWT"}, {"from": "restart"})
            signer = await broker.keys.raw_signer(sys.argv[1])
            print(json.dumps({"token": token, "certificate": signer.certificate}))
            await broker.close()

        asyncio.run(main())
    """)
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, tenant], capture_output=True, text=True,
        env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert PIN not in proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert jose.unverified_header(out["token"])["kid"] == kid
    keys = KeySet.import_key_set(await broker.keys.jwks(tenant))
    assert jwt.decode(out["token"], keys).claims == {"from": "restart"}
    # the same key (no new one made) and, for ES256, the same stored certificate
    assert token_objects(key_id(f"{tenant}|{kid}".encode())) == before
    assert out["certificate"] == (await broker.keys.raw_signer(tenant)).certificate


async def test_a_tenant_moves_from_software_keys_to_the_token_by_rotation(
        softhsm: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/move.db"
    software_settings = make_settings(url)
    clock = FrozenClock()
    before = Broker.build(software_settings, clock=clock)
    await upgrade(before.engine)
    tenant = await new_tenant(before, key_rotation_seconds=DAY)
    software_kids = {k.kid for k in await before.keys.keys(tenant)}
    old_token = await before.keys.sign(tenant, {}, {"era": "software"})

    after = Broker.build(software_settings.replace(
        key_backend="pkcs11", pkcs11_module=SOFTHSM_MODULE,
        pkcs11_token_label=LABEL, pkcs11_pin=PIN), clock=clock)
    try:
        # the software keys still sign through the new process
        assert jose.unverified_header(await after.keys.sign(tenant, {}, {}))["kid"] in \
            software_kids
        clock.advance(DAY + 1)
        first = next(r for r in await after.keys.tick() if r.tenant_id == tenant)
        assert first.activated in software_kids  # the software next key, published a day ago
        assert (await row(after, tenant, first.published_next)).backend == "pkcs11"
        middle_token = await after.keys.sign(tenant, {}, {"era": "software next"})
        clock.advance(DAY + 1)
        second = next(r for r in await after.keys.tick() if r.tenant_id == tenant)
        assert second.activated == first.published_next
        hsm_token = await after.keys.sign(tenant, {}, {"era": "hsm"})
        assert jose.unverified_header(hsm_token)["kid"] == second.activated
        keys = KeySet.import_key_set(await after.keys.jwks(tenant))
        assert jwt.decode(hsm_token, keys).claims == {"era": "hsm"}
        assert jwt.decode(middle_token, keys).claims == {"era": "software next"}
        # the first software key retired after its last token expired; the old token's key
        # is gone, as on any rotation
        assert jose.unverified_header(old_token)["kid"] not in {k["kid"] for k in keys.keys}
        # a process without the token configured cannot sign with it, and says why
        before.keys.invalidate(tenant)
        with pytest.raises(RuntimeError, match="'pkcs11' key backend"):
            await before.keys.sign(tenant, {}, {})
        states = {(await row(after, tenant, kid)).state for kid in software_kids}
        assert states == {"retired", "retiring"}
    finally:
        await after.close()
        await before.close()


async def test_compromise_of_a_token_key_destroys_it_and_a_token_key_signs_at_once(
        hsm_broker: tuple[Broker, FrozenClock]) -> None:
    """Emergency rotation with the HSM backend: the compromised key's objects are destroyed
    in the token, a new key made in the token signs at once, the old kid is refused."""
    broker, clock = hsm_broker
    tenant = await new_tenant(broker)
    kid = await active_kid(broker, tenant)
    old_id = key_id(f"{tenant}|{kid}".encode())
    assert ObjectClass.PRIVATE_KEY in token_objects(old_id)
    old_token = await broker.keys.sign(tenant, {}, {"n": 1})
    done = await broker.keys.compromise(tenant, kid, reason="token dump")
    assert token_objects(old_id) == []
    assert (await row(broker, tenant, kid)).state == "compromised"
    assert await broker.keys.verification_key(tenant, kid) is None
    new_token = await broker.keys.sign(tenant, {}, {"n": 2})
    assert jose.unverified_header(new_token)["kid"] == done.activated != kid
    assert (await row(broker, tenant, done.activated)).backend == "pkcs11"
    keys = KeySet.import_key_set(await broker.keys.jwks(tenant))
    assert jwt.decode(new_token, keys).claims == {"n": 2}
    with pytest.raises(Exception):  # noqa: B017 - the kid is not in the JWKS any more
        jwt.decode(old_token, keys)
    # the fresh next key is in the token too; it may sign only after its publication period
    nxt = await row(broker, tenant, done.published_next)
    assert nxt.backend == "pkcs11" and nxt.state == "next"
    clock.advance(broker.keys.publication_period)
    assert (await broker.keys.rotate(tenant)).activated == done.published_next
