"""CIBA delivery after a decision (OpenID CIBA Core §10.2, §10.3, §12): ping mode POSTs
``{"auth_req_id"}`` to the client's notification endpoint; push mode POSTs the token response
(or ``{"auth_req_id", "error": "access_denied"}``). Both carry
``Authorization: Bearer <client_notification_token>``. Delivery runs in the background (the
approver's request does not wait), through the SSRF guard, with one retry.

The ``auth_req_id`` and the notification token are sealed at rest (``broker.sealer``) for
these requests only; poll-mode rows keep nothing but the hash.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from adapters.errors import OAuthError
from broker import webhooks
from broker.grants import ciba as ciba_grant
from broker.runtime import Broker, TenantView
from tenants import audit, ciba, sealed_values
from tenants.models import CibaRequest
from tenants.scope import tenant_scope

log = logging.getLogger("tessera.ciba")


def seal_context(tenant_id: str, client_id: str, what: str) -> str:
    return sealed_values.ciba_context(tenant_id, client_id, what)


def sealed(broker: Broker, tenant_id: str, client_id: str, what: str, value: str) -> str:
    return broker.sealer.seal(value, seal_context(tenant_id, client_id, what))


def _open(broker: Broker, row: CibaRequest, tenant_id: str, what: str, value: str) -> str:
    return broker.sealer.open(value, seal_context(tenant_id, row.client_id, what))


async def _post(broker: Broker, url: str, token: str, body: dict[str, Any]) -> bool:
    headers = {"Authorization": f"Bearer {token}", "Cache-Control": "no-store",
               "Content-Type": "application/json"}
    return await webhooks.post(broker, url, content=json.dumps(body).encode(), headers=headers,
                               what="CIBA notification")


async def deliver(broker: Broker, tenant: TenantView, handle: str) -> bool:
    """Send the decided request ``handle`` to its client's notification endpoint."""
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        row = await ciba.by_handle(scope, handle)
        if row is None or row.delivery_mode not in ("ping", "push"):
            return False
        sealed_id = row.context.get("auth_req_id_sealed")
        if not sealed_id or not row.notification_token_sealed:
            return False
        auth_req_id = _open(broker, row, tenant.id, "id", sealed_id)
        token = _open(broker, row, tenant.id, "cnt", row.notification_token_sealed)
        _, client = await broker.lookup(tenant.id, row.client_id)
        url = row.context.get("notification_endpoint")
        if client is None or not client.live(now) or not url:
            return False
        body: dict[str, Any] = {"auth_req_id": auth_req_id}
        made = None
        if row.delivery_mode == "push":
            if row.status == "denied":
                body.update(error="access_denied", error_description="the user denied the request")
            elif row.status == "approved" and await ciba.redeem(scope, row):
                started = await ciba_grant.start_user_grant(scope, row, client, tenant, now)
                if isinstance(started, OAuthError):
                    body.update(error=started.error, error_description=started.description)
                else:
                    made = started
            else:
                return False
    if made is not None:
        request = await ciba_grant.push_request(broker, tenant, client, now)
        result = await ciba_grant.user_tokens(request, row, *made, auth_req_id=auth_req_id)
        token_body = {"access_token": result.access_token.token, "token_type": "Bearer",
                      "expires_in": result.access_token.expires_in,
                      "scope": " ".join(result.scope), **result.extra}
        body.update(token_body)
        async with broker.sessions() as session, session.begin():
            await audit.record(session, tenant.id, [audit.Event(
                "token.issued", "granted", client.client_id, result.subject,
                {"grant_type": ciba_grant.CIBA_GRANT, "delivery": "push",
                 "jti": result.access_token.jti, "scope": list(result.scope),
                 **result.detail})], now)
    return await _post(broker, url, token, body)


def notify(broker: Broker, tenant: TenantView, handle: str) -> None:
    """Fire and forget ``deliver``."""
    webhooks.in_background(_safe(broker, tenant, handle))


async def _safe(broker: Broker, tenant: TenantView, handle: str) -> None:
    try:
        await deliver(broker, tenant, handle)
    except Exception:  # a background delivery must not take the process down
        log.exception("CIBA delivery failed")


def announce(broker: Broker, tenant: TenantView, handle: str, client_id: str, user_id: str,
             approver: str, scope: tuple[str, ...] | list[str], message: str | None,
             expires_at: float) -> None:
    """The tenant webhook ``approval.pending`` (no secret in it: the approver decides at the
    approvals page or API, where ``id`` names the request)."""
    webhooks.notify(broker, tenant, "approval.pending", {
        "id": handle, "client_id": client_id, "user_id": user_id, "approver": approver,
        "scope": list(scope), "binding_message": message, "expires_at": int(expires_at),
        "approvals_url": f"{tenant.issuer}/approvals"})
