"""The broker's running parts, built once per process and shared by every endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters.clock import Clock, SystemClock
from adapters.dpop import DPoPNonces
from adapters.errors import NotFound
from broker.config import Settings
from tenants.db import create_engine, session_factory
from tenants.journal import Journal
from tenants.keys.service import KeyService
from tenants.keys.software import SoftwareBackend
from tenants.models import Client, RevokedToken, Tenant
from tenants.scope import scoped
from tenants.secrets import SecretHasher
from tenants.settings import TenantSettings

log = logging.getLogger("tessera")


@dataclass(frozen=True)
class TenantView:
    id: str
    issuer: str
    settings: TenantSettings


@dataclass
class Broker:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    keys: KeyService
    journal: Journal
    hasher: SecretHasher
    nonces: DPoPNonces
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Broker:
        clock = clock or SystemClock()
        master = settings.master_key_bytes()
        engine = create_engine(settings.database_url)
        sessions = session_factory(engine)
        nonce_secret = hmac.new(master, b"tessera dpop nonce v1", hashlib.sha256).digest()
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            clock=clock,
            keys=KeyService(sessions, SoftwareBackend(master), clock),
            journal=Journal(sessions, clock),
            hasher=SecretHasher(master),
            nonces=DPoPNonces(nonce_secret, clock),
        )

    def issuer(self, tenant_id: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/t/{tenant_id}"

    async def tenant(self, tenant_id: str) -> TenantView:
        """The tenant if it exists and is active; otherwise ``NotFound`` (no hint which)."""
        async with self.sessions() as session:
            row = await session.get(Tenant, tenant_id)
            if row is None or row.status != "active":
                raise NotFound("unknown or disabled tenant")
            return TenantView(row.id, self.issuer(row.id), TenantSettings.of(row))

    async def client(self, tenant_id: str, client_id: str) -> Client | None:
        async with self.sessions() as session:
            return await scoped(session, tenant_id).get(Client, client_id)

    async def token_state(self, tenant_id: str, jti: str, client_id: str) -> tuple[bool, bool]:
        """(revoked, client active) for a token, read from the database on every call so a
        revocation or a disabled client takes effect at once on every replica."""
        async with self.sessions() as session:
            revoked = (
                await session.execute(
                    select(RevokedToken.jti).where(
                        RevokedToken.tenant_id == tenant_id, RevokedToken.jti == jti
                    )
                )
            ).first() is not None
            status = (
                await session.execute(
                    select(Client.status).where(
                        Client.tenant_id == tenant_id, Client.client_id == client_id
                    )
                )
            ).scalar_one_or_none()
            return revoked, status == "active"

    # -- background work -------------------------------------------------------------
    def start_background(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._schedule()))

    async def _schedule(self) -> None:
        while True:
            try:
                for rotation in await self.keys.tick():
                    log.info("rotated keys of tenant %s: %s active", rotation.tenant_id,
                             rotation.activated)
                await self.journal.purge_expired()
            except Exception:  # the schedule must survive a bad tick
                log.exception("key schedule tick failed")
            await asyncio.sleep(self.settings.key_schedule_interval)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.journal.close()
        await self.engine.dispose()
