"""A SAML 2.0 assertion presented at the token endpoint (RFC 7522 bearer grant, or the RFC 8693
``saml2`` subject token): who issued it, whether this tenant trusts that issuer, who the user is.

Trust is decided by the assertion's Issuer (read unverified only to pick the keys) and then by
its signature, checked with that issuer's certificates only:

* an active SAML **upstream** of the tenant whose IdP entity ID is the Issuer: the keys, the
  SHA-1 opt-in and the claim mapping are the upstream's; the user is linked just in time
  exactly as a browser login through that upstream links them (``sub`` is the tenant user's
  ID, and a disabled user is refused);
* else a **partner** of the registry with a live trust link from the tenant that accepts it,
  whose registry ``metadata`` carries ``saml_idp_metadata`` (IdP metadata XML) naming the
  Issuer, and optionally ``saml_allow_sha1``: the user is the partner's, not the tenant's, and
  is keyed by the partner's registry issuer (the one trust links, ``revoke --by partner`` and
  the token-state check know), not by the SAML entity ID: the access token's ``sub`` is the
  pairwise id of (partner issuer, NameID) and ``sub_id`` names both; the link's scope ceiling
  applies.

The assertion's audience must be the tenant's token endpoint URL or its issuer, and the bearer
confirmation's Recipient the token endpoint URL (RFC 7522 §3). The replay claim uses the key
of the SAML ACS (``saml|issuer|ID``), so an assertion is used once across both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from adapters import subjects
from adapters.errors import OAuthError
from adapters.saml_assertion import SAMLError
from adapters.saml_upstream import (
    IdPMetadata,
    SAMLIdentity,
    assertion_issuer,
    consume_assertion,
    decode_assertion,
)
from broker import claim_mapping, upstreams
from broker.runtime import Broker, TenantView
from registry.trust import Peer
from tenants import users
from tenants.journal import Claim
from tenants.keys import compromised
from tenants.models import Partner, TrustLink
from tenants.scope import tenant_scope

REPLAY_GRACE = 120  # seconds the assertion ID stays claimed past its expiry (as the ACS)


@dataclass(frozen=True)
class SAMLSubject:
    """A verified assertion: the subject, how they authenticated, and its replay claim."""

    sub: str
    auth: dict[str, Any]  # acr, amr, auth_time (RFC 9068 §2.2.1)
    email: str | None
    identity: SAMLIdentity
    claim: Claim
    upstream: str | None = None  # the tenant's upstream it came through ...
    partner: str | None = None  # ... or the registry partner that issued it
    peer: Peer | None = None  # the partner's live trust link (scope ceiling)

    def detail(self) -> dict[str, Any]:
        """For the audit event."""
        return {"saml_issuer": self.identity.issuer, "assertion_id": self.identity.assertion_id,
                **({"upstream": self.upstream} if self.upstream else {}),
                **({"partner": self.partner} if self.partner else {})}

    def token_sub(self, tenant_id: str) -> str:
        """The access token's ``sub``: the tenant user, or a partner's user's pairwise id."""
        if self.peer is None:
            return self.sub
        return subjects.foreign_sub(tenant_id, self.peer.issuer, self.sub)

    def id_jag_identity(self) -> dict[str, Any]:
        carried = {**self.auth, "email": self.email}
        return {"sub": self.sub, **{k: v for k, v in carried.items() if v is not None}}


def token_endpoint(tenant: TenantView) -> str:
    return f"{tenant.issuer}/token"


def replay_claim(identity: SAMLIdentity) -> Claim:
    """An assertion's one-time key, claimed by the SAML ACS and by the token endpoint alike."""
    key = hashlib.sha256(f"saml|{identity.issuer}|{identity.assertion_id}".encode()).hexdigest()
    return Claim(key, identity.not_on_or_after + REPLAY_GRACE, kind="saml_assertion")


async def _upstream(broker: Broker, tenant: TenantView,
                    issuer: str) -> tuple[upstreams.UpstreamView, IdPMetadata] | None:
    for upstream in await upstreams.active(broker, tenant.id):
        if upstream.kind != "saml":
            continue
        xml = upstream.config.get("idp_metadata")
        if upstream.config.get("idp_entity_id") not in (None, issuer) or not isinstance(xml, str):
            continue
        idp = upstreams.idp_metadata(xml)
        if idp.entity_id == issuer:
            return upstream, idp
    return None


