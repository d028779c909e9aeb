"""The broker's running parts, built once per process and shared by every endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from adapters import rar
from adapters.clock import Clock, SystemClock
from adapters.dpop import DPoPNonces
from adapters.errors import NotFound
from adapters.oidc_upstream import OIDCUpstream
from broker import logs, metrics
from broker.client_metadata_document import DocumentClients, is_document_url
from broker.config import Settings
from broker.policy import ManagedConnection
from broker.resources import ResourceServer
from broker.verified_tokens import VerifiedTokens
from registry import trust
from registry.remote_keys import FetchPolicy, RemoteKeys
from registry.self_registration import Refreshed, Refresher
from registry.trust import Peer
from tenants import agents, ciba, pending, revocations, token_state
from tenants.db import create_engine, session_factory
from tenants.hotpath import HotPath
from tenants.journal import Journal
from tenants.keys.backends import key_backends
from tenants.keys.service import KeyService
from tenants.models import (
    Client,
    DetailType,
    DirectoryEpoch,
    ManagedConnectionRow,
    ResourceServerRow,
    SigningKey,
    Tenant,
)
from tenants.secrets import Sealer, SecretHasher
from tenants.settings import TenantSettings
from tenants.token_state import TokenState

log = logging.getLogger("tessera")


@dataclass(frozen=True)
class TenantView:
    id: str
    issuer: str
    settings: TenantSettings
    epoch: int = 0  # the directory epoch this view was read at (see ``Broker.lookup``)


@dataclass(frozen=True)
class ClientView:
    """The registered facts about a client that requests are judged by."""

    tenant_id: str
    client_id: str
    status: str
    auth_method: str
    secret_hash: str | None
    jwks: dict[str, Any] | None
    scopes: list[str]
    audiences: list[str]
    access_token_lifetime: int
    dpop_bound_access_tokens: bool
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    first_party: bool = True
    require_par: bool = False
    authorization_details_types: tuple[str, ...] = ()
    tls_client_auth_subject_dn: str | None = None
    tls_client_auth_san_uri: str | None = None
    tls_client_auth_san_dns: str | None = None
    tls_client_certificate_bound_access_tokens: bool = False
    owner: str | None = None
    purpose: str | None = None
    expires_at: float | None = None  # an ephemeral agent stops working then
    backchannel_token_delivery_mode: str | None = None  # CIBA: poll | ping | push
    backchannel_client_notification_endpoint: str | None = None
    previous_secret_hash: str | None = None  # a rotated-out secret, valid until ...
    previous_secret_valid_until: float | None = None

    def live(self, now: float) -> bool:
        """Active (not suspended, retired or disabled) and not expired."""
        return agents.is_live(self.status, self.expires_at, now)

    @property
    def public(self) -> bool:
        """A public client (RFC 6749 §2.1): an agent on a device, no credentials of its own."""
        return self.auth_method == "none"


_T, _C = Tenant.__table__, Client.__table__
_E = DirectoryEpoch.__table__
_CLIENT_COLUMNS = [
    _C.c.client_id, _C.c.status.label("client_status"), _C.c.auth_method, _C.c.secret_hash,
    _C.c.jwks, _C.c.scopes, _C.c.audiences, _C.c.access_token_lifetime,
    _C.c.dpop_bound_access_tokens, _C.c.redirect_uris, _C.c.post_logout_redirect_uris,
    _C.c.first_party, _C.c.require_par, _C.c.authorization_details_types,
    _C.c.tls_client_auth_subject_dn, _C.c.tls_client_auth_san_uri, _C.c.tls_client_auth_san_dns,
    _C.c.tls_client_certificate_bound_access_tokens, _C.c.owner, _C.c.purpose,
    _C.c.expires_at.label("client_expires_at"),
    _C.c.backchannel_token_delivery_mode, _C.c.backchannel_client_notification_endpoint,
    _C.c.previous_secret_hash, _C.c.previous_secret_valid_until,
]
# One read per request: the tenant and (if named) the client, joined.
_LOOKUP = (
    select(_T.c.status, _T.c.settings, func.coalesce(_E.c.epoch, 0).label("epoch"),
           *_CLIENT_COLUMNS)
    .select_from(
        _T.outerjoin(_C, and_(_C.c.tenant_id == _T.c.id,
                              _C.c.client_id == bindparam("client_id")))
        .outerjoin(_E, _E.c.tenant_id == _T.c.id)
    )
    .where(_T.c.id == bindparam("tenant_id"))
)
DIRECTORY_CACHE_SIZE = 10_000
_M = ManagedConnectionRow.__table__
_MANAGED = select(_M.c.rules, _M.c.default_rule, _M.c.resources, _M.c.remote_client_id,
                  _M.c.max_lifetime, _M.c.approver).where(
    _M.c.tenant_id == bindparam("tenant_id"), _M.c.client_id == bindparam("client_id"),
    _M.c.audience == bindparam("audience"))
_R = ResourceServerRow.__table__
_RESOURCE_COLUMNS = (_R.c.name, _R.c.identifier, _R.c.display_name, _R.c.scopes,
                     _R.c.default_scopes, _R.c.allowed_clients, _R.c.access_token_lifetime,
                     _R.c.require_dpop, _R.c.require_mtls)
_RESOURCE_BY_ID = select(*_RESOURCE_COLUMNS).where(
    _R.c.tenant_id == bindparam("tenant_id"), _R.c.identifier == bindparam("identifier"))
_RESOURCE_BY_NAME = select(*_RESOURCE_COLUMNS).where(
    _R.c.tenant_id == bindparam("tenant_id"), _R.c.name == bindparam("name"))


@dataclass
class Broker:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hot: HotPath
    clock: Clock
    keys: KeyService
    journal: Journal
    hasher: SecretHasher
    nonces: DPoPNonces
    http: httpx.AsyncClient
    remote_keys: RemoteKeys
    oidc: OIDCUpstream
    sealer: Sealer
    refresher: Refresher  # self-registered partners' keys from their Entity Configurations
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _directory: dict[tuple[str, str | None], tuple[TenantView, ClientView | None]] = field(
        default_factory=dict)
    _settings: dict[str, tuple[dict[str, Any], TenantSettings]] = field(default_factory=dict)
    # (tenant, identifier) -> (directory epoch it was read at, the resource server or None)
    _resources: dict[tuple[str, str], tuple[int, ResourceServer | None]] = field(
        default_factory=dict)
    _documents: DocumentClients | None = None
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)  # signatures checked
    # ID tokens presented as subject tokens: their own cache, so a token that passed as an ID
    # token is never taken for an access token that passed (each has its own typ check)
    verified_id_tokens: VerifiedTokens = field(default_factory=VerifiedTokens)


    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Broker:
        clock = clock or SystemClock()
        master, accepted = settings.master_key_bytes(), settings.accepted_master_keys()
        root = settings.key_root_bytes()  # stays the same across master-key rotations
        timeouts = {"connect_timeout": settings.db_connect_timeout,
                    "statement_timeout": settings.db_statement_timeout}
        engine = create_engine(settings.database_url, **timeouts)
        sessions = session_factory(engine)
        hot = HotPath(engine, **timeouts)
        nonce_secret = hmac.new(root, b"tessera dpop nonce v1", hashlib.sha256).digest()
        http = httpx.AsyncClient(follow_redirects=False, timeout=5.0, trust_env=False,
                                 headers={"User-Agent": "tessera"})
        fetch = FetchPolicy(allow_http_loopback=settings.allow_http_loopback)
        remote_keys = RemoteKeys(http, clock, fetch)
        key_backend, older_backends = key_backends(
            settings.key_backend, master, accepted=accepted, module=settings.pkcs11_module,
            token_label=settings.pkcs11_token_label, pin=settings.pkcs11_pin,
            pin_file=settings.pkcs11_pin_file, sessions=settings.pkcs11_sessions)
        broker = cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            hot=hot,
            clock=clock,
            keys=KeyService(sessions, key_backend, clock, others=older_backends, hot=hot,
                            max_retiring=settings.max_retiring_keys),
            journal=Journal(hot, clock, on_batch=metrics.JOURNAL_BATCH.observe),
            hasher=SecretHasher(root),
            nonces=DPoPNonces(nonce_secret, clock),
            http=http,
            remote_keys=remote_keys,
            oidc=OIDCUpstream(http, remote_keys, clock, url_check=remote_keys.check_target,
                              allow_http_loopback=settings.allow_http_loopback),
            sealer=Sealer(master, accepted=accepted),
            refresher=Refresher(sessions, remote_keys, clock,
                                allow_http_loopback=settings.allow_http_loopback),
        )
        broker.refresher.on_change = broker._partner_keys_changed
        return broker

    async def _partner_keys_changed(self, done: Refreshed) -> None:
        """A self-registered partner's keys changed (schedule, unknown kid, on request): the
        next token is checked against the new ones, and registry admins are told."""
        from broker import registry_notify  # it imports this module

        if done.partner.jwks_uri:
            self.remote_keys.forget(done.partner.jwks_uri)
        registry_notify.notify(self, f"{self.settings.base_url.rstrip('/')}/registry",
                               "partner.keys_refreshed", {
                                   "partner": done.partner.id, "entity_id": done.partner.issuer,
                                   "changed": done.changed})

    def issuer(self, tenant_id: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/t/{tenant_id}"

    async def tenant(self, tenant_id: str) -> TenantView:
        """The tenant if it exists and is active; otherwise ``NotFound`` (no hint which)."""
        tenant, _ = await self.lookup(tenant_id, None)
        return tenant

    async def lookup(
        self, tenant_id: str, client_id: str | None
    ) -> tuple[TenantView, ClientView | None]:
        """The active tenant and the named client (if it exists), in one read."""
        row = await self.hot.read_one(_LOOKUP, {"tenant_id": tenant_id, "client_id": client_id})
        if row is None or row.status != "active":
            raise NotFound("unknown or disabled tenant")
        logs.note(tenant=tenant_id)  # a tenant that exists: a bounded label for logs/metrics
        self.keys.observe(tenant_id, int(row.epoch))
        tenant = TenantView(tenant_id, self.issuer(tenant_id),
                            self._tenant_settings(tenant_id, row.settings or {}),
                            int(row.epoch))
        if row.client_id is None:
            if (client_id is not None and tenant.settings.client_id_metadata_documents
                    and is_document_url(client_id)):
                return tenant, await self._document_client(tenant_id, client_id)
            return tenant, None
        return tenant, ClientView(
            tenant_id, row.client_id, row.client_status, row.auth_method, row.secret_hash, row.jwks,
            list(row.scopes or []), list(row.audiences or []), row.access_token_lifetime,
            bool(row.dpop_bound_access_tokens), tuple(row.redirect_uris or ()),
            tuple(row.post_logout_redirect_uris or ()), bool(row.first_party),
            bool(row.require_par), tuple(row.authorization_details_types or ()),
            row.tls_client_auth_subject_dn, row.tls_client_auth_san_uri,
            row.tls_client_auth_san_dns, bool(row.tls_client_certificate_bound_access_tokens),
            row.owner, row.purpose, row.client_expires_at,
            backchannel_token_delivery_mode=row.backchannel_token_delivery_mode,
            backchannel_client_notification_endpoint=row.backchannel_client_notification_endpoint,
            previous_secret_hash=row.previous_secret_hash,
            previous_secret_valid_until=row.previous_secret_valid_until,
        )

    async def _document_client(self, tenant_id: str, url: str) -> ClientView | None:
        """A client described by its Client ID Metadata Document (cached, SSRF-guarded)."""
        if self._documents is None:
            self._documents = DocumentClients(self.remote_keys)
        doc = await self._documents.resolve(url, self.clock.now())
        if doc is None:
            return None
        return ClientView(tenant_id, doc.client_id, "active", doc.auth_method, None, doc.jwks,
                          list(doc.scopes), [], 300, False, doc.redirect_uris, (), False)

    def _tenant_settings(self, tenant_id: str, stored: dict[str, Any]) -> TenantSettings:
        """The settings of a stored row, validated once per distinct row (a dict comparison
        costs a tenth of the validation, and a changed row is never missed)."""
        hit = self._settings.get(tenant_id)
        if hit is not None and hit[0] == stored:
            return hit[1]
        settings = TenantSettings.load(stored, tenant=tenant_id)
        if len(self._settings) >= DIRECTORY_CACHE_SIZE:
            self._settings.clear()
        self._settings[tenant_id] = (stored, settings)
        return settings

    async def cached_lookup(
        self, tenant_id: str, client_id: str | None
    ) -> tuple[TenantView, ClientView | None]:
        """``lookup`` from this process's cache. Only for decisions recorded through the
        journal with ``expect=(tenant.id, tenant.epoch)``: the journal refuses to record one
        made on a stale view, and the caller decides again with ``lookup``."""
        key = (tenant_id, client_id)
        hit = self._directory.get(key)
        if hit is not None:
            logs.note(tenant=tenant_id)
            return hit
        found = await self.lookup(tenant_id, client_id)
        if len(self._directory) >= DIRECTORY_CACHE_SIZE:
            self._directory.clear()
        self._directory[key] = found
        return found

    def forget_directory(self, tenant_id: str) -> None:
        """The cached view went stale (the journal said so): the keys may have changed too
        (a compromised key moves the epoch)."""
        for key in [k for k in self._directory if k[0] == tenant_id]:
            del self._directory[key]
        self.keys.invalidate(tenant_id)

    async def live_peer(self, tenant_id: str, issuer: str, *, direction: str) -> Peer | None:
        """The tenant's live trust link to ``issuer`` open in ``direction`` (``accept``: we
        redeem what it issues; ``send``: we issue ID-JAGs to it). Read now: revocation is
        immediate."""
        return await trust.live_peer(self.hot, tenant_id, issuer, self.clock.now(),
                                     direction=direction)

    async def managed_connection(
        self, tenant_id: str, client_id: str, audience: str
    ) -> ManagedConnection | None:
        row = await self.hot.read_one(
            _MANAGED, {"tenant_id": tenant_id, "client_id": client_id, "audience": audience})
        if row is None:
            return None
        return ManagedConnection(
            tenant_id=tenant_id, client_id=client_id, audience=audience,
            rules=dict(row.rules), remote_client_id=row.remote_client_id,
            resources=frozenset(row.resources), max_lifetime=row.max_lifetime,
            default_rule=row.default_rule, approver=row.approver,
        )

    async def resource_server_at(self, tenant: TenantView, identifier: str,
                                 audiences: Sequence[str]) -> ResourceServer | None:
        """``resource_server`` for a token decision on ``tenant`` as read at its directory
        epoch: every change to a resource server moves the tenant's epoch on, so an entry read
        at the view's epoch is what the database held then, and a decision on a cached view is
        confirmed by the journal (``expect``) or decided again. One read per resource and epoch
        instead of one per token request. Only registered data is remembered: a resource
        server that exists, or the absence of one for an identifier among the client's
        ``audiences``; any other identifier (request input, refused next) is read each time,
        so requests cannot fill this cache."""
        key = (tenant.id, identifier)
        hit = self._resources.get(key)
        if hit is not None and hit[0] == tenant.epoch:
            return hit[1]
        found = await self.resource_server(tenant.id, identifier=identifier)
        if found is not None or identifier in audiences:
            if len(self._resources) >= DIRECTORY_CACHE_SIZE:
                self._resources.clear()
            self._resources[key] = (tenant.epoch, found)
        return found

    async def resource_server(self, tenant_id: str, *, identifier: str | None = None,
                              name: str | None = None) -> ResourceServer | None:
        """The tenant's registered resource server with this identifier (or name); read now,
        so a change applies to the next token request."""
        if identifier is not None:
            row = await self.hot.read_one(_RESOURCE_BY_ID,
                                          {"tenant_id": tenant_id, "identifier": identifier})
        else:
            row = await self.hot.read_one(_RESOURCE_BY_NAME, {"tenant_id": tenant_id,
                                                              "name": name})
        if row is None:
            return None
        return ResourceServer(
            tenant_id=tenant_id, name=row.name, identifier=row.identifier,
            display_name=row.display_name, scopes=dict(row.scopes or {}),
            default_scopes=tuple(row.default_scopes or ()),
            allowed_clients=frozenset(row.allowed_clients or ()),
            access_token_lifetime=int(row.access_token_lifetime),
            require_dpop=bool(row.require_dpop), require_mtls=bool(row.require_mtls))

    async def detail_types(self, tenant_id: str) -> dict[str, rar.DetailType]:
        """The tenant's registered RFC 9396 ``authorization_details`` types."""
        async with self.sessions() as session:
            rows = (await session.execute(
                select(DetailType).where(DetailType.tenant_id == tenant_id))).scalars().all()
        return {r.type: rar.DetailType(r.type, r.schema, r.description) for r in rows}

    async def token_state(
        self, tenant_id: str, jti: str, client_id: str, *, iat: float = 0,
        sub: str | None = None, issuer: str | None = None, kid: str | None = None,
    ) -> TokenState:
        """The token's state read from the database on every call (one statement, see
        ``tenants.token_state``), so a revocation of the token, its grant or its population,
        a suspended, retired or expired agent or a suspended trust link takes effect at once
        on every replica. With ``kid``, also whether that signing key is compromised (the
        cached keys are then dropped, as ``KeyService.verification_key`` does)."""
        state = await token_state.read(self.hot, tenant_id, jti, client_id, iat=iat, sub=sub,
                                       issuer=issuer, now=self.clock.now(), kid=kid)
        if state.key_compromised:
            self.keys.invalidate(tenant_id)
        return state

    # -- background work -------------------------------------------------------------
    def start_background(self) -> None:
        from broker import anomaly  # it imports this module

        self._tasks.append(asyncio.get_running_loop().create_task(self._schedule()))
        self._tasks.append(asyncio.get_running_loop().create_task(anomaly.run_forever(self)))

    async def _schedule(self) -> None:
        while True:
            try:
                for rotation in await self.keys.tick():
                    log.info("rotated keys of tenant %s: %s active", rotation.tenant_id,
                             rotation.activated)
                await self.journal.purge_expired()
                await pending.purge_expired(self.sessions, self.clock.now())
                await revocations.purge_expired(self.sessions, self.clock.now())
                await ciba.expire_all(self.sessions, self.clock.now())
                await self.refresher.tick()
                await self.sample_key_ages()
                self.sample_pools()
            except Exception:  # the schedule must survive a bad tick
                log.exception("key schedule tick failed")
            await asyncio.sleep(self.settings.key_schedule_interval)

    async def close(self, grace: float = 5.0) -> None:
        """Stop the background work and close the pools. Each step gets ``grace`` seconds: a
        database that does not answer must not hold a shutdown past its limit."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        steps = (("journal", self.journal.close), ("http client", self.http.aclose),
                 ("hot path", lambda: self.hot.aclose(grace)), ("engine", self.engine.dispose))
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), grace)
            except Exception as exc:  # closing must go on, whatever one step does
                log.warning("closing the %s: %s", name, type(exc).__name__)

    async def sample_key_ages(self) -> None:
        """Age of each tenant's active signing key, for the metrics (every schedule tick)."""
        now = self.clock.now()
        async with self.sessions() as session:
            rows = (await session.execute(
                select(SigningKey.tenant_id, SigningKey.activated_at)
                .where(SigningKey.state == "active"))).all()
        for tenant_id, activated_at in rows:
            if activated_at is not None and not tenant_id.startswith("_"):
                metrics.KEY_AGE.labels(tenant_id).set(max(0.0, now - activated_at))

    def sample_pools(self) -> None:
        """Current database pool use, for the metrics."""
        pool = self.engine.pool
        for state, value in (("size", getattr(pool, "size", lambda: 0)()),
                             ("in_use", getattr(pool, "checkedout", lambda: 0)())):
            metrics.POOL.labels("orm", state).set(value)
        for state, value in self.hot.pool_stats().items():
            metrics.POOL.labels("hot", state).set(value)
