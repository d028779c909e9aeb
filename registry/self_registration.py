"""Partners that register themselves from their OpenID Federation 1.0 Entity Configuration.

The registry fetches ``{entity_id}/.well-known/openid-federation`` through the SSRF-guarded
fetcher (``registry.remote_keys``; no redirect may move it elsewhere, since an open redirect on
the entity's host would otherwise let anyone answer for it), verifies it
(``adapters.entity_statement``) and records the partner ``pending`` with:

* its federation keys (``Partner.federation_jwks``): they sign its Entity Configuration and the
  requests it makes to the registry (status, refresh);
* its token keys (``jwks`` or ``jwks_uri``) and metadata, from the ``oauth_authorization_server``
  (or ``openid_provider``) metadata it declares, whose ``issuer`` (if given) must be the entity.

``Refresher`` re-reads the configuration on a schedule, on an unknown ``kid`` and when the
partner asks, each at most once per ``min_interval`` per partner. A refreshed configuration
must be signed by a key the registry already holds for the partner (key continuity: rotate by
publishing the new key beside the old one first), so whoever takes over the entity's web host
cannot swap its keys without the old ones.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters import entity_statement
from adapters.clock import Clock
from adapters.entity_statement import EntityStatement, EntityStatementError
from registry import partners
from registry.partners import REGISTRY_AUDIT, RegistryError
from registry.remote_keys import RemoteKeyError, check_url
from tenants import audit
from tenants.models import Partner

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/openid-federation"
MEDIA_TYPES = frozenset({"application/entity-statement+jwt"})
MAX_BYTES = 64 * 1024
SERVER_TYPES = ("oauth_authorization_server", "openid_provider")
MAX_ENTITY_ID = 512


class Fetcher(Protocol):
    async def fetch_document(self, url: str, *, media_types: frozenset[str], max_bytes: int,
                             max_redirects: int | None = None) -> bytes: ...


@dataclass(frozen=True)
class TokenKeys:
    """What the partner's tokens are verified with, and the server metadata it declares."""

    jwks_uri: str | None
    jwks: dict[str, Any] | None
    metadata: dict[str, Any]


def configuration_url(entity_id: str) -> str:
    return entity_id.rstrip("/") + WELL_KNOWN


def check_entity_id(entity_id: object, *, allow_http_loopback: bool) -> str:
    if not isinstance(entity_id, str) or not 0 < len(entity_id) <= MAX_ENTITY_ID:
        raise RegistryError(f"entity_id: a URL of at most {MAX_ENTITY_ID} characters")
    partners.check_issuer(entity_id, allow_http_loopback=allow_http_loopback)
    try:
        check_url(configuration_url(entity_id), allow_http_loopback=allow_http_loopback)
    except RemoteKeyError as exc:
        raise RegistryError(f"entity_id: {exc}") from None
    return entity_id


async def fetch_configuration(
    fetcher: Fetcher, entity_id: str, *, now: float, allow_http_loopback: bool,
    trusted_jwks: dict[str, Any] | None = None,
) -> EntityStatement:
    """The entity's verified Entity Configuration (``RegistryError`` saying why not)."""
    check_entity_id(entity_id, allow_http_loopback=allow_http_loopback)
    try:
        body = await fetcher.fetch_document(configuration_url(entity_id),
                                            media_types=MEDIA_TYPES, max_bytes=MAX_BYTES,
                                            max_redirects=0)
    except RemoteKeyError as exc:
        raise RegistryError(f"the entity configuration could not be fetched: {exc}") from None
    try:
        token = body.decode("ascii").strip()
        return entity_statement.verify_entity_configuration(
            token, entity_id=entity_id, now=now, trusted_jwks=trusted_jwks)
    except UnicodeDecodeError:
        raise RegistryError("the entity configuration is not a compact JWS") from None
    except EntityStatementError as exc:
        raise RegistryError(f"the entity configuration is not acceptable: {exc}") from None


