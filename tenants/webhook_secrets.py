"""A tenant's webhook signing secret (the key of ``Tessera-Signature``, ``broker.webhooks``).

Stored sealed under the master key (``tenants.secrets.Sealer``, bound to the tenant) in its
own row (``WebhookSecret``), made when the tenant is created, shown to the administrator once
(``reveal``), replaced by ``rotate``: the previous secret keeps signing beside the new one
until the overlap ends, so a receiver can switch at leisure (it checks any ``v1`` against the
secret it holds). A tenant created before secrets were stored has no row and uses the secret
derived from the master key until its first reveal or rotation stores that one (``adopt``):
nothing changes for its receivers meanwhile.
"""

from __future__ import annotations

import secrets

from tenants.models import WebhookSecret
from tenants.scope import TenantScope
from tenants.sealed_values import webhook_context
from tenants.secrets import Sealer

DAY = 86_400
MAX_OVERLAP = 7 * DAY
PREFIX = "whsec_"


_context = webhook_context


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def create(scope: TenantScope, sealer: Sealer) -> WebhookSecret:
    """A fresh, not yet revealed secret for a new tenant."""
    return scope.add(WebhookSecret(sealed=sealer.seal(new_secret(), _context(scope.tenant_id)),
                                   revealed=False))


async def adopt(scope: TenantScope, sealer: Sealer, legacy: str) -> WebhookSecret:
    """The tenant's row; a tenant from before stored secrets gets one holding ``legacy`` (the
    derived secret its receivers already use), not yet revealed."""
    row = await scope.get(WebhookSecret)
    if row is None:
        row = scope.add(WebhookSecret(sealed=sealer.seal(legacy, _context(scope.tenant_id)),
                                      revealed=False))
    return row


def reveal(row: WebhookSecret, sealer: Sealer) -> str | None:
    """The current secret if it was never shown (and from now on it has been); else None."""
    if row.revealed:
        return None
    row.revealed = True
    return sealer.open(row.sealed, _context(row.tenant_id))


def rotate(row: WebhookSecret, sealer: Sealer, *, now: float, overlap_seconds: int) -> str:
    """A new secret, returned this once; the current one signs too for ``overlap_seconds``."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP:
        raise ValueError(f"overlap_seconds: 0..{MAX_OVERLAP}")
    secret = new_secret()
    keep = overlap_seconds > 0
    row.previous_sealed = row.sealed if keep else None
    row.previous_valid_until = now + overlap_seconds if keep else None
    row.sealed = sealer.seal(secret, _context(row.tenant_id))
    row.revealed, row.rotated_at = True, now
    return secret


def signing(row: WebhookSecret | None, sealer: Sealer, *, now: float) -> list[str]:
    """The secrets that sign an event now: the current one, and the previous one inside its
    overlap window; empty when none is stored (the caller uses the derived one)."""
    if row is None:
        return []
    out = [sealer.open(row.sealed, _context(row.tenant_id))]
    until = row.previous_valid_until
    if row.previous_sealed and until is not None and now < until:
        out.append(sealer.open(row.previous_sealed, _context(row.tenant_id)))
    return out
