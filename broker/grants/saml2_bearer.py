"""The SAML 2.0 bearer assertion grant (RFC 7522 §2.1): a signed assertion from an IdP the
tenant trusts (``broker.saml_bearer``) becomes an access token for its subject.

Every assertion defect is ``invalid_grant`` (RFC 7522 §3.1), a reused one too (the token
endpoint records the assertion ID with the audit event). The client authenticates as usual
(confidential clients only); the scope is within the client's allowed scopes (and, for a
partner's assertion, the trust link's ceiling); ``resource`` as for client credentials; a DPoP
proof binds the token. The token carries how the user authenticated (``acr``, ``amr``,
``auth_time``, RFC 9068 §2.2.1).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters import subjects
from adapters.errors import InvalidGrant, InvalidScope
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.client_credentials import granted_audience, granted_scopes
from broker.saml_bearer import SAMLSubject, accept
from broker.tokens import IssuedToken, access_token_claims, mint_access_token

SAML2_BEARER = "urn:ietf:params:oauth:grant-type:saml2-bearer"


def _scope(request: TokenRequest, subject: SAMLSubject) -> tuple[str, ...]:
    """The client's registered scopes (or the asked subset), and for a partner's user also
    within the trust link's ceiling; an empty intersection of asked and allowed is
    ``invalid_scope``."""
    asked = request.form.get("scope")
    granted = granted_scopes(asked, request.client.client.scopes)
    ceiling = subject.peer.ceiling if subject.peer is not None else None
    if ceiling is None:
        return granted
    outside = [s for s in granted if s not in ceiling]
    if asked is not None and outside:
        raise InvalidScope(f"scope beyond this tenant's trust in the issuer: {' '.join(outside)}")
    within = tuple(s for s in granted if s in ceiling)
    if not within and granted:
        raise InvalidScope("none of the client's scopes is within this tenant's trust in the "
                           "issuer")
    return within


async def access_token(request: TokenRequest, subject: SAMLSubject, resources: list[str], *,
                       act: dict[str, Any] | None = None
                       ) -> tuple[IssuedToken, tuple[str, ...], tuple[str, ...]]:
    """The access token for a verified assertion's subject: (token, scope, audience)."""
    tenant, client = request.tenant, request.client.client
    scope = _scope(request, subject)
    audience = granted_audience(resources, client.audiences, tenant.issuer)
    lifetime = min(client.access_token_lifetime, tenant.settings.max_token_lifetime)
    claims = access_token_claims(
        issuer=tenant.issuer, subject=subject.token_sub(tenant.id), client_id=client.client_id,
        audience=audience, scope=scope, now=request.now, lifetime=lifetime,
        jkt=request.dpop.jkt if request.dpop else None,
    )
    claims.update({k: v for k, v in subject.auth.items() if v is not None})
    if subject.peer is not None:  # a partner's user stays the partner's (adapters.subjects)
        claims["sub_id"] = subjects.sub_id(subject.peer.issuer, subject.sub)
    if act:
        claims["act"] = act
    token = await mint_access_token(request.broker, tenant, claims)
    return token, scope, audience


class SAML2BearerGrant:
    grant_type: ClassVar[str] = SAML2_BEARER
    stateful: ClassVar[bool] = False
    public: ClassVar[bool] = False

    async def issue(self, request: TokenRequest) -> GrantResult:
        assertion = request.form.require("assertion")
        subject = await accept(request.broker, request.tenant, assertion, refuse=InvalidGrant)
        token, scope, audience = await access_token(request, subject,
                                                    request.form.all("resource"))
        return GrantResult(
            token, scope, str(token.claims["sub"]),
            {"grant_type": "saml2-bearer", "aud": list(audience), **subject.detail()},
            claims=(subject.claim,),
        )
