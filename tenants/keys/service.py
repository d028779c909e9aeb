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
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import Key
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters import jose
from adapters.clock import Clock
from tenants import audit
from tenants.keys.backend import KeyBackend
from tenants.models import SigningKey, Tenant
from tenants.settings import TenantSettings

PUBLISHED = ("next", "active", "retiring")
log = logging.getLogger("tessera.keys")
_Erased = tuple[str, str, bytes]  # kid, backend, handle of a key just retired


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


@dataclass(frozen=True)
class Rotation:
    tenant_id: str
    activated: str
    retiring: str | None
    published_next: str
    retired: tuple[str, ...]


class KeyService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        backend: KeyBackend,
        clock: Clock,
        *,
        cache_ttl: float = 10.0,
        others: Iterable[KeyBackend] = (),
    ) -> None:
        """``backend`` makes new keys; ``others`` hold keys made before (they still sign)."""
        self._sessions = sessions
        self._backend = backend
        self._backends = {b.name: b for b in (*others, backend)}
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._cache: dict[str, _TenantKeys] = {}
        self._certs: dict[tuple[str, str], str] = {}
        # A replica may keep signing with a just-demoted key for one cache period.
        self.retire_margin = cache_ttl + 60.0

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
            KeyView(r.kid, r.alg, r.state, r.public_jwk, r.private_blob, r.activated_at,
                    r.retire_after, r.created_at, r.backend)
            for r in rows
            if not (r.state == "retiring" and r.retire_after is not None and r.retire_after < now)
        ]
        entry = _TenantKeys(now, keys, {k.kid: jose.import_public_jwk(k.public_jwk) for k in keys})
        self._cache[tenant_id] = entry
        return entry

    def invalidate(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)

    async def jwks(self, tenant_id: str) -> dict[str, Any]:
        entry = await self._load(tenant_id)
        return {"keys": [k.jwk() for k in entry.keys]}

    async def keys(self, tenant_id: str) -> list[KeyView]:
        return list((await self._load(tenant_id, force=True)).keys)

    async def verification_key(self, tenant_id: str, kid: str) -> Key | None:
        """The public key for ``kid`` if the tenant publishes it (reloads once on a miss)."""
        entry = await self._load(tenant_id)
        key = entry.imported.get(kid)
        if key is None and self._clock.now() - entry.loaded_at >= 1.0:
            key = (await self._load(tenant_id, force=True)).imported.get(kid)
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

    # -- lifecycle -----------------------------------------------------------------------
    def _new_row(self, tenant_id: str, alg: str, state: str, now: float) -> SigningKey:
        kid = secrets.token_urlsafe(12)
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

    async def ensure(self, tenant_id: str, session: AsyncSession | None = None) -> None:
        """Give a tenant an active and a next key if it has none (first start, new tenant)."""
        if session is None:
            async with self._sessions() as own, own.begin():
                await self.ensure(tenant_id, own)
            return
        alg = (await _settings(session, tenant_id)).key_alg
        states = set(
            (
                await session.execute(
                    select(SigningKey.state).where(SigningKey.tenant_id == tenant_id)
                )
            ).scalars()
        )
        now = self._clock.now()
        if "active" not in states:
            session.add(self._new_row(tenant_id, alg, "active", now))
        if "next" not in states:
            session.add(self._new_row(tenant_id, alg, "next", now))
        self.invalidate(tenant_id)

    async def rotate(self, tenant_id: str, *, reason: str = "manual") -> Rotation:
        """Promote ``next``, demote ``active`` to ``retiring``, publish a new ``next``."""
        erased: list[_Erased] = []
        async with self._sessions() as session, session.begin():
            rotation = await self._rotate(session, tenant_id, reason, erased)
        self.invalidate(tenant_id)
        self._erase(tenant_id, erased)
        return rotation

    async def _rotate(self, session: AsyncSession, tenant_id: str, reason: str,
                      erased: list[_Erased]) -> Rotation:
        now = self._clock.now()
        settings = await _settings(session, tenant_id)
        rows = (
            await session.execute(
                select(SigningKey).where(
                    SigningKey.tenant_id == tenant_id, SigningKey.state.in_(PUBLISHED)
                )
            )
        ).scalars().all()
        active = next((r for r in rows if r.state == "active"), None)
        nxt = next((r for r in rows if r.state == "next"), None)
        if active is not None:
            demoted = await session.execute(
                update(SigningKey)
                .where(SigningKey.tenant_id == tenant_id, SigningKey.kid == active.kid,
                       SigningKey.state == "active")
                .values(state="retiring", retiring_at=now,
                        retire_after=now + settings.max_token_lifetime + self.retire_margin)
                .execution_options(synchronize_session=False)
            )
            if demoted.rowcount != 1:
                raise RuntimeError("concurrent rotation; try again")
        if nxt is None:
            nxt = self._new_row(tenant_id, settings.key_alg, "next", now)
            session.add(nxt)
            await session.flush()
        nxt.state, nxt.activated_at = "active", now
        fresh = self._new_row(tenant_id, settings.key_alg, "next", now)
        session.add(fresh)
        retired = await self._retire_expired(session, tenant_id, now, erased)
        rotation = Rotation(tenant_id, nxt.kid, active.kid if active else None, fresh.kid,
                            retired)
        await audit.record(session, tenant_id, [audit.Event(
            "key.rotated", "changed", detail={
                "reason": reason, "activated": nxt.kid, "retiring": rotation.retiring,
                "next": fresh.kid, "retired": list(retired), "alg": settings.key_alg,
            })], now)
        return rotation

    async def _retire_expired(
        self, session: AsyncSession, tenant_id: str, now: float, erased: list[_Erased]
    ) -> tuple[str, ...]:
        """Retire keys whose tokens have all expired; ``erased`` gets copies of their rows,
        for ``_erase`` once the transaction has committed."""
        rows = (
            await session.execute(
                select(SigningKey).where(
                    SigningKey.tenant_id == tenant_id, SigningKey.state == "retiring",
                    SigningKey.retire_after < now,
                )
            )
        ).scalars().all()
        for row in rows:
            erased.append((row.kid, row.backend, row.private_blob))
            row.state, row.private_blob = "retired", b""
        return tuple(r.kid for r in rows)

    def _erase(self, tenant_id: str, retired: list[_Erased]) -> None:
        """Have the backends destroy what they hold of retired keys (their rows say retired;
        a key a backend fails to destroy is only an orphan, logged)."""
        for kid, name, handle in retired:
            backend = self._backends.get(name)
            if backend is None or not handle:
                continue
            try:
                backend.destroy(handle, context=_context(tenant_id, kid))
            except Exception as exc:  # the retirement itself stands
                log.warning("key %s of %s retired, its %s material not destroyed (%s)",
                            kid, tenant_id, name, type(exc).__name__)

    async def tick(self) -> list[Rotation]:
        """One pass of the schedule: rotate every active tenant whose key is due, retire
        keys whose tokens have all expired. Safe to run on every replica."""
        now = self._clock.now()
        async with self._sessions() as session:
            tenants = (
                await session.execute(select(Tenant).where(Tenant.status == "active"))
            ).scalars().all()
            actives = {
                r.tenant_id: r
                for r in (
                    await session.execute(select(SigningKey).where(SigningKey.state == "active"))
                ).scalars()
            }
        slots = [(t.id, TenantSettings.of(t)) for t in tenants]
        # system slots (keys not of a tenant, e.g. the registry's) that exist rotate too
        slots += [(slot, TenantSettings()) for slot in actives if slot.startswith("_")]
        done: list[Rotation] = []
        for slot, settings in slots:
            active = actives.get(slot)
            if active is None or (active.activated_at or 0) + settings.key_rotation_seconds <= now:
                try:
                    if active is None:
                        await self.ensure(slot)
                    else:
                        done.append(await self.rotate(slot, reason="schedule"))
                except RuntimeError:
                    continue  # another replica rotated first
            else:
                erased: list[_Erased] = []
                async with self._sessions() as session, session.begin():
                    if await self._retire_expired(session, slot, now, erased):
                        self.invalidate(slot)
                self._erase(slot, erased)
        return done


def _context(tenant_id: str, kid: str) -> bytes:
    return f"{tenant_id}|{kid}".encode()


key_context = _context  # what a key's handle is bound to (``tenants.deployment`` checks it)


async def _settings(session: AsyncSession, slot: str) -> TenantSettings:
    """A tenant's key settings; system slots (names starting with ``_``) use the defaults."""
    if slot.startswith("_"):
        return TenantSettings()
    tenant = await session.get(Tenant, slot)
    if tenant is None:
        raise LookupError(slot)
    return TenantSettings.of(tenant)
