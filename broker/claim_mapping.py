"""Claim mapping: which upstream claim (OIDC) or attribute (SAML) becomes the tenant user's
subject link, ``email``, ``name``, ``groups`` and custom claims; and how the upstream's
authentication context (``acr``, ``amr``, ``auth_time`` / AuthnContext) carries through.

A mapping is a JSON object; each field names one source or a list of sources tried in order::

    {"subject": "oid", "email": ["email", "upn"], "name": "name", "groups": "groups",
     "claims": {"department": "dept"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenants.users import Profile

OIDC_DEFAULT: dict[str, Any] = {"subject": "sub", "email": "email", "name": "name",
                                "groups": "groups", "claims": {}}
SAML_DEFAULT: dict[str, Any] = {
    "subject": "NameID",
    "email": ["email", "mail", "urn:oid:0.9.2342.19200300.100.1.3", "emailAddress"],
    "name": ["name", "displayName", "cn", "urn:oid:2.16.840.1.113730.3.1.241"],
    "groups": ["groups", "memberOf", "eduPersonAffiliation"],
    "claims": {},
}
FIELDS = ("subject", "email", "name", "groups", "claims")
# SAML AuthnContextClassRef -> RFC 8176 amr values
_AMR = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password": "pwd",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport": "pwd",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:X509": "sc",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard": "sc",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI": "sc",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos": "kba",
    "https://refeds.org/profile/mfa": "mfa",
    "http://schemas.microsoft.com/claims/multipleauthn": "mfa",
}


class MappingError(ValueError):
    """The mapping is malformed, or the upstream identity lacks the subject it names."""


def check(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping as a tenant admin registers it, merged over nothing (defaults apply later)."""
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise MappingError(f"unknown mapping fields: {', '.join(sorted(unknown))}")
    for name in ("subject", "email", "name", "groups"):
        if name in mapping and not _is_sources(mapping[name]):
            raise MappingError(f"mapping.{name}: a claim name or a list of claim names")
    claims = mapping.get("claims", {})
    if not isinstance(claims, dict) or not all(
            isinstance(k, str) and _is_sources(v) for k, v in claims.items()):
        raise MappingError("mapping.claims: an object of claim name -> source(s)")
    return dict(mapping)


def _is_sources(value: object) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, str) and v for v in value)


def _first(source: Mapping[str, Any], names: str | list[str]) -> Any:
    for name in [names] if isinstance(names, str) else names:
        value = source.get(name)
        if value not in (None, "", []):
            return value
    return None


def _scalar(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, dict):
        return None
    return str(value)[:512]


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    return tuple(str(v)[:256] for v in values if isinstance(v, str | int))[:200]


def profile(source: Mapping[str, Any], mapping: Mapping[str, Any],
            default: Mapping[str, Any]) -> Profile:
    """The user profile an upstream identity maps to (``source``: claims, or SAML attributes
    plus ``NameID``)."""
    rules = {**default, **mapping}
    subject = _scalar(_first(source, rules["subject"]))
    if not subject:
        raise MappingError("the upstream identity has no value for the mapped subject")
    custom: dict[str, Any] = {}
    for claim, names in dict(rules.get("claims") or {}).items():
        value = _first(source, names)
        if value is not None:
            custom[claim] = value if isinstance(value, str | int | bool) else _strings(value)
    custom = {k: list(v) if isinstance(v, tuple) else v for k, v in custom.items()}
    if isinstance(source.get("email_verified"), bool):  # OIDC Core §5.1, kept with the email
        custom["email_verified"] = source["email_verified"]
    return Profile(subject=subject, email=_scalar(_first(source, rules["email"])),
                   name=_scalar(_first(source, rules["name"])),
                   groups=_strings(_first(source, rules["groups"])), claims=custom)


def saml_auth(class_ref: str | None, instant: float | None) -> dict[str, Any]:
    amr = _AMR.get(class_ref or "")
    return {"acr": class_ref, "amr": [amr] if amr else None,
            "auth_time": int(instant) if instant is not None else None}
