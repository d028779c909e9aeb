"""A tenant's OAuth clients: register, change, rotate the secret, change the status.

The registration rules hold for a new client and for every change (the merged result is
checked as a whole): the auth method's credentials (a JWKS of public keys for
``private_key_jwt``; certificates in ``x5c`` for ``self_signed_tls_client_auth``; exactly one
``tls_client_auth_*`` name for ``tls_client_auth``, RFC 8705 §2), redirect URIs (RFC 6749
§3.1.2, RFC 8252 §7), a public client's redirect URIs, CIBA delivery. Secrets are made here,
returned once and stored as keyed hashes; a rotation keeps the previous hash valid for an
overlap window. Every change moves the tenant's directory epoch on and is audited.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from adapters import mtls
from adapters.errors import Conflict
from adapters.urls import is_loopback
from tenants import audit
from tenants.directory import DirectoryError, bump_epoch
from tenants.models import Client
from tenants.scope import TenantScope

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none",
                "tls_client_auth", "self_signed_tls_client_auth")
NO_SECRET = ("private_key_jwt", "none", "tls_client_auth", "self_signed_tls_client_auth")
TLS_NAMES = ("tls_client_auth_subject_dn", "tls_client_auth_san_uri", "tls_client_auth_san_dns")
DAY = 86_400
MAX_OVERLAP = 7 * DAY
# what a change may touch (the auth method and client_id are fixed at registration)
CHANGEABLE = ("name", "scopes", "audiences", "jwks", "access_token_lifetime",
              "dpop_bound_access_tokens", "redirect_uris", "post_logout_redirect_uris",
              "first_party", "require_par", "authorization_details_types", *TLS_NAMES,
              "tls_client_certificate_bound_access_tokens", "backchannel_token_delivery_mode",
              "backchannel_client_notification_endpoint")
CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
LISTS = ("scopes", "audiences", "redirect_uris", "post_logout_redirect_uris",
         "authorization_details_types")


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str | None  # shown once, never stored


def check(reg: Mapping[str, Any]) -> None:
    """The registration rules over a whole registration (column names as keys)."""
    auth_method = reg["auth_method"]
    jwks = reg.get("jwks")
    if auth_method not in AUTH_METHODS:
        raise DirectoryError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    if auth_method in ("private_key_jwt", "self_signed_tls_client_auth"):
        keys = (jwks or {}).get("keys")
        if not isinstance(keys, list) or not keys:
            raise DirectoryError(f"{auth_method} needs a JWKS with at least one public key")
    keys = (jwks or {}).get("keys") or []
    if any(not isinstance(k, dict) or "d" in k or k.get("kty") == "oct" for k in keys):
        raise DirectoryError("the client JWKS must hold public asymmetric keys only")
    _check_mtls(auth_method, {n: reg.get(n) for n in TLS_NAMES}, jwks)
    if any(not s or " " in s for s in reg.get("scopes", ())):
        raise DirectoryError("scopes are non-empty tokens without spaces")
    if not 1 <= reg.get("access_token_lifetime", 300) <= DAY:
        raise DirectoryError("access token lifetime must be 1..86400 seconds")
    for uri in (*reg.get("redirect_uris", ()), *reg.get("post_logout_redirect_uris", ())):
        check_redirect_uri(uri)
    if auth_method == "none" and not reg.get("redirect_uris"):
        raise DirectoryError("a public client (auth method none) needs redirect URIs")
    _check_ciba(reg.get("backchannel_token_delivery_mode"),
                reg.get("backchannel_client_notification_endpoint"))


async def create(
    scope: TenantScope, *, name: str, hasher_hash: Callable[[str], str], now: float,
    client_id: str | None = None, auth_method: str = "client_secret_basic",
    **registration: Any,
) -> NewClient:
    """``registration``: any of ``CHANGEABLE`` but ``name``."""
    unknown = set(registration) - set(CHANGEABLE)
    if unknown:
        raise DirectoryError(f"unknown client settings: {', '.join(sorted(unknown))}")
    client_id = client_id or _new_client_id()
    if not CLIENT_ID.match(client_id):
        raise DirectoryError("client_id: 1-128 unreserved characters")
    reg = {"auth_method": auth_method, "access_token_lifetime": 300, **registration}
    for name_ in LISTS:
        reg[name_] = list(dict.fromkeys(reg.get(name_) or ()))
    check(reg)
    if await scope.get(Client, client_id) is not None:
        raise Conflict(f"client {client_id!r} exists in tenant {scope.tenant_id!r}")
    secret = None if auth_method in NO_SECRET else new_secret()
    client = scope.add(Client(
        client_id=client_id, name=name, status="active",
        secret_hash=hasher_hash(secret) if secret else None, created_at=now, **reg))
    await scope.session.flush()
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "client.created", "changed", client_id=client_id, detail=_audited(reg))], now)
    return NewClient(client, secret)


async def update(scope: TenantScope, client_id: str, changes: Mapping[str, Any], *,
                 now: float) -> Client:
    """Apply ``changes`` (names of ``CHANGEABLE``; None clears an optional setting) if the
    merged registration passes ``check``; a retired client stays as it is."""
    client = await _existing(scope, client_id)
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise DirectoryError(f"cannot change {', '.join(sorted(unknown))}")
    if client.status == "retired":
        raise DirectoryError("a retired client cannot be changed")
    merged = {"auth_method": client.auth_method,
              **{n: getattr(client, n) for n in CHANGEABLE}, **changes}
    for name_ in LISTS:
        merged[name_] = list(dict.fromkeys(merged.get(name_) or ()))
    check(merged)
    for name_ in changes:
        setattr(client, name_, merged[name_])
    await scope.session.flush()
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "client.updated", "changed", client_id=client_id,
        detail={"changed": sorted(changes), **_audited({n: merged[n] for n in changes})})],
        now)
    return client


async def rotate_secret(scope: TenantScope, client_id: str, *, hasher_hash: Callable[[str], str],
                        now: float, overlap_seconds: int) -> NewClient:
    """A new secret, returned this once; the current one keeps working ``overlap_seconds``
    (0: at once only the new one)."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP:
        raise DirectoryError(f"overlap_seconds: 0..{MAX_OVERLAP}")
    client = await _existing(scope, client_id)
    if client.auth_method in NO_SECRET:
        raise DirectoryError(f"a {client.auth_method} client has no secret to rotate")
    if client.status == "retired":
        raise DirectoryError("a retired client cannot be changed")
    secret = new_secret()
    keep = overlap_seconds > 0
    client.previous_secret_hash = client.secret_hash if keep else None
    client.previous_secret_valid_until = now + overlap_seconds if keep else None
    client.secret_hash, client.secret_rotated_at = hasher_hash(secret), now
    await scope.session.flush()
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "client.secret_rotated", "changed", client_id=client_id,
        detail={"overlap_seconds": overlap_seconds,
                "previous_valid_until": client.previous_secret_valid_until})], now)
    return NewClient(client, secret)


