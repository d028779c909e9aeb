"""Token exchange (RFC 8693) with a SAML 2.0 assertion as the subject token
(``subject_token_type=urn:ietf:params:oauth:token-type:saml2``, base64url, §3).

The assertion is checked as for the SAML bearer grant (``broker.saml_bearer``); a defective
or untrusted one is ``invalid_request`` (RFC 8693 §2.2.2). It becomes:

* ``requested_token_type=...:access_token`` (or none): an access token for its subject at this
  tenant, with the exchanging client as the actor (``act``);
* ``requested_token_type=...:id-jag``: an ID-JAG for another trust domain, decided exactly as
  for an ID token (``id_jag_exchange``). Only for a user of the tenant's upstream IdPs: a
  partner's user is not this tenant's to vouch for.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.errors import InvalidRequest
from broker import id_jag
from broker.grants.base import GrantResult, TokenRequest
from broker.grants.id_jag_exchange import issue_id_jag
from broker.grants.saml2_bearer import access_token
from broker.saml_bearer import SAMLSubject, accept


async def issue(request: TokenRequest) -> GrantResult:
    form = request.form
    requested = form.get("requested_token_type") or id_jag.ACCESS_TOKEN
    if requested not in (id_jag.ACCESS_TOKEN, id_jag.ID_JAG):
        raise InvalidRequest(f"requested_token_type {requested!r} is not supported for a SAML "
                             "subject token")
    if "actor_token" in form:
        raise InvalidRequest("actor_token is not supported with a SAML subject token")
    subject_token = form.require("subject_token")
    if requested == id_jag.ID_JAG:
        return await _id_jag(request, subject_token)
    subject = await accept(request.broker, request.tenant, subject_token, refuse=InvalidRequest)
    act = {"sub": request.client.client.client_id}
    token, scope, audience = await access_token(
        request, subject, form.all("resource") + form.all("audience"), act=act)
    return GrantResult(
        token, scope, str(token.claims["sub"]),
        {"grant_type": "token-exchange", "subject_token_type": "saml2", "aud": list(audience),
         "act": act, **subject.detail()},
        issued_token_type=id_jag.ACCESS_TOKEN, claims=(subject.claim,),
    )


async def _id_jag(request: TokenRequest, subject_token: str) -> GrantResult:
    verified: list[SAMLSubject] = []

    async def identity() -> dict[str, Any]:
        subject = await accept(request.broker, request.tenant, subject_token,
                               refuse=InvalidRequest)
        if subject.upstream is None:
            raise InvalidRequest("an ID-JAG is made only for users of this tenant's upstream "
                                 "IdPs, not for a partner's")
        verified.append(subject)
        return subject.id_jag_identity()

    result = await issue_id_jag(request, identity)
    subject = verified[0]
    return dataclasses.replace(
        result, detail={**result.detail, "subject_token_type": "saml2", **subject.detail()},
        claims=(*result.claims, subject.claim))
