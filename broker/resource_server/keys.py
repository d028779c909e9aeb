"""A tenant's JWKS as a resource server sees it: fetched over HTTP, cached, and refetched when
a token names a ``kid`` the cache does not hold (a rotation), at most once per
``min_refetch`` seconds so a stream of forged ``kid`` values cannot make it hammer tessera."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.jwk import Key

from adapters import jose

MAX_JWKS_BYTES = 64_000


class RemoteJWKS:
    def __init__(self, url: str, http: httpx.AsyncClient, *, max_age: float = 300,
                 min_refetch: float = 10, clock: Callable[[], float] = time.time) -> None:
        self.url, self.http, self.max_age, self.min_refetch = url, http, max_age, min_refetch
        self.clock = clock
        self._keys: dict[str, Key] = {}
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: Any) -> Key | None:
        """The key with this ``kid`` (None: unknown even after a permitted refetch)."""
        if not isinstance(kid, str) or len(kid) > 256:
            return None
        now = self.clock()
        if kid in self._keys and now - self._fetched < self.max_age:
            return self._keys[kid]
        if now - self._fetched >= self.min_refetch:
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        async with self._lock:
            if self.clock() - self._fetched < self.min_refetch:
                return  # another request just did
            try:
                r = await self.http.get(self.url, headers={"Accept": "application/json"})
                if r.status_code != 200 or len(r.content) > MAX_JWKS_BYTES:
                    return
                keys = r.json().get("keys", [])
            except (httpx.HTTPError, ValueError, AttributeError):
                return  # keep what we have; the next permitted refetch tries again
            fresh: dict[str, Key] = {}
            for jwk in keys if isinstance(keys, list) else []:
                try:
                    if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                        fresh[jwk["kid"]] = jose.import_public_jwk(jwk)
                except jose.JWTError:
                    continue
            self._keys, self._fetched = fresh, self.clock()
