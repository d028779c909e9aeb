"""Legacy apps of a tenant: SAML 2.0 service providers that receive tessera's signed assertions
(token exchange output, SP-initiated SSO). Register from fields or from the app's SP metadata
(Metadata §2.4.4), list, change, disable and enable, delete.

Checks at registration and at every change (the whole app is checked again): the entity ID
is an absolute URI (Core §8.3.6, at most 512 characters here); every ACS URL is https (http
only to a loopback host when the deployment allows it, in development), without a fragment;
the NameID format is persistent, emailAddress, transient or unspecified; the attribute mapping
names SAML attributes and the user claim each carries (``email``, ``name``, ``groups``,
``sub``, or a custom claim the upstream mapping stored); an app that wants signed AuthnRequests
has at least one certificate. The ACS list is the only place
a Response is ever posted to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import bindparam, select

from adapters.errors import Conflict
from adapters.saml_assertion import SAMLError
from adapters.saml_authn_request import parse_sp_metadata
from adapters.saml_issue import NAMEID_FORMATS
from tenants import audit
from tenants.hotpath import HotPath
from tenants.models import LegacyApp
from tenants.scope import TenantScope

MAX_ACS = 20
MAX_ATTRIBUTES = 50
MIN_LIFETIME, MAX_LIFETIME = 30, 3_600
CLAIM = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
STATUSES = ("active", "disabled")


class LegacyAppError(ValueError):
    """A registration that cannot be accepted; the message says why."""


@dataclass(frozen=True)
class LegacyAppView:
    entity_id: str
    name: str
    acs_urls: tuple[str, ...]
    name_id_format: str
    attribute_mapping: dict[str, str]
    want_authn_requests_signed: bool
    sp_certs: tuple[str, ...]
    assertion_lifetime: int
    status: str

    def as_json(self) -> dict[str, Any]:
        return {"entity_id": self.entity_id, "name": self.name, "acs_urls": list(self.acs_urls),
                "name_id_format": self.name_id_format,
                "attribute_mapping": dict(self.attribute_mapping),
                "want_authn_requests_signed": self.want_authn_requests_signed,
                "sp_certs": len(self.sp_certs), "assertion_lifetime": self.assertion_lifetime,
                "status": self.status}


def _view(row: LegacyApp) -> LegacyAppView:
    return LegacyAppView(row.entity_id, row.name, tuple(row.acs_urls or ()), row.name_id_format,
                         dict(row.attribute_mapping or {}), bool(row.want_authn_requests_signed),
                         tuple(row.sp_certs or ()), int(row.assertion_lifetime), row.status)


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_acs(url: Any, *, allow_http_loopback: bool) -> str:
    if not isinstance(url, str) or len(url) > 1024:
        raise LegacyAppError("an ACS URL must be a string of at most 1024 characters")
    parts = urlsplit(url)
    if parts.fragment or not parts.hostname:
        raise LegacyAppError(f"ACS URL {url!r}: absolute, without a fragment")
    if parts.scheme == "https" or (
            parts.scheme == "http" and allow_http_loopback and _loopback(parts.hostname)):
        return url
    raise LegacyAppError(f"ACS URL {url!r} must be https"
                         + (" (or http on a loopback host)" if allow_http_loopback else ""))


def _entity_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 512 or value != value.strip():
        raise LegacyAppError("entity_id: an absolute URI of at most 512 characters")
    if any(c.isspace() for c in value) or not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:.", value):
        raise LegacyAppError("entity_id must be an absolute URI (https://... or urn:...)")
    return value


def _mapping(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise LegacyAppError(f"attribute_mapping: an object of at most {MAX_ATTRIBUTES} entries")
    for name, claim in value.items():
        if not isinstance(name, str) or not name or len(name) > 256:
            raise LegacyAppError("attribute_mapping keys are SAML attribute names")
        if not isinstance(claim, str) or not CLAIM.match(claim):
            raise LegacyAppError(f"attribute_mapping[{name!r}] must name a user claim")
    return dict(value)


def _certs(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise LegacyAppError("sp_certs must be a list of PEM certificates")
    for pem in value:
        try:
            x509.load_pem_x509_certificate(pem.encode())
        except ValueError as exc:
            raise LegacyAppError("sp_certs: unreadable PEM certificate") from exc
    return list(value)


def validate(body: dict[str, Any], *, allow_http_loopback: bool) -> dict[str, Any]:
    """The columns of a new app from its JSON fields, checked."""
    unknown = set(body) - {"entity_id", "name", "acs_urls", "name_id_format", "metadata",
                           "attribute_mapping", "want_authn_requests_signed", "sp_certs",
                           "assertion_lifetime"}
    if unknown:
        raise LegacyAppError(f"unknown fields: {', '.join(sorted(unknown))}")
    entity_id = _entity_id(body.get("entity_id"))
    acs = body.get("acs_urls")
    if not isinstance(acs, list | tuple) or not acs or len(acs) > MAX_ACS:
        raise LegacyAppError(f"acs_urls: a list of 1 to {MAX_ACS} URLs")
    fmt = body.get("name_id_format", "persistent")
    if fmt not in NAMEID_FORMATS:
        raise LegacyAppError(f"name_id_format: one of {', '.join(NAMEID_FORMATS)}")
    lifetime = body.get("assertion_lifetime", 300)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not (
            MIN_LIFETIME <= lifetime <= MAX_LIFETIME):
        raise LegacyAppError(f"assertion_lifetime: {MIN_LIFETIME} to {MAX_LIFETIME} seconds")
    signed = body.get("want_authn_requests_signed", False)
    if not isinstance(signed, bool):
        raise LegacyAppError("want_authn_requests_signed must be a boolean")
    certs = _certs(body.get("sp_certs", []))
    if signed and not certs:
        raise LegacyAppError("an app that signs its AuthnRequests needs sp_certs")
    name = body.get("name") or entity_id
    if not isinstance(name, str) or len(name) > 200:
        raise LegacyAppError("name: at most 200 characters")
    return {"entity_id": entity_id, "name": name,
            "acs_urls": list(dict.fromkeys(check_acs(u, allow_http_loopback=allow_http_loopback)
                                           for u in acs)),
            "name_id_format": fmt, "attribute_mapping": _mapping(body.get("attribute_mapping", {})),
            "want_authn_requests_signed": signed, "sp_certs": certs,
            "assertion_lifetime": lifetime}


def from_metadata(xml: str | bytes, overrides: dict[str, Any]) -> dict[str, Any]:
    """JSON fields from an SP's metadata; ``overrides`` (name, mapping, ...) win over it."""
    try:
        sp = parse_sp_metadata(xml.encode() if isinstance(xml, str) else xml)
    except SAMLError as exc:
        raise LegacyAppError(f"SP metadata: {exc}") from exc
    fields: dict[str, Any] = {"entity_id": sp.entity_id, "acs_urls": list(sp.acs_urls),
                              "want_authn_requests_signed": sp.authn_requests_signed,
                              "sp_certs": list(sp.certs)}
    if sp.name_id_format:
        fields["name_id_format"] = sp.name_id_format
    return {**fields, **{k: v for k, v in overrides.items() if k != "metadata"}}


