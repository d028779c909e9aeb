"""A managed connection's ``approve`` scopes become a CIBA request instead of a refusal.

The documented path (this docstring is its reference):

1. The agent asks for an ID-JAG (RFC 8693 token exchange) naming a scope whose rule is
   ``approve``. Tessera answers **HTTP 400** with the CIBA acknowledgement inside the error::

       {"error": "authorization_pending", "error_description": "...",
        "auth_req_id": "<256-bit random>", "expires_in": 600, "interval": 5}

   (a client that does not know the path sees an ordinary OAuth error and stops).
2. The approver (the subject user, or the connection's ``group:<name>``) is asked on the
   approvals page / JSON API and by the tenant webhook ``approval.pending``. Scopes of rule
   ``deny`` stay dropped; ``grant`` + ``approve`` scopes
   are what the approver sees and what the ID-JAG will carry.
3. The agent polls the token endpoint with ``grant_type=urn:openid:params:grant-type:ciba``
   and ``auth_req_id`` (``authorization_pending`` / ``slow_down`` / ``access_denied`` /
   ``expired_token``) and, once approved, receives the ID-JAG:
   ``{"access_token": <ID-JAG>, "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag",
   "token_type": "N_A", "expires_in", "scope"}``. The ID-JAG is minted at redemption from the
   identity, audience, resource and DPoP key (``cnf.jkt``) of the original exchange.

Approver: the managed connection's ``approver`` (``group:<name>``: any active user of the
tenant in that group decides) or, when it names none, the subject user.
"""

from __future__ import annotations

from typing import Any

from adapters.errors import OAuthError
from broker import ciba_notify
from broker.grants.base import TokenRequest
from broker.grants.ciba import ApprovalPending
from broker.policy import ApprovalRequired
from tenants import audit, ciba
from tenants.scope import tenant_scope


async def hold_for_approval(
    request: TokenRequest, identity: dict[str, Any], audience: str, pending: ApprovalRequired,
    details: tuple[dict[str, Any], ...] | list[dict[str, Any]],
) -> OAuthError:
    """Store the CIBA request and return the ``ApprovalPending`` to raise, or ``pending``
    itself (``invalid_scope``) when the subject is not a user of this tenant."""
    broker, tenant, client = request.broker, request.tenant, request.client.client
    decision = pending.decision
    settings = tenant.settings
    now = request.now
    async with tenant_scope(broker.sessions, tenant.id) as scope:
        user = await ciba.find_user(scope, str(identity.get("sub") or ""))
        if user is None:
            return pending
        context = {
            "kind": "id_jag", "audience": audience, "scope": list(decision.granted),
            "approve": list(pending.approve), "resource": decision.resource,
            "jkt": request.dpop.jkt if request.dpop else None,
            "remote_client_id": decision.remote_client_id, "lifetime": decision.lifetime,
            "identity": {k: v for k, v in identity.items()
                         if isinstance(v, str | int | float | list) or v is None},
        }
        auth_req_id, row = await ciba.create(
            scope, client_id=client.client_id, user_id=user.id,
            approver=pending.decision_approver or user.id,
            scope_=decision.granted, details=list(details), binding_message=None,
            delivery_mode="poll", notification_token_sealed=None, context=context,
            interval=settings.ciba_poll_interval, now=now,
            lifetime=settings.ciba_request_lifetime)
        await audit.record(scope.session, tenant.id, [audit.Event(
            "ciba.requested", "granted", client.client_id, user.id,
            {"request": row.handle[:16], "kind": "id_jag", "audience": audience,
             "scope": list(decision.granted), "approve": list(pending.approve)})], now)
    ciba_notify.announce(broker, tenant, row.handle, client.client_id, user.id, row.approver,
                         decision.granted, None, now + settings.ciba_request_lifetime)
    return ApprovalPending(auth_req_id, settings.ciba_request_lifetime,
                           settings.ciba_poll_interval)
