"""Token exchange (RFC 8693) of a tenant-issued API key for a short-lived access token.

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    subject_token=tsk_<tenant>_<key_id>_<secret>
    subject_token_type=urn:tessera:params:oauth:token-type:api-key
    [requested_token_type=urn:ietf:params:oauth:token-type:access_token]
    [scope=...] [resource=... | audience=...]

Rules, in order (each refusal is ``invalid_request`` "subject_token refused: ...",
RFC 8693 §2.2.2, unless noted; none repeats the key):
  1. only an access token can be requested; no ``actor_token``, no ``authorization_details``
  2. the key is well-formed (``adapters.api_keys``)
  3. the key was issued by this tenant (the tenant is in its prefix; no lookup elsewhere)
  4. the key is known and its secret matches (the current one, or the previous one inside a
     rotation's overlap window); only then is it told whether it is revoked or expired, or
     its client disabled
  5. the authenticated client is the key's client: a key is exchanged by the agent or service
     it was issued to, never by another client of the tenant
  6. scope: the requested scopes must be within the key's (``invalid_scope`` otherwise);
     none asked: all of the key's that the client still holds
  7. audience: ``resource``/``audience`` among the client's audiences (RFC 8707)

The token: ``sub`` and ``client_id`` are the key's client (a workload identity), ``akid`` the
key id; lifetime min(300 s, the client's, the tenant's maximum, the key's remaining life);
DPoP-bound when the request carries a proof.
"""

from __future__ import annotations

from adapters import api_keys as fmt
from adapters.errors import InvalidRequest, InvalidScope
from broker import id_jag
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.client_credentials import granted_audience
from broker.runtime import Broker, TenantView
from broker.tokens import access_token_claims, mint_access_token
from tenants import api_keys

API_KEY = "urn:tessera:params:oauth:token-type:api-key"
MAX_LIFETIME = 300

REASONS = {
    "unknown": "unknown API key (or a wrong secret)",
    "revoked": "the API key was revoked",
    "expired": "the API key has expired",
    "client disabled": "the API key's client is disabled",
    "other client": "the API key belongs to another client",
    "other tenant": "the API key belongs to another tenant",
}


class KeyRefused(Exception):
    """A presented API key does not authenticate; ``description`` names why, safely."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


async def verify_api_key(
    broker: Broker, tenant: TenantView, value: str, now: float, *,
    client_id: str | None = None,
) -> api_keys.ActiveKey:
    """Parse and check a presented key at ``tenant`` (and, with ``client_id``, that it is
    that client's); raises ``KeyRefused``. Notes the key's use."""
    try:
        key = fmt.parse(value)
    except fmt.MalformedApiKey as exc:
        raise KeyRefused(str(exc)) from None
    if key.tenant != tenant.id:
        raise KeyRefused(REASONS["other tenant"])
    try:
        return await api_keys.check(broker.hot, tenant.id, key, broker.hasher, now,
                                    client_id=client_id)
    except api_keys.ApiKeyRefused as exc:
        raise KeyRefused(REASONS.get(exc.reason, exc.reason)) from None


async def issue(request: TokenRequest) -> GrantResult:
    form, tenant, client = request.form, request.tenant, request.client.client
    requested = form.get("requested_token_type") or id_jag.ACCESS_TOKEN
    if requested != id_jag.ACCESS_TOKEN:
        raise InvalidRequest("an API key is exchanged for an access token only")
    if "actor_token" in form or "actor_token_type" in form:
        raise InvalidRequest("actor_token is not accepted with an API key")
    if "authorization_details" in form:
        raise InvalidRequest("authorization_details are not accepted with an API key")
    try:
        key = await verify_api_key(request.broker, tenant, form.require("subject_token"),
                                   request.now, client_id=client.client_id)
    except KeyRefused as exc:
        raise InvalidRequest(f"subject_token refused: {exc.description}") from None
    held = [s for s in key.scopes if s in client.scopes]
    asked = form.get("scope")
    scope = tuple(dict.fromkeys(asked.split())) if asked else tuple(held)
    broader = [s for s in scope if s not in held]
    if broader:
        raise InvalidScope(f"scope broader than the API key's: {' '.join(broader)}")
    audience = granted_audience(form.all("resource") + form.all("audience"),
                                client.audiences, tenant.issuer)
    lifetime = min(MAX_LIFETIME, client.access_token_lifetime,
                   tenant.settings.max_token_lifetime)
    if key.expires_at is not None:
        lifetime = min(lifetime, int(key.expires_at - request.now))
    claims = access_token_claims(
        issuer=tenant.issuer, subject=key.client_id, client_id=client.client_id,
        audience=audience, scope=scope, now=request.now, lifetime=max(1, lifetime),
        jkt=request.dpop.jkt if request.dpop else None,
    )
    claims["akid"] = key.key_id
    token = await mint_access_token(request.broker, tenant, claims)
    return GrantResult(
        token, scope, key.client_id,
        {"grant_type": "token-exchange", "subject_token_type": API_KEY, "akid": key.key_id,
         "aud": list(audience), "previous_secret": key.via_previous},
        issued_token_type=id_jag.ACCESS_TOKEN,
    )