async def create(scope: TenantScope, body: dict[str, Any], *, now: float,
                 allow_http_loopback: bool) -> LegacyAppView:
    """Register an app from its fields, or from ``metadata`` (SP metadata XML) plus fields."""
    if isinstance(body.get("metadata"), str | bytes):
        body = from_metadata(body["metadata"], body)
    fields = validate(body, allow_http_loopback=allow_http_loopback)
    if await scope.get(LegacyApp, fields["entity_id"]) is not None:
        raise Conflict(f"legacy app {fields['entity_id']!r} exists")
    row = scope.add(LegacyApp(**fields, status="active", created_at=now))
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "legacy_app.created", "changed", None, None,
        {"entity_id": fields["entity_id"], "acs_urls": fields["acs_urls"],
         "name_id_format": fields["name_id_format"]})], now)
    await scope.session.flush()
    return _view(row)


async def list_apps(scope: TenantScope) -> Sequence[LegacyAppView]:
    rows = (await scope.session.execute(select(LegacyApp).order_by(LegacyApp.entity_id)))
    return [_view(r) for r in rows.scalars().all()]


def _plausible(entity_id: str) -> bool:
    return bool(entity_id) and len(entity_id) <= 512  # the column's size


def _found(row: Any, active: bool) -> LegacyAppView | None:
    """The view of a row read either way (with ``active``: only while it is active)."""
    if row is None or (active and row.status != "active"):
        return None
    return _view(row)


