"""Token exchange (RFC 8693) to a SAML 2.0 assertion for a legacy app:
``requested_token_type=urn:ietf:params:oauth:token-type:saml2``.

* ``subject_token``: an ID token this tenant issued to the requesting client
  (``subject_token_type`` id_token; not one of a trusted peer: the subject must be a user of
  this tenant), or an access token of this tenant (``...:access_token``) that was issued to the
  requesting client or names it in ``aud`` (a service passing its caller on). Either way the
  ``sub`` must be an active user of the tenant: the assertion's NameID and attributes come from
  the user record, so a client's own token (client credentials) is refused.
* ``audience``: exactly one, the entity ID of an active legacy app of the tenant that is also
  one of the requesting client's registered audiences (which apps a client may get assertions
  for), else ``invalid_target``; ``resource`` is refused (the app is named by its entity ID).
* Answer (RFC 8693 §2.2.1, RFC 7522 §2.1): ``access_token`` = base64url (no padding) of the
  signed Assertion XML, ``issued_token_type`` saml2, ``token_type`` ``N_A``, ``expires_in`` the
  assertion's lifetime. The assertion (SAML Core §2.3.3) is built by ``broker.legacy_saml``: its
  bearer SubjectConfirmation names the app's first ACS URL as Recipient (Profiles §4.1.4.2),
  its Audience the app. The token endpoint writes the audit event
  (``saml_assertion.issued``, with the assertion ID as ``jti``).
"""

from __future__ import annotations

from typing import Any

from adapters import jose, subjects
from adapters.errors import InvalidRequest, InvalidTarget, InvalidToken
from adapters.saml_assertion import SAMLError
from adapters.saml_issue import assertion_bytes
from broker import id_jag, legacy_saml
from broker.grants.base import GrantResult, TokenRequest
from broker.tokens import IssuedToken, verify_access_token
from tenants import legacy_apps, users


async def _identity(request: TokenRequest, token: str, token_type: str) -> dict[str, Any]:
    """The verified claims of the subject token."""
    broker, tenant = request.broker, request.tenant
    client_id = request.client.client.client_id
    if token_type == id_jag.ID_TOKEN:
        claims = await id_jag.verify_id_token(broker, tenant, token, client_id)
        if claims.get("iss") != tenant.issuer:
            raise InvalidRequest("subject_token must be an ID token of this tenant")
        return claims
    if token_type == id_jag.ACCESS_TOKEN:
        try:
            claims = await verify_access_token(broker, tenant, token)
        except InvalidToken as exc:
            raise InvalidRequest(f"subject_token refused: {exc.description}") from exc
        if subjects.is_foreign(claims):
            raise InvalidRequest("the subject_token's user belongs to another issuer: this "
                                 "tenant does not assert it")
        aud = claims.get("aud")
        if claims["client_id"] != client_id and client_id not in (
                aud if isinstance(aud, list) else [aud]):
            raise InvalidRequest("subject_token was issued to another client")
        return claims
    raise InvalidRequest("subject_token_type must be an ID token or an access token to get a "
                         "SAML assertion")


async def issue(request: TokenRequest) -> GrantResult:
    form, broker, tenant = request.form, request.broker, request.tenant
    token, token_type = form.require("subject_token"), form.require("subject_token_type")
    audiences = form.all("audience")
    if len(audiences) != 1:
        raise InvalidRequest("name exactly one audience: the legacy app's entity ID")
    if form.all("resource"):
        raise InvalidTarget("name the legacy app in audience, not in resource")
    identity = await _identity(request, token, token_type)
    app = await legacy_apps.read_now(broker.hot, tenant.id, audiences[0], active=True)
    user = await users.read_now(broker.hot, tenant.id, str(identity["sub"]))
    if app is None:
        raise InvalidTarget("the audience is not an active legacy app of this tenant")
    if app.entity_id not in request.client.client.audiences:
        # which apps a client may get assertions for is its registered audiences (RFC 8707)
        raise InvalidTarget("this client may not ask for assertions for that legacy app")
    if user is None or user.status != "active":
        raise InvalidRequest("the subject is not an active user of this tenant")
    auth = {"auth_time": identity.get("auth_time") or identity.get("iat"),
            "acr": identity.get("acr")}
    try:
        assertion = await legacy_saml.assertion_for(
            broker, tenant, app, user, auth, recipient=app.acs_urls[0], now=request.now)
    except SAMLError as exc:
        raise InvalidRequest(str(exc)) from exc
    lifetime = min(app.assertion_lifetime, tenant.settings.max_token_lifetime)
    claims = {"jti": assertion.get("ID"), "sub": user.id, "aud": app.entity_id,
              "iat": int(request.now), "exp": int(request.now) + lifetime}
    return GrantResult(
        IssuedToken(jose.b64url(assertion_bytes(assertion)), claims, lifetime), (), user.id,
        {"audience": app.entity_id, "name_id_format": app.name_id_format,
         "subject_token_type": token_type},
        action="saml_assertion.issued", issued_token_type=id_jag.SAML2, token_type="N_A",
        report_scope=False)