async def list_clients(scope: TenantScope) -> Sequence[Client]:
    return (await scope.session.execute(select(Client).order_by(Client.client_id))).scalars().all()


async def set_status(scope: TenantScope, client_id: str, status: str, now: float) -> Client:
    """``active`` or ``disabled`` (an agent's ``suspended``/``retired`` go through
    ``tenants.agents``); a retired client stays retired."""
    client = await _existing(scope, client_id)
    if client.status == "retired":
        raise DirectoryError("a retired client stays retired")
    client.status = status
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        f"client.{status}", "changed", client_id=client_id)], now)
    return client


async def _existing(scope: TenantScope, client_id: str) -> Client:
    client = await scope.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    return client


def _audited(reg: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit event tells of a registration: no JWKS material, no secrets."""
    return {k: v for k, v in reg.items() if k != "jwks" and v not in (None, [], False)
            } | ({"jwks_keys": len((reg.get("jwks") or {}).get("keys") or [])}
                 if "jwks" in reg else {})


def _check_ciba(mode: str | None, endpoint: str | None) -> None:
    """CIBA: poll, ping or push; ping and push need an absolute http(s) notification URL."""
    if mode is not None and mode not in ("poll", "ping", "push"):
        raise DirectoryError("backchannel_token_delivery_mode: poll, ping or push")
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment \
                or len(endpoint) > 512:
            raise DirectoryError("backchannel_client_notification_endpoint: an absolute URL")
    if mode in ("ping", "push") and not endpoint:
        raise DirectoryError(f"{mode} mode needs backchannel_client_notification_endpoint")


def _check_mtls(auth_method: str, names: dict[str, str | None], jwks: Any) -> None:
    given = {k: v for k, v in names.items() if v is not None}
    if auth_method != "tls_client_auth":
        if given:
            raise DirectoryError(f"{', '.join(given)}: only with tls_client_auth")
        if auth_method == "self_signed_tls_client_auth" and not mtls.x5c_certificates(jwks):
            raise DirectoryError("self_signed_tls_client_auth needs a JWKS whose keys carry "
                                 "the client's certificate in x5c")
        return
    if len(given) != 1:
        raise DirectoryError("tls_client_auth needs exactly one of tls_client_auth_subject_dn, "
                             "tls_client_auth_san_uri, tls_client_auth_san_dns")
    (name, value), = given.items()
    if not value or len(value) > 512 or value != value.strip():
        raise DirectoryError(f"{name}: 1-512 characters, no surrounding spaces")
    try:
        if name == "tls_client_auth_subject_dn":
            mtls.parse_dn(value)
        elif name == "tls_client_auth_san_uri" and value.startswith("spiffe://"):
            mtls.check_spiffe_id(value)
        elif name == "tls_client_auth_san_uri" and ":" not in value:
            raise DirectoryError("tls_client_auth_san_uri must be an absolute URI")
        elif name == "tls_client_auth_san_dns" and (len(value) > 253 or " " in value):
            raise DirectoryError("tls_client_auth_san_dns must be a DNS name")
    except mtls.CertificateError as exc:
        raise DirectoryError(f"{name}: {exc}") from exc


REFUSED_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob",
                             "filesystem"})


def check_redirect_uri(uri: str) -> None:
    """Absolute, no fragment (RFC 6749 §3.1.2); https, or http only on a loopback address
    (RFC 8252 §7.3), or a private-use scheme with a dot (RFC 8252 §7.1) for native apps."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri or len(uri) > 2000 or any(
            c.isspace() or ord(c) < 0x20 for c in uri):
        raise DirectoryError(f"redirect URI {uri!r}: absolute, no fragment or spaces, at most "
                             "2000 characters")
    if parts.scheme in REFUSED_SCHEMES:
        raise DirectoryError(f"redirect URI {uri!r}: the {parts.scheme}: scheme is refused")
    if parts.scheme == "https" and parts.hostname and parts.username is None:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname) and parts.username is None:
        return
    if "." in parts.scheme and parts.scheme not in ("http", "https"):
        return
    raise DirectoryError(f"redirect URI {uri!r}: use https, http on loopback, or a "
                         "reverse-DNS private-use scheme")


def _new_client_id() -> str:
    """Random and URL-safe, and never starting with '-' or '_' (a command line would take
    a leading '-' for an option)."""
    while True:
        value = secrets.token_urlsafe(12)
        if value[0].isalnum():
            return value


def new_secret() -> str:
    return secrets.token_urlsafe(32)