async def get(scope: TenantScope, entity_id: str, *, active: bool = False
              ) -> LegacyAppView | None:
    """The app with this entity ID (with ``active``: only while it is active)."""
    if not _plausible(entity_id):
        return None
    return _found(await scope.get(LegacyApp, entity_id), active)


_A = LegacyApp.__table__
_BY_ENTITY_ID = select(_A).where(_A.c.tenant_id == bindparam("tenant_id"),
                                 _A.c.entity_id == bindparam("entity_id"))


async def read_now(hot: HotPath, tenant_id: str, entity_id: str, *, active: bool = False
                   ) -> LegacyAppView | None:
    """``get`` as one statement on the hot path's connection (the token exchange to SAML reads
    it on every request; an ORM session on aiosqlite cost ~1 ms of CPU per read)."""
    if not _plausible(entity_id):
        return None
    return _found(await hot.read_one(_BY_ENTITY_ID, {"tenant_id": tenant_id,
                                                     "entity_id": entity_id}), active)


CHANGEABLE = ("name", "acs_urls", "name_id_format", "attribute_mapping",
              "want_authn_requests_signed", "sp_certs", "assertion_lifetime")


async def update(scope: TenantScope, entity_id: str, changes: dict[str, Any], *, now: float,
                 allow_http_loopback: bool) -> LegacyAppView | None:
    """Apply ``changes`` (names of ``CHANGEABLE``) if the whole app still validates; None
    when there is no such app. The entity ID is the app's identity: register a new one."""
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise LegacyAppError(f"cannot change {', '.join(sorted(unknown))}")
    row = await scope.get(LegacyApp, entity_id)
    if row is None:
        return None
    current = {"entity_id": row.entity_id, **{n: getattr(row, n) for n in CHANGEABLE}}
    fields = validate({**current, **changes}, allow_http_loopback=allow_http_loopback)
    for name in changes:
        setattr(row, name, fields[name])
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "legacy_app.updated", "changed", None, None,
        {"entity_id": entity_id, "changed": sorted(changes)})], now)
    return _view(row)


async def remove(scope: TenantScope, entity_id: str, *, now: float) -> LegacyAppView | None:
    """Delete the registration (configuration only; the audit chain keeps what it was)."""
    row = await scope.get(LegacyApp, entity_id)
    if row is None:
        return None
    view = _view(row)
    await scope.session.delete(row)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "legacy_app.deleted", "revoked", None, None, {"entity_id": entity_id})], now)
    return view


async def set_status(scope: TenantScope, entity_id: str, status: str, *,
                     now: float) -> LegacyAppView | None:
    if status not in STATUSES:
        raise LegacyAppError(f"status: one of {', '.join(STATUSES)}")
    row = await scope.get(LegacyApp, entity_id)
    if row is None:
        return None
    row.status = status
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        f"legacy_app.{'disabled' if status == 'disabled' else 'enabled'}", "changed", None,
        None, {"entity_id": entity_id})], now)
    return _view(row)
