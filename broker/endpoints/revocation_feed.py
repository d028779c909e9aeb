"""The revocation feed for resource servers that validate access tokens locally:
``GET /t/{tenant}/revocations`` answers a signed revocation list, a JWT

    header  {"typ": "revocation-list+jwt", "alg": <the tenant's>, "kid": <a key in its JWKS>}
    claims  {"iss": <issuer>, "iat": now, "exp": now + 60,
             "jtis": [revoked access token jti, unexpired],
             "grants": [grant id whose every token is revoked],
             "cutoffs": [{"kind": client|user|partner|tenant, "subject": ..., "not_before": t}],
             "inactive_clients": [client_id suspended, retired, disabled or expired],
             "inactive_issuers": [sub_id.iss whose trust link is no longer live],
             "compromised_keys": [{"kid", "jkt" (RFC 7638 thumbprint), "at"}]}

A token is revoked when its ``jti`` is listed, its ``jti`` is ``{grant}.{n}`` with the grant
listed, a cutoff of its client (``client_id``), user (``sub``), partner (``sub_id.iss``) or
the tenant (subject = tenant id) has ``iat <= not_before``, its ``client_id`` is inactive, or
its ``sub_id.iss`` is an inactive issuer. Every token (and SAML assertion) signed by a key in
``compromised_keys`` is to be refused whatever its ``iat`` (``tessera keys compromise``: the
key has also left the JWKS, but a receiver's cached copy may still hold it). Verify the list
with the tenant's JWKS (the keys the resource server already uses for tokens), refuse it
when ``exp`` has passed, and poll again within ``Cache-Control: max-age`` (15 s): a receiver
that cannot refresh before ``exp`` should fail closed. The answer carries an ``ETag`` of the
list's content (``iat``/``exp`` aside): a poll with ``If-None-Match`` of an unchanged list is a
bodiless 304, which confirms the copy the receiver holds as current
(``broker.resource_server.feed`` counts its staleness from then).

Why a pulled signed list rather than pushed Security Event Tokens (RFC 8417/8935): pull needs
no receiver registry and no delivery retries, works for resource servers tessera cannot reach
(behind NAT or firewalls, scaled to zero), and a receiver that was down simply catches up on
its next fetch with the complete state instead of replaying missed events. Its freshness is
bounded by the polling interval; tessera's own checks (introspection, the demo resource, the
token endpoint, ID-JAG redemption) never depend on the feed: they read the database on every
request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.errors import OAuthError
from broker.errors import error_response
from broker.runtime import Broker
from tenants import agents, revocation_cutoffs
from tenants.keys import compromised
from tenants.models import Client, TrustLink
from tenants.scope import tenant_scope

TYP = "revocation-list+jwt"
LIFETIME = 60
MAX_AGE = 15


async def revocation_list(broker: Broker, tenant_id: str) -> dict[str, Any]:
    """The claims of the tenant's revocation list now."""
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant_id) as scope:
        cutoffs, tokens = await revocation_cutoffs.listed(scope, now)
        clients = (await scope.session.execute(
            select(Client.client_id, Client.status, Client.expires_at)
            .where((Client.status != "active") | Client.expires_at.is_not(None))
            .order_by(Client.client_id))).all()
        issuers = sorted({i for (i,) in (await scope.session.execute(
            select(TrustLink.issuer))).all()})
        bad_keys = await compromised.listed(scope.session, tenant_id)
    inactive_issuers = [i for i in issuers
                        if await broker.live_peer(tenant_id, i, direction="accept") is None]
    iat = int(now)
    return {
        "iss": broker.issuer(tenant_id), "iat": iat, "exp": iat + LIFETIME,
        "jtis": [t.jti for t in tokens if not t.jti.startswith("grant:")],
        "grants": [t.jti.removeprefix("grant:") for t in tokens if t.jti.startswith("grant:")],
        "cutoffs": [{"kind": c.kind, "subject": c.subject, "not_before": c.not_before}
                    for c in cutoffs],
        "inactive_clients": [c.client_id for c in clients
                             if not agents.is_live(c.status, c.expires_at, now)],
        "inactive_issuers": inactive_issuers,
        "compromised_keys": bad_keys,
    }


async def revocations(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
    except OAuthError as exc:
        return error_response(exc)
    claims = await revocation_list(broker, tenant.id)
    content = {k: v for k, v in claims.items() if k not in ("iat", "exp")}
    etag = '"' + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32] \
        + '"'
    headers = {"Cache-Control": f"public, max-age={MAX_AGE}", "ETag": etag}
    asked = request.headers.get("if-none-match", "")
    if etag in [t.strip().removeprefix("W/") for t in asked.split(",")]:
        return Response(status_code=304, headers=headers)
    token = await broker.keys.sign(tenant.id, {"typ": TYP}, claims)
    return Response(token, media_type="application/jwt", headers=headers)


def routes() -> list[Route]:
    return [Route("/t/{tenant}/revocations", revocations, methods=["GET"])]
