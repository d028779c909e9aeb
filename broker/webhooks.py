"""Tenant webhooks: signed JSON events (an approval waits, an agent was suspended, ...) POSTed
to the tenant's ``webhook_url``.

Body: ``{"tenant", "type", "id", "at", "data"}``. Header ``Tessera-Signature: t=<unix>,
v1=<hex>`` where v1 = HMAC-SHA256(key, f"{t}.{body}"); the key is per tenant, derived from
the master key (``webhook_secret`` shows it to the tenant's administrator). Delivery is
best effort, in the background, with a short timeout and one retry; failures are logged
without the body. The URL is checked like any outbound fetch (SSRF guard).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

import httpx

from broker.runtime import Broker, TenantView
from registry.remote_keys import RemoteKeyError

log = logging.getLogger("tessera.webhooks")
TIMEOUT = 5.0
_pending: set[asyncio.Task[Any]] = set()


def webhook_secret(broker: Broker, tenant_id: str) -> str:
    master = broker.settings.master_key_bytes()
    return hmac.new(master, f"tessera webhook v1|{tenant_id}".encode(),
                    hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: int = 300) -> bool:
    """For receivers (and tests): the signature is ours and fresh."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


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
               "Tessera-Signature": signature(webhook_secret(broker, tenant.id), int(now), body)}
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
