"""The key service: signs for a tenant, publishes its JWKS, rotates its keys on a schedule.

Key states: ``next`` (published, not yet signing) -> ``active`` (signs) -> ``retiring``
(published, verifies until every token it signed has expired) -> ``retired`` (gone from JWKS,
key material erased). A rotation promotes ``next``, demotes ``active`` and creates a new
``next``, so relying parties have seen a key in the JWKS for a whole period before it signs.

Raw signatures (XML Signature for SAML assertions, built by ``adapters.saml_issue``) come from
the same keys: ``raw_signer`` binds the active key to a ``sign(bytes) -> bytes`` that goes
through the backend, and ``certificate`` is the key's self-signed X.509 certificate, made by
the backend with the private key (deterministic, cached here). A JWS signing input is base64url
text and a canonical SignedInfo is XML starting with ``<``, so one key serving both formats
cannot have a signature of one taken for the other.

Backends: new keys are made in the service's backend (``software`` or ``pkcs11``); each row
records the backend holding its key (``signing_keys.backend``) and signing goes to that one, so
a deployment moved to an HSM keeps signing and verifying with its software keys until rotation
retires them. A key's certificate is made when the key is generated, before its row is
committed (a PKCS#11 token keeps an ES256 key's certificate, see ``hsm``). A retired key's
material is erased: the row's handle is blanked and the backend destroys what it holds.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import Key
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters import jose
from adapters.clock import Clock
from tenants.hotpath import HotPath
from tenants.keys import compromised
from tenants.keys.backend import KeyBackend
from tenants.keys.lifecycle import (
    JWKS_MAX_AGE,
    MAX_RETIRING,
    PUBLICATION_MARGIN,
    PUBLISHED,
    Compromise,
    KeyLifecycle,
    Rotation,
    RotationConflict,
    RotationTooEarly,
    context,
    new_kid,
)
from tenants.models import SigningKey

__all__ = ["Compromise", "KeyService", "KeyView", "RawSigner", "Rotation", "RotationConflict",
           "RotationTooEarly", "key_context"]


@dataclass(frozen=True)
class KeyView:
    kid: str
    alg: str
    state: str
    public_jwk: dict[str, Any]
    handle: bytes
    activated_at: float | None
    retire_after: float | None
    created_at: float = 0.0
    backend: str = "software"
    retiring_at: float | None = None

    def jwk(self) -> dict[str, Any]:
        return {**self.public_jwk, "kid": self.kid, "use": "sig", "alg": self.alg}


@dataclass
class _TenantKeys:
    loaded_at: float
    keys: list[KeyView]
    imported: dict[str, Key]

    @property
    def active(self) -> KeyView | None:
        return next((k for k in self.keys if k.state == "active"), None)


@dataclass(frozen=True)
class RawSigner:
    """The tenant's active key bound for raw signatures: ``sign`` runs in the backend (the
    private key never leaves it); ``certificate`` is the key's X.509 certificate (PEM)."""

    kid: str
    alg: str
    certificate: str
    sign: Callable[[bytes], bytes]


CERT_VALIDITY = 10 * 365 * 86_400  # SAML SPs trust metadata keys, not certificate dates
_CERT_CACHE_SIZE = 10_000
_STATE_ORDER = {"active": 0, "next": 1, "retiring": 2}


def _view(r: SigningKey) -> KeyView:
    return KeyView(r.kid, r.alg, r.state, r.public_jwk, r.private_blob, r.activated_at,
                   r.retire_after, r.created_at, r.backend, r.retiring_at)


