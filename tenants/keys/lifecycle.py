"""A tenant's key lifecycle: make the first keys, rotate on the schedule or by hand, retire,
and the emergency rotation of a compromised key.

Rules every rotation keeps:

* **Publication before use.** ``next`` is promoted only once it has been published for the
  ``publication_period``: the JWKS ``max-age`` relying parties may cache it for
  (``JWKS_MAX_AGE``), plus this service's own cache period (another replica's JWKS and
  verification keys), plus a margin. A rotation asked earlier is refused with
  ``RotationTooEarly`` (409, naming when it can happen); the schedule simply waits for the next
  tick. The one exception is ``compromise``.
* **One at a time.** A rotation locks the tenant's published key rows (``SELECT ... FOR
  UPDATE`` on PostgreSQL; SQLite has one writer) and reads them again under the lock, so two
  rotations at once are serialised: the second finds a ``next`` that was just published and is
  refused as too early, or (SQLite, a stale read) fails with ``RotationConflict`` (409). Neither
  is ever a 500.
* **Bounded retiring keys.** At most ``max_retiring`` keys are ``retiring``; a rotation past
  that retires the oldest at once (``dropped``): tokens it signed stop verifying before their
  expiry (README, "Keys and rotation").

``compromise`` takes a key out of service now: its row becomes ``compromised`` (kept, for the
record and for ``tenants.keys.compromised``), its material is erased, it leaves the JWKS; if it
was the active key, ``next`` is promoted at once and a fresh ``next`` published.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.clock import Clock
from adapters.errors import Conflict, NotFound
from tenants import audit
from tenants.directory import bump_epoch
from tenants.keys.backend import KeyBackend
from tenants.models import SigningKey, Tenant
from tenants.settings import TenantSettings

log = logging.getLogger("tessera.keys")
PUBLISHED = ("next", "active", "retiring")
JWKS_MAX_AGE = 60  # Cache-Control max-age of /t/{tenant}/jwks (``broker.endpoints.metadata``)
PUBLICATION_MARGIN = 30.0  # clock skew and a relying party's fetch in flight
MAX_RETIRING = 4
Erased = tuple[str, str, bytes]  # kid, backend, handle of a key just retired or compromised


class RotationTooEarly(Conflict):
    """``next`` has not been published long enough for relying parties to have seen it."""

    def __init__(self, description: str, *, ready_at: float) -> None:
        super().__init__(description)
        self.ready_at = ready_at


class RotationConflict(Conflict):
    """Another rotation of the same tenant changed the keys meanwhile."""


@dataclass(frozen=True)
class Rotation:
    tenant_id: str
    activated: str
    retiring: str | None
    published_next: str
    retired: tuple[str, ...]
    dropped: tuple[str, ...] = ()  # retiring keys retired early (``max_retiring``)


@dataclass(frozen=True)
class Compromise:
    tenant_id: str
    kid: str
    was: str  # the state the key was in
    activated: str | None  # the key active now, when the compromised key was the active one
    published_next: str | None  # the fresh next key, when one was made
    at: float


def context(tenant_id: str, kid: str) -> bytes:
    return f"{tenant_id}|{kid}".encode()


async def slot_settings(session: AsyncSession, slot: str) -> TenantSettings:
    """A tenant's key settings; system slots (names starting with ``_``) use the defaults."""
    if slot.startswith("_"):
        return TenantSettings()
    tenant = await session.get(Tenant, slot)
    if tenant is None:
        raise LookupError(slot)
    return TenantSettings.of(tenant)


