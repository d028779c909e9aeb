"""tessera's signed revocation feed (``GET {issuer}/revocations``, see
``broker.endpoints.revocation_feed``) as a resource server pulls it.

Staleness is bounded and documented: the feed is pulled again when the copy held is older
than ``poll_interval`` (default 15 s, the feed's ``max-age``), lazily on the next request, with
``If-None-Match`` so an unchanged list costs a 304. A revocation at tessera is therefore seen
by the resource at most ``poll_interval`` seconds (plus one request) later. If tessera cannot be
reached, the copy held counts for ``max_staleness`` seconds (default 60) after it was last
confirmed; after that every token is refused (fail closed, ``FeedUnavailable``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters import jose
from broker.resource_server.keys import RemoteJWKS

TYP = "revocation-list+jwt"
MAX_FEED_BYTES = 2_000_000


class FeedUnavailable(Exception):
    """The revocation list could not be confirmed within ``max_staleness``."""


@dataclass(frozen=True)
class RevocationList:
    jtis: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    cutoffs: tuple[tuple[str, str, float], ...] = ()  # (kind, subject, not_before)
    inactive_clients: frozenset[str] = frozenset()
    inactive_issuers: frozenset[str] = frozenset()
    tenant: str = ""

    def revoked(self, claims: Mapping[str, Any]) -> str | None:
        """Why the token is revoked, or None."""
        jti, client_id = str(claims.get("jti", "")), claims.get("client_id")
        sub_id = claims.get("sub_id") if isinstance(claims.get("sub_id"), dict) else {}
        foreign = sub_id.get("iss") if sub_id else None
        if jti in self.jtis:
            return "token revoked"
        grant_id, dot, _ = jti.partition(".")  # tenants.grants.access_jti
        if dot and grant_id in self.grants:
            return "grant revoked"
        if client_id in self.inactive_clients:
            return "client inactive"
        if foreign is not None and foreign in self.inactive_issuers:
            return "issuer no longer trusted"
        iat = claims.get("iat")
        iat = float(iat) if isinstance(iat, int | float) else 0.0
        about = {"client": client_id, "user": claims.get("sub"), "partner": foreign,
                 "tenant": self.tenant}
        for kind, subject, not_before in self.cutoffs:
            if about.get(kind) == subject and iat <= not_before:
                return f"{kind} revoked"
        return None


@dataclass
class RevocationFeed:
    issuer: str
    http: httpx.AsyncClient
    jwks: RemoteJWKS
    poll_interval: float = 15.0
    max_staleness: float = 60.0
    clock: Callable[[], float] = time.time
    _list: RevocationList | None = None
    _confirmed: float = float("-inf")
    _etag: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def url(self) -> str:
        return f"{self.issuer}/revocations"

    async def current(self) -> RevocationList:
        if self.clock() - self._confirmed >= self.poll_interval:
            async with self._lock:
                if self.clock() - self._confirmed >= self.poll_interval:
                    await self._pull()
        if self._list is None or self.clock() - self._confirmed > self.max_staleness:
            raise FeedUnavailable("the revocation list could not be refreshed")
        return self._list

    async def _pull(self) -> None:
        headers = {"If-None-Match": self._etag} if self._etag and self._list else {}
        try:
            r = await self.http.get(self.url, headers=headers)
        except httpx.HTTPError:
            return
        if r.status_code == 304 and self._list is not None:
            self._confirmed = self.clock()
            return
        if r.status_code != 200 or len(r.content) > MAX_FEED_BYTES:
            return
        parsed = await self._verify(r.text)
        if parsed is not None:
            self._list, self._confirmed = parsed, self.clock()
            self._etag = r.headers.get("etag")

    async def _verify(self, token: str) -> RevocationList | None:
        try:
            key = await self.jwks.key(jose.unverified_header(token).get("kid"))
            claims = jose.verify_jws(token, lambda _h: key, typ=TYP).claims
            jose.check_times(claims, self.clock(), leeway=5)
        except jose.JWTError:
            return None
        if claims.get("iss") != self.issuer:
            return None

        def strings(name: str) -> frozenset[str]:
            value = claims.get(name)
            return frozenset(v for v in value if isinstance(v, str)) if isinstance(
                value, list) else frozenset()

        raw = claims.get("cutoffs")
        cutoffs = tuple(
            (c["kind"], c["subject"], float(c["not_before"]))
            for c in (raw if isinstance(raw, list) else []) if isinstance(c, dict)
            and isinstance(c.get("kind"), str) and isinstance(c.get("subject"), str)
            and isinstance(c.get("not_before"), int | float))
        return RevocationList(strings("jtis"), strings("grants"), cutoffs,
                              strings("inactive_clients"), strings("inactive_issuers"),
                              self.issuer.rstrip("/").rpartition("/t/")[2])
