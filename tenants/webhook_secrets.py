"""A tenant's webhook signing secret (the key of ``Tessera-Signature``, ``broker.webhooks``).

Stored sealed under the master key (``tenants.secrets.Sealer``, bound to the tenant), made
when the tenant is created, shown to the administrator once (``reveal``), replaced by
``rotate``: the previous secret keeps signing beside the new one until the overlap ends, so a
receiver can switch at leisure (it checks any ``v1`` against the secret it holds). Tenants
created before secrets were stored use the one derived from the master key until the first
reveal or rotation stores it (``adopt``): nothing changes for their receivers meanwhile.
"""

from __future__ import annotations

import secrets

from tenants.models import Tenant
from tenants.secrets import Sealer

DAY = 86_400
MAX_OVERLAP = 7 * DAY
PREFIX = "whsec_"


def _context(tenant_id: str) -> str:
    return f"webhook/{tenant_id}"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def seal_new(tenant: Tenant, sealer: Sealer) -> None:
    """A fresh, not yet revealed secret for a new tenant."""
    tenant.webhook_secret_sealed = sealer.seal(new_secret(), _context(tenant.id))
    tenant.webhook_secret_revealed = False


def adopt(tenant: Tenant, sealer: Sealer, legacy: str) -> None:
    """Store the derived secret of a tenant from before stored secrets (no-op otherwise)."""
    if tenant.webhook_secret_sealed is None:
        tenant.webhook_secret_sealed = sealer.seal(legacy, _context(tenant.id))


def reveal(tenant: Tenant, sealer: Sealer) -> str | None:
    """The current secret if it was never shown (and from now on it has been); else None."""
    if tenant.webhook_secret_revealed or tenant.webhook_secret_sealed is None:
        return None
    tenant.webhook_secret_revealed = True
    return sealer.open(tenant.webhook_secret_sealed, _context(tenant.id))


def rotate(tenant: Tenant, sealer: Sealer, *, now: float, overlap_seconds: int) -> str:
    """A new secret, returned this once; the current one signs too for ``overlap_seconds``."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP:
        raise ValueError(f"overlap_seconds: 0..{MAX_OVERLAP}")
    secret = new_secret()
    keep = overlap_seconds > 0 and tenant.webhook_secret_sealed is not None
    tenant.webhook_previous_secret_sealed = tenant.webhook_secret_sealed if keep else None
    tenant.webhook_previous_valid_until = now + overlap_seconds if keep else None
    tenant.webhook_secret_sealed = sealer.seal(secret, _context(tenant.id))
    tenant.webhook_secret_revealed = True
    tenant.webhook_secret_rotated_at = now
    return secret


def signing(tenant: Tenant, sealer: Sealer, *, now: float) -> list[str]:
    """The secrets that sign an event now: the current one, and the previous one inside its
    overlap window; empty when none is stored (the caller uses the derived one)."""
    out: list[str] = []
    if tenant.webhook_secret_sealed is not None:
        out.append(sealer.open(tenant.webhook_secret_sealed, _context(tenant.id)))
    until = tenant.webhook_previous_valid_until
    if out and tenant.webhook_previous_secret_sealed and until is not None and now < until:
        out.append(sealer.open(tenant.webhook_previous_secret_sealed, _context(tenant.id)))
    return out