async def _partner(broker: Broker, tenant: TenantView,
                   issuer: str) -> tuple[Partner, Peer, IdPMetadata] | None:
    async with broker.sessions() as session:
        rows = (await session.execute(
            select(Partner).join(TrustLink, TrustLink.partner_id == Partner.id).where(
                TrustLink.tenant_id == tenant.id, TrustLink.status == "active",
                TrustLink.accept.is_(True), Partner.status == "active"))).scalars().all()
    found: list[tuple[Partner, IdPMetadata]] = []
    for partner in rows:
        xml = (partner.metadata_ or {}).get("saml_idp_metadata")
        if not isinstance(xml, str):
            continue
        try:
            idp = upstreams.idp_metadata(xml)
        except SAMLError:
            continue
        if idp.entity_id == issuer:
            found.append((partner, idp))
    if len(found) != 1:  # none, or ambiguous: two partners claim one IdP
        return None
    partner, idp = found[0]
    # link (accepting) and partner live right now
    peer = await broker.live_peer(tenant.id, partner.issuer, direction="accept")
    return (partner, peer, idp) if peer is not None else None


async def accept(broker: Broker, tenant: TenantView, value: str, *,
                 refuse: type[OAuthError]) -> SAMLSubject:
    """Verify the base64url ``value`` (an assertion) and resolve its subject; ``refuse`` (the
    caller's error type) for every defect. The replay claim is the caller's to record."""
    now = broker.clock.now()
    endpoint = token_endpoint(tenant)
    try:
        xml = decode_assertion(value)
        issuer = assertion_issuer(xml)
        upstream = await _upstream(broker, tenant, issuer)
        partner = None if upstream is not None else await _partner(broker, tenant, issuer)
        if upstream is not None:
            idp, allow_sha1 = upstream[1], bool(upstream[0].config.get("allow_sha1", False))
        elif partner is not None:
            idp = partner[2]
            allow_sha1 = bool((partner[0].metadata_ or {}).get("saml_allow_sha1", False))
        else:
            raise refuse("the assertion's issuer is not a trusted SAML IdP of this tenant")
        idp = await without_compromised(broker, idp)
        identity = consume_assertion(idp, xml, audience_options=(endpoint, tenant.issuer),
                                     recipient_options=(endpoint,), now=now,
                                     allow_sha1=allow_sha1)
        source = {**identity.attributes, "NameID": identity.name_id}
        profile = claim_mapping.profile(source, upstream[0].mapping if upstream else {},
                                        claim_mapping.SAML_DEFAULT)
    except (SAMLError, claim_mapping.MappingError, ValueError) as exc:
        raise refuse(f"assertion refused: {exc}") from exc
    auth = claim_mapping.saml_auth(identity.authn_context_class_ref, identity.authn_instant)
    auth["auth_time"] = auth["auth_time"] or int(now)
    if partner is not None:
        return SAMLSubject(profile.subject, auth, profile.email, identity,
                           replay_claim(identity), partner=partner[0].id, peer=partner[1])
    assert upstream is not None
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        user = await users.link(scope, upstream[0].name, profile, now)
        user_id, active = user.id, user.status == "active"
    if not active:
        raise refuse("this user is disabled")
    return SAMLSubject(user_id, auth, profile.email, identity, replay_claim(identity),
                       upstream=upstream[0].name)


async def without_compromised(broker: Broker, idp: IdPMetadata) -> IdPMetadata:
    """``idp`` trusting none of its certificates whose key a tenant of this deployment has
    declared compromised (``tessera keys compromise``): metadata imported from another tenant
    keeps the certificate, but an assertion it signs is refused from the next request on."""
    certs = await compromised.without_compromised(broker.sessions, idp.certs)
    if len(certs) == len(idp.certs):
        return idp
    if not certs:
        raise SAMLError("the IdP's signing certificate belongs to a compromised key")
    return replace(idp, certs=certs)