def token_keys(statement: EntityStatement, *, allow_http_loopback: bool) -> TokenKeys:
    """The token keys and server metadata the statement declares."""
    declared = next((statement.metadata[t] for t in SERVER_TYPES if t in statement.metadata),
                    None)
    if declared is None:
        raise RegistryError("the entity declares no oauth_authorization_server or "
                            "openid_provider metadata")
    issuer = declared.get("issuer", statement.sub)
    if issuer != statement.sub:
        raise RegistryError("the declared issuer is not the entity id")
    jwks_uri, jwks = declared.get("jwks_uri"), declared.get("jwks")
    if (jwks_uri is None) == (jwks is None):
        raise RegistryError("the metadata must give exactly one of jwks_uri and jwks")
    if jwks_uri is not None:
        if not isinstance(jwks_uri, str) or len(jwks_uri) > 1024:
            raise RegistryError("jwks_uri must be a URL of at most 1024 characters")
        try:
            check_url(jwks_uri, allow_http_loopback=allow_http_loopback)
        except RemoteKeyError as exc:
            raise RegistryError(f"jwks_uri: {exc}") from None
    if jwks is not None:
        try:
            jwks = entity_statement.check_jwks(jwks)
        except EntityStatementError as exc:
            raise RegistryError(f"metadata jwks: {exc}") from None
    metadata = {k: v for k, v in declared.items() if k not in ("issuer", "jwks", "jwks_uri")}
    return TokenKeys(jwks_uri, jwks, metadata)


def _printable(value: object, limit: int) -> str:
    """``value`` if a string, without control characters, at most ``limit`` long."""
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value if c.isprintable())[:limit].strip()


def _about(statement: EntityStatement) -> tuple[str, str]:
    """Display name and contact the entity gives for itself (federation_entity metadata)."""
    entity = statement.metadata.get("federation_entity", {})
    contacts = entity.get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts else ""
    return (_printable(entity.get("organization_name"), 200) or statement.sub[:200],
            _printable(contact, 320))


def new_partner_id() -> str:
    return "fed-" + secrets.token_hex(6)


async def record(
    session: AsyncSession, statement: EntityStatement, *, now: float, partner_id: str,
    allow_http_loopback: bool, display_name: str | None = None, via: str,
) -> Partner:
    """Record the verified entity as a ``pending`` partner (in the caller's transaction)."""
    keys = token_keys(statement, allow_http_loopback=allow_http_loopback)
    name, contact = _about(statement)
    partner = await partners.register(
        session, issuer=statement.sub, display_name=display_name or name, now=now,
        partner_id=partner_id, jwks_uri=keys.jwks_uri, jwks=keys.jwks, contact=contact,
        metadata=keys.metadata, allow_http_loopback=allow_http_loopback)
    partner.federation_jwks = statement.jwks
    partner.keys_refreshed_at = now
    await audit.record(session, REGISTRY_AUDIT, [audit.Event(
        "partner.registration_pending", "changed", detail={
            "partner": partner_id, "issuer": statement.sub, "via": via,
            "federation_kids": [k["kid"] for k in statement.jwks["keys"]]})], now)
    return partner


def _changes(partner: Partner, statement: EntityStatement, keys: TokenKeys) -> list[str]:
    wanted = {"federation_jwks": statement.jwks, "jwks_uri": keys.jwks_uri,
              "jwks": keys.jwks, "metadata_": keys.metadata}
    return sorted(name.rstrip("_") for name, value in wanted.items()
                  if getattr(partner, name) != value)


async def apply_refresh(session: AsyncSession, partner: Partner, statement: EntityStatement,
                        keys: TokenKeys, now: float) -> list[str]:
    """Store what the refreshed configuration says; the names of what changed."""
    changed = _changes(partner, statement, keys)
    partner.federation_jwks, partner.jwks_uri, partner.jwks = statement.jwks, keys.jwks_uri, \
        keys.jwks
    partner.metadata_ = keys.metadata
    partner.keys_refreshed_at = now
    if changed:
        partner.updated_at = now
        await audit.record(session, REGISTRY_AUDIT, [audit.Event(
            "partner.keys_refreshed", "changed", detail={
                "partner": partner.id, "issuer": partner.issuer, "changed": changed})], now)
    return changed


