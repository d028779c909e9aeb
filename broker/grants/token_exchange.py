"""Token exchange (RFC 8693) in two roles:

* ``requested_token_type=...:id-jag``: the IdP side of ID-JAG. The agent presents a user's ID
  token issued by this tenant to this agent, or its refresh token (not rotated by this); the
  audience must be a peer this tenant has a live trust link with, and the managed connection
  for (agent, audience) decides the scopes
  (``id_jag_exchange``, shared with a SAML assertion as the subject token).
* ``requested_token_type=...:access_token`` (or none): on-behalf-of inside one tenant. An
  access token of this tenant becomes one for another audience of the same tenant, scopes only
  narrowed, ``act`` nesting the actor chain. The subject token must have been meant for the
  caller (its ``aud`` names this tenant's issuer or token endpoint, the caller's client_id or
  one of the caller's registered audiences); a sender-constrained subject token (``cnf``)
  needs the same proof from the caller (a DPoP proof of its key, its TLS client certificate)
  and the new token is bound the same way; a subject from another issuer keeps ``sub`` and
  ``sub_id``, so revoking its partner or suspending the trust ends the derived token too.

``authorization_details`` (RFC 9396 §6) are checked against the tenant's types; an ID-JAG
carries them to the resource tenant, and on-behalf-of only narrows the subject token's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters import rar
from adapters.errors import (
    InvalidAuthorizationDetails,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
)
from broker import id_jag
from broker.grants import exchange_api_key, exchange_saml_in, exchange_saml_out
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.client_credentials import granted_audience
from broker.grants.exchange_api_key import API_KEY
from broker.grants.id_jag_exchange import issue_id_jag, requested_details
from broker.tokens import access_token_claims, mint_access_token, verify_access_token


def _check_meant_for_caller(request: TokenRequest, subject: dict[str, Any]) -> None:
    """The subject token's ``aud`` must name this authorization server (issuer or token
    endpoint) or the caller (its client_id or a resource it is registered for): a token sent to
    someone else is not the caller's to exchange."""
    tenant, client = request.tenant, request.client.client
    aud = subject.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    accepted = {tenant.issuer, f"{tenant.issuer}/token", client.client_id, *client.audiences}
    if not any(isinstance(a, str) and a in accepted for a in audiences):
        raise InvalidRequest("subject_token was not issued for this client or this "
                             "authorization server (its aud names neither)")


def _sender_constraint(request: TokenRequest,
                       subject: dict[str, Any]) -> tuple[str | None, str | None]:
    """RFC 9449 §6 / RFC 8705 §3: a bound subject token is exchanged only with the same proof,
    and the new token keeps the binding. Returns (``jkt``, ``x5t#S256``) for the new token."""
    cnf = subject.get("cnf") if isinstance(subject.get("cnf"), dict) else {}
    jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")
    proof = request.dpop.jkt if request.dpop else None
    if jkt is not None and proof != jkt:
        raise InvalidRequest("subject_token is DPoP-bound: send a DPoP proof signed with its key")
    if x5t is not None and request.presented_x5t != x5t:
        raise InvalidRequest("subject_token is bound to a TLS client certificate: present that "
                             "certificate")
    return proof, x5t or request.cert_thumbprint


def _actor(client_id: str, prior: dict[str, Any] | None) -> dict[str, Any]:
    """RFC 8693 §4.1: the current actor on top, earlier actors nested inside."""
    return {"sub": client_id, **({"act": prior} if prior else {})}


