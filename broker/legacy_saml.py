"""A tenant as a SAML 2.0 IdP for its legacy apps: what an assertion about one of its users says
to one app, and the key it is signed with. Shared by the token exchange output
(``grants/exchange_saml_out``) and SP-initiated SSO (``endpoints/saml_idp``).

* Entity ID: ``{issuer}/saml/idp/metadata`` (where the metadata is served, like tessera's SP
  entity IDs). SSO endpoint: ``{issuer}/saml/idp/sso``.
* Key: the tenant's active signing key through the key service (``KeyService.raw_signer``):
  ES256 -> ECDSA-SHA256, RS256 -> RSA-SHA256; an EdDSA tenant cannot issue SAML (no SAML SP
  verifies Ed25519 signatures). The private key never leaves the key service.
* NameID (Core §8.3) per the app's format: ``persistent`` is pairwise, HMAC-SHA256 of (app,
  user) under a per-tenant secret derived from the master key (stable for the deployment,
  unrelated across apps and tenants); ``emailAddress`` is the user's e-mail (refused without
  one); ``transient`` is random per assertion; ``unspecified`` is the user's ``sub``.
* AttributeStatement (Core §2.7.3): the app's mapping {SAML attribute: user claim}; claims are
  ``email``, ``name``, ``groups``, ``sub`` or a custom claim stored from the upstream mapping;
  absent claims are left out, lists become several AttributeValues.
* AuthnStatement (Core §2.7.2): AuthnInstant = the login's ``auth_time``; the class reference
  is the login's ``acr`` when it is a URI, else PasswordProtectedTransport.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Any

from lxml import etree

from adapters.saml_assertion import AC_PASSWORD_PROTECTED, SAMLError
from adapters.saml_issue import (
    NAMEID_FORMATS,
    SIGNATURE_METHODS,
    IdPKey,
    Subject,
    issue_assertion,
    persistent_name_id,
    transient_name_id,
)
from broker.config import Settings
from broker.runtime import Broker, TenantView
from tenants.legacy_apps import LegacyAppView
from tenants.models import User


def idp_entity_id(tenant: TenantView) -> str:
    return f"{tenant.issuer}/saml/idp/metadata"


def sso_url(tenant: TenantView) -> str:
    return f"{tenant.issuer}/saml/idp/sso"


async def idp_key(broker: Broker, tenant: TenantView) -> IdPKey:
    """The tenant's active key as a SAML signer; ``SAMLError`` for a key SAML cannot use."""
    signer = await broker.keys.raw_signer(tenant.id)
    if signer.alg not in SIGNATURE_METHODS:
        raise SAMLError(f"this tenant signs with {signer.alg}; SAML needs ES256 or RS256 keys")
    return IdPKey(signer.alg, signer.certificate, signer.sign)


@functools.lru_cache(maxsize=64)
def _pairwise_secret(settings: Settings, tenant_id: str) -> bytes:
    return hmac.new(settings.key_root_bytes(), b"tessera saml persistent nameid v1|"
                    + tenant_id.encode(), hashlib.sha256).digest()


def name_id(broker: Broker, tenant: TenantView, app: LegacyAppView, user: User) -> str:
    fmt = app.name_id_format
    if fmt == "persistent":
        return persistent_name_id(_pairwise_secret(broker.settings, tenant.id), app.entity_id,
                                  user.id)
    if fmt == "emailAddress":
        if not user.email:
            raise SAMLError("the app identifies users by e-mail and this user has none")
        return user.email
    if fmt == "transient":
        return transient_name_id()
    return user.id


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list | tuple):
        return [v for item in value for v in _values(item)]
    if isinstance(value, dict):
        return []
    return [str(value)]


def attributes(app: LegacyAppView, user: User) -> dict[str, list[str]]:
    standard = {"email": user.email, "name": user.name, "groups": list(user.groups or []),
                "sub": user.id}
    result: dict[str, list[str]] = {}
    for name, claim in app.attribute_mapping.items():
        value = standard[claim] if claim in standard else (user.claims or {}).get(claim)
        if values := _values(value):
            result[name] = values
    return result


def subject(broker: Broker, tenant: TenantView, app: LegacyAppView, user: User,
            auth: dict[str, Any], *, session_index: str | None = None) -> Subject:
    acr = auth.get("acr")
    auth_time = auth.get("auth_time")
    return Subject(
        name_id=name_id(broker, tenant, app, user),
        name_id_format=NAMEID_FORMATS[app.name_id_format],
        attributes=attributes(app, user),
        authn_instant=float(auth_time) if isinstance(auth_time, int | float) else None,
        authn_context_class_ref=acr if isinstance(acr, str) and ":" in acr
        else AC_PASSWORD_PROTECTED,
        session_index=session_index)


async def assertion_for(broker: Broker, tenant: TenantView, app: LegacyAppView, user: User,
                        auth: dict[str, Any], *, recipient: str, now: float,
                        in_response_to: str | None = None, session_index: str | None = None,
                        key: IdPKey | None = None) -> etree._Element:
    """A signed Assertion about ``user`` for ``app``, confirmed for ``recipient`` (an ACS)."""
    return issue_assertion(
        key or await idp_key(broker, tenant),
        subject(broker, tenant, app, user, auth, session_index=session_index),
        issuer=idp_entity_id(tenant), audience=app.entity_id, now=now,
        lifetime=min(app.assertion_lifetime, tenant.settings.max_token_lifetime),
        recipient=recipient, in_response_to=in_response_to)
