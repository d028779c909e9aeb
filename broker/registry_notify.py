"""Registry admins hear of self-registrations: a signed webhook to the registry's
``webhook_url`` (``RegistrySetting``), beside the audit event every change writes.

Same wire shape as tenant webhooks (``broker.webhooks``): body ``{"registry", "type", "id",
"at", "data"}``, header ``Tessera-Signature``; the secret is the registry's own row in
``webhook_secrets`` (slot ``_registry``), sealed, shown once when the URL is first set.
Fire and forget: a registration never waits for, nor fails on, the receiver.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from broker import webhooks
from broker.runtime import Broker
from registry.partners import REGISTRY_AUDIT
from tenants import webhook_secrets
from tenants.models import RegistrySetting, WebhookSecret
from tenants.scope import scoped

SETTINGS_ROW = 1


async def settings_row(broker: Broker) -> RegistrySetting | None:
    async with broker.sessions() as session:
        return await session.get(RegistrySetting, SETTINGS_ROW)


async def signing_secrets(broker: Broker) -> list[str]:
    async with broker.sessions() as session:
        row = await scoped(session, REGISTRY_AUDIT).get(WebhookSecret)
    stored = webhook_secrets.signing(row, broker.sealer, now=broker.clock.now())
    return stored or [webhooks.derived_secret(broker, REGISTRY_AUDIT)]


async def deliver(broker: Broker, registry_id: str, type_: str, data: dict[str, Any]) -> bool:
    row = await settings_row(broker)
    if row is None or not row.webhook_url:
        return False
    now = broker.clock.now()
    body = json.dumps({"registry": registry_id, "type": type_, "id": secrets.token_urlsafe(12),
                       "at": int(now), "data": data}, sort_keys=True,
                      separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Tessera-Signature": webhooks.signature(
        await signing_secrets(broker), int(now), body)}
    return await webhooks.post(broker, row.webhook_url, content=body, headers=headers,
                               what=f"registry webhook {type_}")


def notify(broker: Broker, registry_id: str, type_: str, data: dict[str, Any]) -> None:
    """Fire and forget (the caller does not wait for the receiver)."""
    webhooks.in_background(deliver(broker, registry_id, type_, data))
