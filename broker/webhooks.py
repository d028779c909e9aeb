"""Tenant webhooks: signed JSON events (an approval waits, an agent was suspended, ...) POSTed
to the tenant's ``webhook_url``.

Body: ``{"tenant", "type", "id", "at", "data"}``. Header ``Tessera-Signature: t=<unix>,
v1=<hex>[,v1=<hex>]`` where v1 = HMAC-SHA256(secret, f"{t}.{body}"). The secret is the
tenant's own (``tenants.webhook_secrets``: stored sealed, shown once, rotated with an overlap);
during an overlap the event carries one ``v1`` per secret, new first, and a receiver accepts
the event when any ``v1`` matches the secret it holds (``verify``). Delivery is best effort, in
the background, with a short timeout and one retry; failures are logged without the body. The
URL is checked like any outbound fetch (SSRF guard).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Coroutine, Sequence
from typing import Any

import httpx

from broker.runtime import Broker, TenantView
from registry.remote_keys import RemoteKeyError
from tenants import webhook_secrets
from tenants.models import WebhookSecret
from tenants.scope import scoped

log = logging.getLogger("tessera.webhooks")
TIMEOUT = 5.0
_pending: set[asyncio.Task[Any]] = set()


def derived_secret(broker: Broker, tenant_id: str) -> str:
    """The secret of a tenant created before secrets were stored (until it adopts it)."""
    root = broker.settings.key_root_bytes()  # unchanged by master-key rotations
    return hmac.new(root, f"tessera webhook v1|{tenant_id}".encode(),
                    hashlib.sha256).hexdigest()


async def signing_secrets(broker: Broker, tenant_id: str) -> list[str]:
    """The secrets that sign the tenant's events now: current first, then the previous one
    during a rotation's overlap."""
    async with broker.sessions() as session:
        row = await scoped(session, tenant_id).get(WebhookSecret)
    stored = webhook_secrets.signing(row, broker.sealer, now=broker.clock.now())
    return stored or [derived_secret(broker, tenant_id)]


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                    hashlib.sha256).hexdigest()


def signature(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in secrets_)])


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: int = 300) -> bool:
    """For receivers (and tests): one ``v1`` is ours under ``secret``, and it is fresh."""
    try:
        pairs = [p.split("=", 1) for p in header.split(",")]
        stamps = [v for k, v in pairs if k == "t"]
        timestamp = int(stamps[0]) if len(stamps) == 1 else None
    except ValueError:
        return False
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in pairs)


def event_body(tenant: TenantView, type_: str, data: dict[str, Any], now: float) -> bytes:
    return json.dumps({"tenant": tenant.id, "type": type_, "id": secrets.token_urlsafe(12),
                       "at": int(now), "data": data}, sort_keys=True,
                      separators=(",", ":")).encode()


async def deliver(broker: Broker, tenant: TenantView, type_: str, data: dict[str, Any]) -> bool:
    """POST one event now; True when the receiver answered 2xx."""
    url = tenant.settings.webhook_url
    if not url:
        return False
    now = broker.clock.now()
    body = event_body(tenant, type_, data, now)
    headers = {"Content-Type": "application/json",
               "Tessera-Signature": signature(await signing_secrets(broker, tenant.id), int(now),
                                              body)}
    return await post(broker, url, content=body, headers=headers,
                      what=f"webhook {type_} of tenant {tenant.id}")


async def post(broker: Broker, url: str, *, content: bytes, headers: dict[str, str],
               what: str) -> bool:
    """One outbound notification (webhooks, CIBA ping/push): the URL through the SSRF guard,
    True on a 2xx, one retry; the log names ``what``, never the body."""
    for attempt in (1, 2):
        try:
            await broker.remote_keys.check_target(url)
            response = await broker.http.post(url, content=content, headers=headers,
                                              timeout=TIMEOUT)
            if 200 <= response.status_code < 300:
                return True
            log.warning("%s: HTTP %s (attempt %s)", what, response.status_code, attempt)
        except (RemoteKeyError, httpx.HTTPError) as exc:
            log.warning("%s failed: %s (attempt %s)", what, type(exc).__name__, attempt)
    return False


def in_background(work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` without making the caller's request wait (a reference is kept)."""
    task = asyncio.get_running_loop().create_task(work)
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def notify(broker: Broker, tenant: TenantView, type_: str, data: dict[str, Any]) -> None:
    """Fire and forget (the caller's request does not wait for the receiver)."""
    if tenant.settings.webhook_url:
        in_background(deliver(broker, tenant, type_, data))