class TokenExchangeGrant:
    grant_type: ClassVar[str] = id_jag.TOKEN_EXCHANGE
    stateful: ClassVar[bool] = False
    public: ClassVar[bool] = False

    async def issue(self, request: TokenRequest) -> GrantResult:
        form = request.form
        subject_token = form.require("subject_token")
        subject_type = form.require("subject_token_type")
        requested = form.get("requested_token_type") or id_jag.ACCESS_TOKEN
        # translation (issue 5): each credential format has its own module
        if requested == id_jag.SAML2:
            return await exchange_saml_out.issue(request)
        if subject_type == API_KEY:
            return await exchange_api_key.issue(request)
        if subject_type == id_jag.SAML2:
            return await exchange_saml_in.issue(request)
        if requested == id_jag.ID_JAG:
            return await self._id_jag(request, subject_token, subject_type)
        if requested == id_jag.ACCESS_TOKEN:
            return await self._on_behalf_of(request, subject_token, subject_type)
        raise InvalidRequest(f"requested_token_type {requested!r} is not supported")

    async def _id_jag(
        self, request: TokenRequest, subject_token: str, subject_type: str
    ) -> GrantResult:
        if subject_type not in (id_jag.ID_TOKEN, id_jag.REFRESH_TOKEN):
            raise InvalidRequest(f"subject_token_type {subject_type!r} is not accepted for an "
                                 "ID-JAG (use an ID token or a refresh token)")
        client_id = request.client.client.client_id

        async def identity() -> dict[str, Any]:
            if subject_type == id_jag.REFRESH_TOKEN:
                return await id_jag.verify_refresh_token(
                    request.broker, request.tenant, subject_token, client_id,
                    request.dpop.jkt if request.dpop else None)
            return await id_jag.verify_id_token(request.broker, request.tenant, subject_token,
                                                client_id)

        return await issue_id_jag(request, identity)

    async def _on_behalf_of(
        self, request: TokenRequest, subject_token: str, subject_type: str
    ) -> GrantResult:
        form, broker, tenant = request.form, request.broker, request.tenant
        client = request.client.client
        if subject_type != id_jag.ACCESS_TOKEN:
            raise InvalidRequest("on-behalf-of exchange takes an access token as subject_token")
        try:
            subject = await verify_access_token(broker, tenant, subject_token)
        except InvalidToken as exc:
            raise InvalidRequest(f"subject_token refused: {exc.description}") from exc
        _check_meant_for_caller(request, subject)
        jkt, x5t = _sender_constraint(request, subject)
        actor = None
        if "actor_token" in form:
            if form.get("actor_token_type") != id_jag.ACCESS_TOKEN:
                raise InvalidRequest("actor_token_type must be an access token type")
            try:
                actor = await verify_access_token(broker, tenant, form.require("actor_token"))
            except InvalidToken as exc:
                raise InvalidRequest(f"actor_token refused: {exc.description}") from exc
            if actor["client_id"] != client.client_id:
                raise InvalidRequest("the actor_token belongs to another client")
        held_details = subject.get("authorization_details") or []
        details = await requested_details(request)
        if details and not rar.covered(details, held_details):
            raise InvalidAuthorizationDetails("authorization_details broader than the subject "
                                              "token's")
        details = details or tuple(held_details)
        held = set(str(subject.get("scope", "")).split())
        asked = form.get("scope")
        wanted = tuple(dict.fromkeys(asked.split())) if asked else tuple(
            s for s in str(subject.get("scope", "")).split() if s in client.scopes)
        broader = [s for s in wanted if s not in held]
        if broader:
            raise InvalidScope(f"scope broader than the subject token's: {' '.join(broader)}")
        outside = [s for s in wanted if s not in client.scopes]
        if outside:
            raise InvalidScope(f"scope not allowed for this client: {' '.join(outside)}")
        audience = granted_audience(form.all("resource") + form.all("audience"),
                                    client.audiences, tenant.issuer)
        prior = subject.get("act")
        if prior is None and subject["client_id"] != subject["sub"]:
            prior = {"sub": subject["client_id"]}
        act = _actor(client.client_id, prior)
        if actor is not None and actor.get("sub") != client.client_id:
            act = _actor(str(actor["sub"]), act)
        remaining = int(subject["exp"] - request.now)
        lifetime = max(1, min(client.access_token_lifetime, remaining,
                              tenant.settings.max_token_lifetime))
        claims = access_token_claims(
            issuer=tenant.issuer, subject=str(subject["sub"]), client_id=client.client_id,
            audience=audience, scope=wanted, now=request.now, lifetime=lifetime,
            jkt=jkt, authorization_details=details, x5t=x5t,
        )
        if "sub_id" in subject:  # another issuer's user stays theirs (adapters.subjects)
            claims["sub_id"] = subject["sub_id"]
        claims.update({k: subject[k] for k in ("auth_time", "acr", "amr") if k in subject})
        claims["act"] = act
        token = await mint_access_token(broker, tenant, claims)
        return GrantResult(
            token, wanted, str(subject["sub"]),
            {"grant_type": "token-exchange", "aud": list(audience), "act": act,
             "subject_jti": subject["jti"]},
            issued_token_type=id_jag.ACCESS_TOKEN,
            extra={"authorization_details": list(details)} if details else {},
        )
