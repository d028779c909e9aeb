"""One access-token check at a resource server, local (no call to tessera per request):

  JWS with ``typ`` at+jwt (RFC 9068) by a key of the tenant's JWKS · ``iss`` the tenant ·
  ``aud`` the resource's identifier (RFC 8707) · ``exp``/``iat``/``nbf`` · not revoked (the
  signed feed, ``feed.py``) · a DPoP-bound token (``cnf.jkt``) only with the DPoP scheme and a
  proof of that key for this method and URL with ``ath`` (RFC 9449 §7), a replayed proof
  refused · a certificate-bound token (``cnf.x5t#S256``) only with that TLS client
  certificate (RFC 8705 §3) · the required scopes, else 403 ``insufficient_scope``
  (RFC 6750 §3.1) · optionally, introspection (RFC 7662) with a short cache.

Every refusal is a ``Refusal`` carrying its status, error code and the ``WWW-Authenticate``
challenge parameters (``resource_metadata`` of RFC 9728 §5.1 included).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters import dpop, jose
from adapters.errors import InvalidDPoPProof
from broker.resource_server.feed import FeedUnavailable, RevocationFeed
from broker.resource_server.keys import RemoteJWKS

AT_TYP = "at+jwt"
LEEWAY = 30
MAX_TOKEN_BYTES = 8_192


@dataclass(frozen=True)
class ResourceConfig:
    """What the resource is: its identifier (the ``aud`` it accepts), tessera's issuer for the
    tenant, the scopes every request needs, and the RFC 9728 metadata URL its 401s name."""

    resource: str
    issuer: str
    required_scopes: tuple[str, ...] = ()
    resource_metadata: str | None = None
    scopes_supported: tuple[str, ...] = ()
    resource_name: str | None = None


@dataclass(frozen=True)
class Verified:
    token: str
    claims: dict[str, Any]
    scopes: tuple[str, ...]
    client_id: str
    subject: str
    expires_at: int


@dataclass
class Refusal(Exception):
    status: int  # 401, 403, 400 or 503
    error: str  # invalid_token, insufficient_scope, invalid_request, invalid_dpop_proof ...
    description: str
    scheme: str = "Bearer"
    scope: str | None = None


@dataclass
class Introspection:
    """RFC 7662 at tessera, cached for ``ttl`` seconds per token (a revocation is seen within
    ``ttl``); the resource authenticates as a client of the tenant (client_secret_basic)."""

    url: str
    client_id: str
    client_secret: str
    http: httpx.AsyncClient
    ttl: float = 5.0
    clock: Callable[[], float] = time.time
    _cache: OrderedDict[str, tuple[float, bool]] = field(default_factory=OrderedDict)

    async def active(self, token: str) -> bool:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(key)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        try:
            r = await self.http.post(self.url, data={"token": token},
                                     auth=(self.client_id, self.client_secret))
            active = r.status_code == 200 and r.json().get("active") is True
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise FeedUnavailable("introspection failed") from exc
        self._cache[key] = (self.clock(), active)
        while len(self._cache) > 10_000:
            self._cache.popitem(last=False)
        return active


class _ProofReplay:
    """DPoP proofs seen (by ``jti``), until they could no longer be accepted."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.limit = limit

    def first_use(self, key: str, until: float, now: float) -> bool:
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = until
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True


class TokenVerifier:
    def __init__(self, config: ResourceConfig, jwks: RemoteJWKS, feed: RevocationFeed | None,
                 *, introspection: Introspection | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.jwks, self.feed = config, jwks, feed
        self.introspection, self.clock = introspection, clock
        self._replay = _ProofReplay()

    async def verify(self, token: str, *, scheme: str = "bearer", method: str = "GET",
                     url: str | None = None, dpop_proof: str | None = None,
                     cert_thumbprint: str | None = None,
                     required_scopes: Sequence[str] | None = None) -> Verified:
        scheme = scheme.lower()
        challenge = "DPoP" if scheme == "dpop" else "Bearer"
        claims = await self._signed_claims(token, challenge)
        try:
            revoked = (await self.feed.current()).revoked(claims) if self.feed else None
            if self.introspection is not None and not await self.introspection.active(token):
                revoked = "not active at the authorization server"
        except FeedUnavailable as exc:
            raise Refusal(503, "temporarily_unavailable", str(exc), challenge) from None
        if revoked:
            raise Refusal(401, "invalid_token", f"token revoked ({revoked})", challenge)
        self._check_binding(token, claims, scheme, method, url, dpop_proof, cert_thumbprint)
        scopes = tuple(str(claims.get("scope", "")).split())
        needed = tuple(required_scopes if required_scopes is not None
                       else self.config.required_scopes)
        missing = [s for s in needed if s not in scopes]
        if missing:
            raise Refusal(403, "insufficient_scope", f"needs scope {' '.join(missing)}",
                          challenge, scope=" ".join(needed))
        return Verified(token, claims, scopes, str(claims.get("client_id", "")),
                        str(claims.get("sub", "")), int(claims["exp"]))

    async def _signed_claims(self, token: str, challenge: str) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise Refusal(401, "invalid_token", "no usable token", challenge)
        try:
            key = await self.jwks.key(jose.unverified_header(token).get("kid"))
            claims = jose.verify_jws(token, lambda _h: key, typ=AT_TYP).claims
            jose.check_times(claims, self.clock(), leeway=LEEWAY)
        except jose.JWTError as exc:
            raise Refusal(401, "invalid_token", f"token refused: {exc}", challenge) from None
        if claims.get("iss") != self.config.issuer:
            raise Refusal(401, "invalid_token", "token of another issuer", challenge)
        if not jose.audience_matches(claims, self.config.resource):
            raise Refusal(401, "invalid_token", "token not meant for this resource", challenge)
        if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("exp"), int):
            raise Refusal(401, "invalid_token", "token lacks jti or exp", challenge)
        return claims

    def _check_binding(self, token: str, claims: dict[str, Any], scheme: str, method: str,
                       url: str | None, proof: str | None, x5t: str | None) -> None:
        cnf = claims.get("cnf") if isinstance(claims.get("cnf"), dict) else {}
        jkt, bound_cert = cnf.get("jkt"), cnf.get("x5t#S256")
        if bound_cert is not None and (x5t is None or not hmac.compare_digest(
                str(bound_cert), x5t)):
            raise Refusal(401, "invalid_token", "certificate-bound token without that "
                          "certificate", "Bearer" if scheme != "dpop" else "DPoP")
        if jkt is None:
            if scheme == "dpop":
                raise Refusal(401, "invalid_token", "token is not DPoP-bound; use Bearer",
                              "DPoP")
            return
        if scheme != "dpop":
            raise Refusal(401, "invalid_token", "DPoP-bound token presented as Bearer", "DPoP")
        if proof is None or url is None:
            raise Refusal(401, "invalid_dpop_proof", "DPoP proof required", "DPoP")
        now = self.clock()
        try:
            checked = dpop.verify_proof(proof, method=method, url=url, now=now,
                                        access_token=token, expected_jkt=str(jkt))
        except InvalidDPoPProof as exc:
            raise Refusal(401, "invalid_dpop_proof", exc.description or "bad proof",
                          "DPoP") from None
        if not self._replay.first_use(dpop.replay_key(self.config.resource, checked.htu,
                                                      checked.jti), checked.iat + 360, now):
            raise Refusal(401, "invalid_dpop_proof", "DPoP proof replayed", "DPoP")