@dataclass(frozen=True)
class Refreshed:
    partner: Partner
    changed: list[str]


@dataclass
class Refresher:
    """Refreshes self-registered partners from their Entity Configurations, rate-limited."""

    sessions: async_sessionmaker[AsyncSession]
    fetcher: Fetcher
    clock: Clock
    allow_http_loopback: bool = False
    min_interval: float = 30.0  # per partner, for every kind of trigger
    schedule_interval: float = 3600.0
    retry_interval: float = 300.0  # a scheduled refresh that failed waits this long
    per_tick: int = 20  # the most stale first; the rest on the next ticks
    on_change: Callable[[Refreshed], Awaitable[None]] | None = None
    _attempts: dict[str, float] = field(default_factory=dict)

    def _allowed(self, partner_id: str) -> bool:
        now = self.clock.now()
        last = self._attempts.get(partner_id)
        if last is not None and now - last < self.min_interval:
            return False
        if len(self._attempts) > 10_000:
            self._attempts.clear()
        self._attempts[partner_id] = now
        return True

    async def refresh(self, partner_id: str, *, limited: bool = True) -> Refreshed:
        """Fetch, verify against the keys on record, store. ``RegistryError`` when refused or
        too soon (``limited``), ``LookupError`` for no such self-registered partner."""
        async with self.sessions() as session:
            partner = await session.get(Partner, partner_id)
        if partner is None or partner.federation_jwks is None:
            raise LookupError(partner_id)
        if partner.status == "revoked":
            raise RegistryError("a revoked partner is not refreshed")
        if limited and not self._allowed(partner_id):
            raise RegistryError(f"refreshed at most every {self.min_interval:.0f} s")
        statement = await fetch_configuration(
            self.fetcher, partner.issuer, now=self.clock.now(),
            allow_http_loopback=self.allow_http_loopback, trusted_jwks=partner.federation_jwks)
        keys = token_keys(statement, allow_http_loopback=self.allow_http_loopback)
        async with self.sessions() as session, session.begin():
            current = await session.get(Partner, partner_id, with_for_update=True)
            if current is None or current.issuer != statement.sub:
                raise LookupError(partner_id)
            if current.status == "revoked":
                raise RegistryError("a revoked partner is not refreshed")
            changed = await apply_refresh(session, current, statement, keys, self.clock.now())
        result = Refreshed(current, changed)
        if changed and self.on_change is not None:
            await self.on_change(result)
        return result

    async def on_unknown_kid(self, issuer: str) -> Partner | None:
        """The partner after a refresh triggered by a token whose ``kid`` is not on record;
        None when it is not self-registered, too soon, or the refresh was refused."""
        async with self.sessions() as session:
            partner = await partners.by_issuer(session, issuer)
        if partner is None or partner.federation_jwks is None:
            return None
        try:
            return (await self.refresh(partner.id)).partner
        except (RegistryError, LookupError) as exc:
            log.info("refresh of partner %s on an unknown kid refused: %s", partner.id, exc)
            return None

    async def tick(self) -> int:
        """Refresh the live self-registered partners not refreshed for ``schedule_interval``
        (at most ``per_tick``, stalest first; one that failed is retried after
        ``retry_interval``); how many were refreshed."""
        now = self.clock.now()
        async with self.sessions() as session:
            # only self-registered partners carry keys_refreshed_at
            due = (await session.execute(select(Partner.id).where(
                Partner.status.in_(("pending", "active", "suspended")),
                Partner.keys_refreshed_at <= now - self.schedule_interval,
            ).order_by(Partner.keys_refreshed_at))).scalars().all()
        waiting = [p for p in due
                   if now - self._attempts.get(p, float("-inf")) >= self.retry_interval]
        done = 0
        for partner_id in waiting[:self.per_tick]:
            try:
                await self.refresh(partner_id)
                done += 1
            except (RegistryError, LookupError) as exc:
                log.warning("scheduled refresh of partner %s failed: %s", partner_id, exc)
        return done