class KeyService(KeyLifecycle):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        backend: KeyBackend,
        clock: Clock,
        *,
        cache_ttl: float = 10.0,
        others: Iterable[KeyBackend] = (),
        hot: HotPath | None = None,
        max_retiring: int = MAX_RETIRING,
    ) -> None:
        """``backend`` makes new keys; ``others`` hold keys made before (they still sign);
        ``hot`` reads a key's compromised state per verification (else ``sessions`` do)."""
        if max_retiring < 1:
            raise ValueError("max_retiring must be at least 1")
        self._sessions = sessions
        self._backend = backend
        self._backends = {b.name: b for b in (*others, backend)}
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._cache: dict[str, _TenantKeys] = {}
        self._certs: dict[tuple[str, str], str] = {}
        self._hot = hot
        self._epochs: dict[str, int] = {}
        # A replica may keep signing with a just-demoted key for one cache period.
        self.retire_margin = cache_ttl + 60.0
        # ``next`` signs only once relying parties and replicas have had it for this long
        self.publication_period = JWKS_MAX_AGE + cache_ttl + PUBLICATION_MARGIN
        self.max_retiring = max_retiring

    def check_backends(self) -> None:
        """Readiness: every backend holding keys can be used (it raises otherwise)."""
        for backend in self._backends.values():
            check = getattr(backend, "check", None)
            if check is not None:
                check()

    # -- reading -------------------------------------------------------------------------
    async def _load(self, tenant_id: str, *, force: bool = False) -> _TenantKeys:
        now = self._clock.now()
        cached = self._cache.get(tenant_id)
        if cached is not None and not force and now - cached.loaded_at < self._cache_ttl:
            return cached
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(SigningKey).where(
                        SigningKey.tenant_id == tenant_id, SigningKey.state.in_(PUBLISHED)
                    ).order_by(SigningKey.created_at)
                )
            ).scalars().all()
        keys = [
            _view(r) for r in rows
            if not (r.state == "retiring" and r.retire_after is not None and r.retire_after < now)
        ]
        entry = _TenantKeys(now, keys, {k.kid: jose.import_public_jwk(k.public_jwk) for k in keys})
        self._cache[tenant_id] = entry
        return entry

    def invalidate(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)

    def observe(self, tenant_id: str, epoch: int) -> None:
        """The tenant's directory epoch as a fresh read found it: when it moved (a compromised
        key moves it, ``lifecycle``), the cached keys are dropped, so this replica stops
        signing with a compromised key and stops publishing it from the next request."""
        if self._epochs.get(tenant_id) != epoch:
            if len(self._epochs) >= _CERT_CACHE_SIZE:
                self._epochs.clear()
            self._epochs[tenant_id] = epoch
            self.invalidate(tenant_id)

    async def jwks(self, tenant_id: str) -> dict[str, Any]:
        entry = await self._load(tenant_id)
        return {"keys": [k.jwk() for k in entry.keys]}

    async def keys(self, tenant_id: str) -> list[KeyView]:
        return list((await self._load(tenant_id, force=True)).keys)

    async def verification_key(self, tenant_id: str, kid: str, *,
                               check_compromised: bool = True) -> Key | None:
        """The public key for ``kid`` if the tenant publishes it (reloads once on a miss) and
        it is not compromised: that is read from the database on every call, so a compromise
        counts on every replica from its next request (``tenants.keys.compromised``). A
        caller that reads it itself in the same request (``check_compromised=False``: the
        access token check's one statement, ``tenants.token_state``) must refuse the token
        when it is."""
        entry = await self._load(tenant_id)
        key = entry.imported.get(kid)
        if key is None and self._clock.now() - entry.loaded_at >= 1.0:
            key = (await self._load(tenant_id, force=True)).imported.get(kid)
        if key is not None and check_compromised and await compromised.is_compromised(
                self._hot, self._sessions, tenant_id, kid):
            self.invalidate(tenant_id)
            return None
        return key

    # -- signing -------------------------------------------------------------------------
    def _backend_of(self, key: KeyView) -> KeyBackend:
        backend = self._backends.get(key.backend)
        if backend is None:
            raise RuntimeError(f"key {key.kid!r} is held by the {key.backend!r} key backend, "
                               "which this process has not configured")
        return backend

    async def _active(self, tenant_id: str) -> KeyView:
        active = (await self._load(tenant_id)).active
        if active is None:
            await self.ensure(tenant_id)
            active = (await self._load(tenant_id, force=True)).active
            if active is None:
                raise RuntimeError(f"tenant {tenant_id!r} has no active signing key")
        return active

    async def sign(self, tenant_id: str, header: dict[str, Any], claims: dict[str, Any]) -> str:
        active = await self._active(tenant_id)
        data = jose.signing_input({**header, "alg": active.alg, "kid": active.kid}, claims)
        signature = self._backend_of(active).sign(
            active.alg, active.handle, data, context=_context(tenant_id, active.kid)
        )
        return jose.compact(data, signature)

    async def raw_signer(self, tenant_id: str) -> RawSigner:
        """The active key with its certificate, for signatures that are not JWS."""
        active = await self._active(tenant_id)
        backend, context = self._backend_of(active), _context(tenant_id, active.kid)

        def sign(data: bytes) -> bytes:
            return backend.sign(active.alg, active.handle, data, context=context)

        return RawSigner(active.kid, active.alg, self._certificate(tenant_id, active), sign)

    async def sign_bytes(self, tenant_id: str, data: bytes) -> tuple[str, str, bytes]:
        """(kid, alg, raw signature of ``data``) by the tenant's active key."""
        signer = await self.raw_signer(tenant_id)
        return signer.kid, signer.alg, signer.sign(data)

    async def certificate(self, tenant_id: str, kid: str) -> str | None:
        """The PEM certificate of a published key (None for an unknown or retired kid)."""
        key = next((k for k in (await self._load(tenant_id)).keys if k.kid == kid), None)
        return self._certificate(tenant_id, key) if key is not None else None

    async def certificates(self, tenant_id: str) -> list[tuple[KeyView, str]]:
        """Every published key with its certificate, the active one first, then the next (so
        relying parties can trust it before a rotation), then the retiring ones."""
        keys = sorted((await self._load(tenant_id)).keys, key=lambda k: _STATE_ORDER[k.state])
        return [(k, self._certificate(tenant_id, k)) for k in keys]

    def _certificate(self, tenant_id: str, key: KeyView) -> str:
        cached = self._certs.get((tenant_id, key.kid))
        if cached is None:
            der = self._backend_of(key).certificate(
                key.alg, key.handle, context=_context(tenant_id, key.kid),
                common_name=f"tessera {tenant_id}", not_before=key.created_at - 300,
                not_after=key.created_at + CERT_VALIDITY)
            body = base64.encodebytes(der).decode().replace("\n", "")
            lines = [body[i:i + 64] for i in range(0, len(body), 64)]
            cached = "\n".join(["-----BEGIN CERTIFICATE-----", *lines,
                                "-----END CERTIFICATE-----", ""])
            if len(self._certs) >= _CERT_CACHE_SIZE:
                self._certs.clear()
            self._certs[(tenant_id, key.kid)] = cached
        return cached

    # -- lifecycle (``tenants.keys.lifecycle``) -------------------------------------------
    def _new_row(self, tenant_id: str, alg: str, state: str, now: float) -> SigningKey:
        kid = new_kid()
        generated = self._backend.generate(alg, context=_context(tenant_id, kid))
        # the certificate now, while no other replica knows the key (see ``hsm``)
        self._certificate(tenant_id, KeyView(kid, alg, state, generated.public_jwk,
                                             generated.handle, None, None, now,
                                             self._backend.name))
        return SigningKey(
            tenant_id=tenant_id, kid=kid, alg=alg, state=state, backend=self._backend.name,
            public_jwk=generated.public_jwk, private_blob=generated.handle, created_at=now,
            activated_at=now if state == "active" else None,
        )

    async def custody(self, tenant_id: str) -> list[KeyView]:
        """Every key of the tenant that is not retired (compromised ones included): what the
        admin API and CLI show, with the backend holding each."""
        async with self._sessions() as session:
            rows = (await session.execute(
                select(SigningKey).where(SigningKey.tenant_id == tenant_id,
                                         SigningKey.state != "retired")
                .order_by(SigningKey.created_at))).scalars().all()
        return [_view(r) for r in rows]


_context = context
key_context = context  # what a key's handle is bound to (``tenants.deployment`` checks it)
