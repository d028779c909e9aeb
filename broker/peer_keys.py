"""The verification key of a trusted peer's JWT: another tenant's key service, a partner's
inline JWKS, or its ``jwks_uri`` fetched through ``registry.remote_keys``."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import Key

from adapters import jose
from adapters.errors import OAuthError
from broker.runtime import Broker
from registry.remote_keys import RemoteKeyError
from registry.trust import Peer


class PeerKeyUnavailable(Exception):
    """The peer's keys could not be had (the message says why)."""


def _inline(jwks: dict[str, object], kid: object) -> Key | None:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]  # type: ignore[attr-defined]
    for jwk in keys:
        if kid is None or jwk.get("kid") == kid:
            return jose.import_public_jwk(jwk)
    return None


async def _partner_key(broker: Broker, jwks: dict[str, object] | None, jwks_uri: str | None,
                       kid: object, alg: str) -> Key | None:
    if jwks is not None:
        return _inline(jwks, kid)
    if jwks_uri is None:
        return None
    try:
        return await broker.remote_keys.key(jwks_uri, kid if isinstance(kid, str) else None, alg)
    except RemoteKeyError as exc:
        raise PeerKeyUnavailable(str(exc)) from exc


async def peer_key(broker: Broker, peer: Peer, header: dict[str, Any]) -> Key | None:
    kid, alg = header.get("kid"), str(header.get("alg"))
    if peer.peer_tenant is not None:
        if not isinstance(kid, str):
            return None
        return await broker.keys.verification_key(peer.peer_tenant, kid)
    failure: PeerKeyUnavailable | None = None
    try:
        found = await _partner_key(broker, peer.jwks, peer.jwks_uri, kid, alg)
    except PeerKeyUnavailable as exc:
        found, failure = None, exc
    if found is None and isinstance(kid, str):
        # a self-registered partner may have published new token keys (or a new jwks_uri) in
        # its Entity Configuration: re-read it, at most once per interval per partner
        partner = await broker.refresher.on_unknown_kid(peer.issuer)
        if partner is not None and (partner.jwks, partner.jwks_uri) != (peer.jwks,
                                                                        peer.jwks_uri):
            return await _partner_key(broker, partner.jwks, partner.jwks_uri, kid, alg)
    if failure is not None:
        raise failure
    return found


async def trusted_issuer_key(
    broker: Broker, tenant_id: str, issuer: str, header: dict[str, Any],
    refuse: type[OAuthError],
) -> tuple[Peer, Key | None]:
    """The tenant's live peer for ``issuer`` (a link that **accepts** from it) and the key for
    this JWT header; ``refuse`` (the grant's error type) when the issuer is not accepted or its
    keys cannot be had."""
    peer = await broker.live_peer(tenant_id, issuer, direction="accept")
    if peer is None:
        raise refuse("this tenant does not accept assertions from the issuer")
    try:
        return peer, await peer_key(broker, peer, header)
    except PeerKeyUnavailable as exc:
        raise refuse(f"the issuer's keys are not available: {exc}") from exc
