"""Access tokens whose signature this process has already checked.

A resource server introspects (or presents at ``/userinfo``) the same access token many
times; each time tessera verified its ES256 signature again (~0.1 ms, the largest single cost
of an introspection). This cache remembers, per tenant, the exact token string it verified,
the public key object that verified it and its claims, so a repeat skips the signature check
and nothing else:

* the key must still be the tenant's published verification key for that ``kid`` (the same
  object the key service holds: a reload, retirement or compromise that drops it is a miss, and
  the token is verified again, or refused);
* expiry, issuer and every state check (revoked, compromised key, client, user, partner,
  tenant) run on every request as before;
* the key is ``(tenant, token)``: a token verified at one tenant is never a hit at another, and
  the whole string is compared, so no other token can be mistaken for it.

Bounded (first in, first out) so memory stays flat whatever is presented; only tokens that
verified are stored, so forged tokens cannot fill it.
"""

from __future__ import annotations

from typing import Any, Protocol

SIZE = 4096  # ~2.5 KB each (token + claims): ~10 MB at most


class _PublishedKeys(Protocol):  # tenants.keys.KeyService
    async def verification_key(self, tenant_id: str, kid: str, *,
                               check_compromised: bool = True) -> object | None: ...


class VerifiedTokens:
    def __init__(self, size: int = SIZE) -> None:
        self._size = size
        self._entries: dict[tuple[str, str], tuple[str, object, dict[str, Any]]] = {}

    def get(self, tenant_id: str, token: str) -> tuple[str, object, dict[str, Any]] | None:
        """``(kid, key, claims)`` verified earlier at this tenant, or None. The claims are a
        copy the caller may change."""
        hit = self._entries.get((tenant_id, token))
        if hit is None:
            return None
        kid, key, claims = hit
        return kid, key, dict(claims)

    async def recall(self, keys: _PublishedKeys, tenant_id: str, token: str, *,
                     check_compromised: bool) -> tuple[str, dict[str, Any]] | None:
        """``(kid, claims)`` of a token verified earlier at this tenant whose key is still the
        very object ``keys`` publishes for its ``kid`` (``check_compromised``: and not
        compromised, read now), or None; an entry whose key is gone is forgotten."""
        hit = self.get(tenant_id, token)
        if hit is None:
            return None
        kid, key, claims = hit
        if await keys.verification_key(tenant_id, kid,
                                       check_compromised=check_compromised) is key:
            return kid, claims
        self.forget(tenant_id, token)
        return None

    def put(self, tenant_id: str, token: str, kid: str, key: object,
            claims: dict[str, Any]) -> None:
        entries = self._entries
        if len(entries) >= self._size:
            del entries[next(iter(entries))]
        entries[(tenant_id, token)] = (kid, key, dict(claims))

    def forget(self, tenant_id: str, token: str) -> None:
        self._entries.pop((tenant_id, token), None)

    def __len__(self) -> int:
        return len(self._entries)
