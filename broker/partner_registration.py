"""Partner self-registration as operations (the public ``/registry`` endpoints and the admin
API call these): register from an Entity Configuration, with an invitation code or by a
registry admin; a partner's own status and refresh, authenticated by a request it signs with
its registered federation keys.

Order of ``register`` (nothing is written on a refusal): entity id syntax -> invitation
readable and open for this entity (before any fetch: an anonymous caller cannot make tessera
fetch anything) -> issuer not registered yet (else 409 ``conflict``) -> rate limit of fetches
(counted only for callers holding a usable code, so guessing codes cannot lock the door for the
others) -> fetch and verify the configuration -> one transaction: claim the invitation (once)
and record the partner ``pending`` with two audit events -> notify registry admins (webhook, in
the background).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from adapters import jose
from adapters.entity_statement import EntityStatementError, verify_signed_request
from adapters.errors import Conflict, InvalidRequest, NotFound, OAuthError
from broker import registry_notify
from broker.runtime import Broker
from registry import invitations, partners, self_registration
from registry.partners import RegistryError
from tenants.models import Partner


class TooManyRequests(OAuthError):
    error = "temporarily_unavailable"
    status = 429


class NotAuthenticated(OAuthError):
    error = "invalid_client"
    status = 401


@dataclass
class Window:
    """At most ``limit`` events per ``seconds`` (per process): a bound on the fetches
    anonymous callers can cause, whatever codes they hold."""

    limit: int = 30
    seconds: float = 60.0
    _times: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> bool:
        while self._times and now - self._times[0] >= self.seconds:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True


REGISTRATIONS = Window()


def registry_id(broker: Broker) -> str:
    return f"{broker.settings.base_url.rstrip('/')}/registry"


def _refused(exc: Exception) -> InvalidRequest:
    return InvalidRequest(str(exc))


async def register(broker: Broker, entity_id: str, *, invitation_code: str | None,
                   partner_id: str | None = None, display_name: str | None = None) -> Partner:
    """Register ``entity_id`` pending. Without ``invitation_code`` only a registry admin may
    call this (the admin API); the public endpoint always passes the code it was given."""
    loopback = broker.settings.allow_http_loopback
    try:
        self_registration.check_entity_id(entity_id, allow_http_loopback=loopback)
        if partner_id is not None and not partners.PARTNER_ID.match(partner_id):
            raise RegistryError("partner id: 1-64 of a-z, 0-9 and '-'")
        async with broker.sessions() as session:
            if invitation_code is not None:
                await invitations.check(session, invitation_code, entity_id=entity_id,
                                        now=broker.clock.now())
            if await partners.by_issuer(session, entity_id) is not None:
                raise Conflict("this entity is registered already")
        if invitation_code is not None and not REGISTRATIONS.take(time.monotonic()):
            raise TooManyRequests("too many registrations; try again in a minute",
                                  headers={"Retry-After": "60"})
        statement = await self_registration.fetch_configuration(
            broker.remote_keys, entity_id, now=broker.clock.now(), allow_http_loopback=loopback)
        pid = partner_id or self_registration.new_partner_id()
        async with broker.sessions() as session, session.begin():
            now = broker.clock.now()
            via = "admin"
            if invitation_code is not None:
                via = "invitation " + await invitations.claim(
                    session, invitation_code, entity_id=entity_id, partner_id=pid, now=now)
            partner = await self_registration.record(
                session, statement, now=now, partner_id=pid, allow_http_loopback=loopback,
                display_name=display_name, via=via)
    except RegistryError as exc:
        raise _refused(exc) from exc
    except IntegrityError:  # registered by a concurrent request between our check and insert
        raise Conflict("this entity is registered already") from None
    registry_notify.notify(broker, registry_id(broker), "partner.registration_pending", {
        "partner": partner.id, "entity_id": partner.issuer,
        "display_name": partner.display_name})
    return partner


async def authenticate(broker: Broker, request_jwt: str) -> Partner:
    """The self-registered partner that signed ``request_jwt`` (an ``entity-request+jwt``
    with ``aud`` = the registry) with one of its registered federation keys. Replaying one
    within its lifetime (at most five minutes) shows only the same partner's status again, or
    asks for a refresh that is rate-limited per partner."""
    refusal = NotAuthenticated("the request is not signed by a registered entity")
    try:
        issuer = jose.unverified_claims(request_jwt).get("iss")
    except jose.JWTError:
        raise refusal from None
    if not isinstance(issuer, str):
        raise refusal
    async with broker.sessions() as session:
        partner = await partners.by_issuer(session, issuer)
    if partner is None or not partner.federation_jwks:
        raise refusal
    try:
        verify_signed_request(request_jwt, jwks=partner.federation_jwks, entity_id=issuer,
                              audience=registry_id(broker), now=broker.clock.now())
    except EntityStatementError as exc:
        raise NotAuthenticated(f"the request is not acceptable: {exc}") from None
    return partner


async def refresh(broker: Broker, partner_id: str, *, limited: bool = True) -> tuple[Partner,
                                                                                    list[str]]:
    try:
        done = await broker.refresher.refresh(partner_id, limited=limited)
    except LookupError:
        raise NotFound(f"no self-registered partner {partner_id!r}") from None
    except RegistryError as exc:
        raise _refused(exc) from exc
    return done.partner, done.changed  # a change: the refresher's on_change told the admins