class KeyLifecycle:
    """The writing half of ``KeyService`` (which sets these attributes)."""

    _sessions: async_sessionmaker[AsyncSession]
    _backend: KeyBackend
    _backends: dict[str, KeyBackend]
    _clock: Clock
    retire_margin: float
    publication_period: float
    max_retiring: int
    invalidate: Callable[[str], None]
    _new_row: Callable[[str, str, str, float], SigningKey]

    async def ensure(self, tenant_id: str, session: AsyncSession | None = None) -> None:
        """Give a tenant an active and a next key if it has none (first start, new tenant)."""
        if session is None:
            async with self._sessions() as own, own.begin():
                await self.ensure(tenant_id, own)
            return
        alg = (await slot_settings(session, tenant_id)).key_alg
        states = set((await session.execute(
            select(SigningKey.state).where(SigningKey.tenant_id == tenant_id))).scalars())
        now = self._clock.now()
        if "active" not in states:
            session.add(self._new_row(tenant_id, alg, "active", now))
        if "next" not in states:
            session.add(self._new_row(tenant_id, alg, "next", now))
        self.invalidate(tenant_id)

    async def rotate(self, tenant_id: str, *, reason: str = "manual") -> Rotation:
        """Promote ``next``, demote ``active`` to ``retiring``, publish a new ``next``.
        ``RotationTooEarly`` or ``RotationConflict`` (both 409) when it cannot happen now."""
        erased: list[Erased] = []
        try:
            async with self._sessions() as session, session.begin():
                rotation = await self._rotate(session, tenant_id, reason, erased)
        except (IntegrityError, DBAPIError) as exc:  # SQLite: a stale read lost the race
            raise RotationConflict(f"another rotation of tenant {tenant_id!r} happened at the "
                                   "same time; try again") from exc
        self.invalidate(tenant_id)
        self._erase(tenant_id, erased)
        return rotation

    async def _locked_rows(self, session: AsyncSession, tenant_id: str) -> list[SigningKey]:
        """The slot's published keys, read again after locking them (PostgreSQL: a second
        rotation waits here for the first to commit, then sees what it did)."""
        await session.execute(select(SigningKey.kid).where(
            SigningKey.tenant_id == tenant_id, SigningKey.state.in_(PUBLISHED))
            .with_for_update())
        return list((await session.execute(
            select(SigningKey).where(SigningKey.tenant_id == tenant_id,
                                     SigningKey.state.in_(PUBLISHED))
            .execution_options(populate_existing=True))).scalars().all())

    async def _rotate(self, session: AsyncSession, tenant_id: str, reason: str,
                      erased: list[Erased]) -> Rotation:
        now = self._clock.now()
        settings = await slot_settings(session, tenant_id)
        rows = await self._locked_rows(session, tenant_id)
        active = next((r for r in rows if r.state == "active"), None)
        nxt = next((r for r in rows if r.state == "next"), None)
        if nxt is None:
            raise RotationTooEarly(f"tenant {tenant_id!r} has no published next key; it gets "
                                   "one at its next key check", ready_at=now)
        ready_at = nxt.created_at + self.publication_period
        if now < ready_at:
            raise RotationTooEarly(
                f"the next key {nxt.kid} of tenant {tenant_id!r} was published "
                f"{max(0, int(now - nxt.created_at))} s ago; relying parties may not have it "
                f"yet. It can sign in {int(ready_at - now) + 1} s (published keys must be "
                f"in the JWKS for {int(self.publication_period)} s first); a compromised key "
                "is replaced at once with `tessera keys compromise`", ready_at=ready_at)
        if active is not None:
            demoted = await session.execute(
                update(SigningKey)
                .where(SigningKey.tenant_id == tenant_id, SigningKey.kid == active.kid,
                       SigningKey.state == "active")
                .values(state="retiring", retiring_at=now,
                        retire_after=now + settings.max_token_lifetime + self.retire_margin)
                .execution_options(synchronize_session=False))
            if demoted.rowcount != 1:
                raise RotationConflict(f"another rotation of tenant {tenant_id!r} happened at "
                                       "the same time; try again")
        nxt.state, nxt.activated_at = "active", now
        fresh = self._new_row(tenant_id, settings.key_alg, "next", now)
        session.add(fresh)
        retired = await self._retire_expired(session, tenant_id, now, erased)
        dropped = await self._bound_retiring(session, tenant_id, active, now, erased)
        rotation = Rotation(tenant_id, nxt.kid, active.kid if active else None, fresh.kid,
                            retired, dropped)
        await audit.record(session, tenant_id, [audit.Event(
            "key.rotated", "changed", detail={
                "reason": reason, "activated": nxt.kid, "retiring": rotation.retiring,
                "next": fresh.kid, "retired": list(retired), "dropped": list(dropped),
                "alg": settings.key_alg, "backend": fresh.backend,
            })], now)
        return rotation

    async def _bound_retiring(self, session: AsyncSession, tenant_id: str,
                              demoted: SigningKey | None, now: float,
                              erased: list[Erased]) -> tuple[str, ...]:
        """Retire the oldest retiring keys beyond ``max_retiring`` (the one just demoted
        counts, and is the last to go)."""
        rows = list((await session.execute(
            select(SigningKey).where(SigningKey.tenant_id == tenant_id,
                                     SigningKey.state == "retiring")
            .execution_options(populate_existing=True))).scalars().all())
        if demoted is not None and all(r.kid != demoted.kid for r in rows):
            rows.append(demoted)
        rows.sort(key=lambda r: (r.kid == (demoted.kid if demoted else None),
                                 r.retiring_at or 0.0))
        extra = rows[:max(0, len(rows) - self.max_retiring)]
        for row in extra:
            erased.append((row.kid, row.backend, row.private_blob))
            row.state, row.private_blob, row.retire_after = "retired", b"", now
        return tuple(r.kid for r in extra)

    async def _retire_expired(self, session: AsyncSession, tenant_id: str, now: float,
                              erased: list[Erased]) -> tuple[str, ...]:
        """Retire keys whose tokens have all expired; ``erased`` gets copies of their rows,
        for ``_erase`` once the transaction has committed."""
        rows = (await session.execute(select(SigningKey).where(
            SigningKey.tenant_id == tenant_id, SigningKey.state == "retiring",
            SigningKey.retire_after < now))).scalars().all()
        for row in rows:
            erased.append((row.kid, row.backend, row.private_blob))
            row.state, row.private_blob = "retired", b""
        return tuple(r.kid for r in rows)

    def _erase(self, tenant_id: str, retired: list[Erased]) -> None:
        """Have the backends destroy what they hold of retired keys (their rows say retired;
        a key a backend fails to destroy is only an orphan, logged)."""
        for kid, name, handle in retired:
            backend = self._backends.get(name)
            if backend is None or not handle:
                continue
            try:
                backend.destroy(handle, context=context(tenant_id, kid))
            except Exception as exc:  # the retirement itself stands
                log.warning("key %s of %s retired, its %s material not destroyed (%s)",
                            kid, tenant_id, name, type(exc).__name__)

    async def compromise(self, tenant_id: str, kid: str, *,
                         reason: str = "compromised") -> Compromise:
        """Take ``kid`` out of service now (no publication wait): it leaves the JWKS, its
        material is erased, every verification by tessera refuses it from the next request
        (``tenants.keys.compromised``), and a new key signs at once when it was the active one.
        ``NotFound`` for a key the tenant does not publish; ``Conflict`` when already done."""
        erased: list[Erased] = []
        try:
            async with self._sessions() as session, session.begin():
                done = await self._compromise(session, tenant_id, kid, reason, erased)
        except (IntegrityError, DBAPIError) as exc:
            raise RotationConflict(f"the keys of tenant {tenant_id!r} changed at the same "
                                   "time; try again") from exc
        self.invalidate(tenant_id)
        self._erase(tenant_id, erased)
        return done

    async def _compromise(self, session: AsyncSession, tenant_id: str, kid: str, reason: str,
                          erased: list[Erased]) -> Compromise:
        now = self._clock.now()
        settings = await slot_settings(session, tenant_id)
        rows = await self._locked_rows(session, tenant_id)
        key = next((r for r in rows if r.kid == kid), None)
        if key is None:
            state = (await session.execute(select(SigningKey.state).where(
                SigningKey.tenant_id == tenant_id, SigningKey.kid == kid))).scalar()
            if state == "compromised":
                raise Conflict(f"key {kid} of tenant {tenant_id!r} is already compromised")
            raise NotFound(f"tenant {tenant_id!r} publishes no key {kid!r}"
                           + (" (it has retired: nothing verifies with it)"
                              if state == "retired" else ""))
        was = key.state
        erased.append((key.kid, key.backend, key.private_blob))
        key.state, key.private_blob, key.retire_after = "compromised", b"", now
        key.retiring_at = key.retiring_at or now
        activated = fresh = None
        if was in ("active", "next"):
            nxt = next((r for r in rows if r.state == "next"), None) if was == "active" else None
            if nxt is not None:
                nxt.state, nxt.activated_at = "active", now
                activated = nxt.kid
            elif was == "active":
                row = self._new_row(tenant_id, settings.key_alg, "active", now)
                session.add(row)
                activated = row.kid
            made = self._new_row(tenant_id, settings.key_alg, "next", now)
            session.add(made)
            fresh = made.kid
        if not tenant_id.startswith("_"):
            # every replica's cached view of the tenant goes stale: its next decision is made
            # on a fresh read, with fresh keys (``Broker.lookup`` -> ``KeyService.observe``)
            await bump_epoch(session, tenant_id)
        await audit.record(session, tenant_id, [audit.Event(
            "key.compromised", "revoked", detail={
                "kid": kid, "was": was, "reason": reason,
                "activated": activated, "next": fresh, "backend": key.backend,
            })], now)
        return Compromise(tenant_id, kid, was, activated, fresh, now)

    async def tick(self) -> list[Rotation]:
        """One pass of the schedule: rotate every active tenant whose key is due (once its
        next key has been published long enough), retire keys whose tokens have all expired.
        Safe to run on every replica."""
        now = self._clock.now()
        # the columns the decision needs, not ORM objects: a pass over 10,000 tenants took
        # ~0.7 s of CPU a minute building rows, keys' JWKs and settings it did not use
        async with self._sessions() as session:
            tenants = (await session.execute(
                select(Tenant.id, Tenant.settings).where(Tenant.status == "active"))).all()
            activated: dict[str, float | None] = {
                tenant_id: at for tenant_id, at in (await session.execute(
                    select(SigningKey.tenant_id, SigningKey.activated_at)
                    .where(SigningKey.state == "active"))).all()}
            # the slots with a key to retire, in one read: a transaction per slot and pass
            # kept a server with 10,000 tenants busy most of the time doing nothing
            expired = set((await session.execute(
                select(SigningKey.tenant_id).where(SigningKey.state == "retiring",
                                                   SigningKey.retire_after < now)
                .distinct())).scalars())
        slots = [(tenant_id, _rotation_period(tenant_id, raw)) for tenant_id, raw in tenants]
        # system slots (keys not of a tenant, e.g. the registry's) that exist rotate too
        slots += [(slot, DEFAULT_ROTATION) for slot in activated if slot.startswith("_")]
        done: list[Rotation] = []
        for slot, period in slots:
            has_active = slot in activated
            if not has_active or (activated[slot] or 0) + period <= now:
                try:
                    if not has_active:
                        await self.ensure(slot)
                    else:
                        done.append(await self.rotate(slot, reason="schedule"))
                except (Conflict, RuntimeError, IntegrityError, DBAPIError):
                    continue  # not yet published long enough, or another replica was first
            elif slot in expired:
                erased: list[Erased] = []
                async with self._sessions() as session, session.begin():
                    if await self._retire_expired(session, slot, now, erased):
                        self.invalidate(slot)
                self._erase(slot, erased)
        return done


DEFAULT_ROTATION = TenantSettings().key_rotation_seconds


def _rotation_period(tenant_id: str, raw: dict[str, Any] | None) -> int:
    """A tenant's key rotation period from its stored settings: validated as
    ``TenantSettings`` does (an invalid value counts as the default) where the tenant sets it."""
    if not raw or "key_rotation_seconds" not in raw:
        return DEFAULT_ROTATION
    return TenantSettings.load(raw, tenant=tenant_id).key_rotation_seconds


def new_kid() -> str:
    return secrets.token_urlsafe(12)
