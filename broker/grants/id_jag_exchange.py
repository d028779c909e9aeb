"""The IdP side of ID-JAG (token exchange, ``requested_token_type=...:id-jag``), whatever the
identity assertion is: the policy and trust checks are the same for an ID token of this
tenant (``token_exchange``) and a SAML assertion of its upstream IdP (``exchange_saml_in``).

The audience must be a peer this tenant has a live trust link with, and the managed
connection for (agent, audience) decides the scopes; ``authorization_details`` (RFC 9396 §6)
are checked against the tenant's types and carried to the resource tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from adapters import rar
from adapters.errors import InvalidRequest, InvalidTarget
from broker import id_jag
from broker.grants.base import GrantResult, TokenRequest
from broker.managed_approval import hold_for_approval
from broker.policy import ApprovalRequired, ConnectionIndex, decide

# verifies the subject token (after the cheap form checks) and returns the identity an ID-JAG
# is minted from: ``sub`` and, when known, ``acr``/``amr``/``auth_time``/``email``
IdentitySource = Callable[[], Awaitable[dict[str, Any]]]


async def requested_details(request: TokenRequest) -> tuple[dict[str, Any], ...]:
    """RFC 9396 §6: ``authorization_details`` in a token request, checked against the tenant's
    registered types and the client's allowed ones."""
    details = rar.parse(request.form.get("authorization_details"))
    if details:
        rar.validate(details, await request.broker.detail_types(request.tenant.id),
                     allowed=request.client.client.authorization_details_types)
    return details


async def issue_id_jag(request: TokenRequest, identity_source: IdentitySource) -> GrantResult:
    form, broker, tenant = request.form, request.broker, request.tenant
    client_id = request.client.client.client_id
    audiences = form.all("audience")
    if len(audiences) != 1:
        raise InvalidRequest("name exactly one audience: the resource authorization server")
    audience = audiences[0]
    resources = form.all("resource")
    if len(resources) > 1:
        raise InvalidTarget("at most one resource")
    identity = await identity_source()
    if audience == tenant.issuer:
        raise InvalidTarget("an ID-JAG must cross a trust domain")
    peer = await broker.live_peer(tenant.id, audience, direction="send")
    if peer is None:
        raise InvalidTarget("this tenant has no live trust link that lets it send identity to "
                            "the audience")
    connection = await broker.managed_connection(tenant.id, client_id, audience)
    index = ConnectionIndex([connection] if connection else [])
    scope = form.get("scope")
    try:
        decision = decide(
            index, client_id=client_id, audience=audience,
            requested_scopes=scope.split() if scope is not None else None,
            resource=resources[0] if resources else None, ceiling=peer.ceiling,
        )
    except ApprovalRequired as pending:  # a person must approve: CIBA (managed_approval)
        held = await hold_for_approval(request, identity, audience, pending,
                                       await requested_details(request))
        raise held from None
    details = await requested_details(request)
    token = await id_jag.mint_id_jag(
        broker, tenant, identity=identity, audience=audience,
        remote_client_id=decision.remote_client_id, scope=decision.granted,
        lifetime=decision.lifetime, now=request.now, resource=decision.resource,
        jkt=request.dpop.jkt if request.dpop else None, authorization_details=details,
    )
    return GrantResult(
        token, decision.granted, identity["sub"],
        {"audience": audience, "scope_dropped": list(decision.dropped),
         "resource": decision.resource, "jti": token.jti},
        action="id_jag.issued", issued_token_type=id_jag.ID_JAG, token_type="N_A",
        report_scope=scope is None or decision.scope_changed,
    )
