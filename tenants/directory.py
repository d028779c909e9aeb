"""Tenants and their clients: create, list, look up, disable."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from adapters import mtls
from tenants import audit
from tenants.models import Client, DirectoryEpoch, Tenant
from tenants.scope import TenantScope
from tenants.settings import TenantSettings

TENANT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none",
                "tls_client_auth", "self_signed_tls_client_auth")
NO_SECRET = ("private_key_jwt", "none", "tls_client_auth", "self_signed_tls_client_auth")


class DirectoryError(ValueError):
    """A request to change the directory that cannot be honoured (bad name, duplicate...)."""


async def bump_epoch(session: AsyncSession, tenant_id: str) -> None:
    """Every change to a tenant or its clients moves its epoch on, in the same transaction:
    processes that cached the old state find out when they record their next decision."""
    result = await session.execute(
        update(DirectoryEpoch).where(DirectoryEpoch.tenant_id == tenant_id)
        .values(epoch=DirectoryEpoch.epoch + 1).execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        session.add(DirectoryEpoch(tenant_id=tenant_id, epoch=1))
        await session.flush()


async def create_tenant(
    session: AsyncSession, name: str, *, display_name: str | None = None,
    settings: dict[str, Any] | None = None, now: float,
) -> Tenant:
    if not TENANT_NAME.match(name):
        raise DirectoryError("tenant name: 1-64 of a-z, 0-9 and '-', not starting or ending in '-'")
    if await session.get(Tenant, name) is not None:
        raise DirectoryError(f"tenant {name!r} exists")
    merged = TenantSettings.from_dict(settings or {}).to_dict()
    tenant = Tenant(id=name, display_name=display_name or name, status="active",
                    created_at=now, settings=merged)
    session.add(tenant)
    await session.flush()
    await bump_epoch(session, name)
    await audit.record(session, name, [audit.Event("tenant.created", "changed")], now)
    return tenant


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.execute(select(Tenant).order_by(Tenant.id))).scalars().all()


async def set_tenant_status(session: AsyncSession, name: str, status: str, now: float) -> Tenant:
    tenant = await session.get(Tenant, name)
    if tenant is None:
        raise LookupError(name)
    tenant.status = status
    await bump_epoch(session, name)
    await audit.record(session, name, [audit.Event(f"tenant.{status}", "changed")], now)
    return tenant


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str | None  # shown once, never stored


async def create_client(
    scope: TenantScope,
    *,
    name: str,
    hasher_hash: Any,
    now: float,
    client_id: str | None = None,
    auth_method: str = "client_secret_basic",
    scopes: Sequence[str] = (),
    audiences: Sequence[str] = (),
    jwks: dict[str, Any] | None = None,
    access_token_lifetime: int = 300,
    dpop_bound_access_tokens: bool = False,
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    first_party: bool = True,
    require_par: bool = False,
    authorization_details_types: Sequence[str] = (),
    tls_client_auth_subject_dn: str | None = None,
    tls_client_auth_san_uri: str | None = None,
    tls_client_auth_san_dns: str | None = None,
    tls_client_certificate_bound_access_tokens: bool = False,
    backchannel_token_delivery_mode: str | None = None,
    backchannel_client_notification_endpoint: str | None = None,
) -> NewClient:
    """``tls_client_auth`` needs exactly one of the ``tls_client_auth_*`` names (a SPIFFE ID
    goes in ``tls_client_auth_san_uri``); ``self_signed_tls_client_auth`` a JWKS whose keys
    carry the client's certificates in ``x5c`` (RFC 8705 §2)."""
    tls_names = {"tls_client_auth_subject_dn": tls_client_auth_subject_dn,
                 "tls_client_auth_san_uri": tls_client_auth_san_uri,
                 "tls_client_auth_san_dns": tls_client_auth_san_dns}
    if auth_method not in AUTH_METHODS:
        raise DirectoryError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    client_id = client_id or _new_client_id()
    if not CLIENT_ID.match(client_id):
        raise DirectoryError("client_id: 1-128 unreserved characters")
    if await scope.get(Client, client_id) is not None:
        raise DirectoryError(f"client {client_id!r} exists in tenant {scope.tenant_id!r}")
    if auth_method in ("private_key_jwt", "self_signed_tls_client_auth"):
        keys = (jwks or {}).get("keys")
        if not isinstance(keys, list) or not keys:
            raise DirectoryError(f"{auth_method} needs a JWKS with at least one public key")
        if any(not isinstance(k, dict) or "d" in k or k.get("kty") == "oct" for k in keys):
            raise DirectoryError("the client JWKS must hold public asymmetric keys only")
    _check_mtls(auth_method, tls_names, jwks)
    if any(not s or " " in s for s in scopes):
        raise DirectoryError("scopes are non-empty tokens without spaces")
    if not 1 <= access_token_lifetime <= 86_400:
        raise DirectoryError("access token lifetime must be 1..86400 seconds")
    for uri in (*redirect_uris, *post_logout_redirect_uris):
        check_redirect_uri(uri)
    if auth_method == "none" and not redirect_uris:
        raise DirectoryError("a public client (auth method none) needs redirect URIs")
    _check_ciba(backchannel_token_delivery_mode, backchannel_client_notification_endpoint)
    secret = None if auth_method in NO_SECRET else _new_secret()
    client = scope.add(Client(
        client_id=client_id, name=name, status="active", auth_method=auth_method,
        secret_hash=hasher_hash(secret) if secret else None, jwks=jwks,
        scopes=list(dict.fromkeys(scopes)), audiences=list(dict.fromkeys(audiences)),
        access_token_lifetime=access_token_lifetime,
        dpop_bound_access_tokens=dpop_bound_access_tokens, created_at=now,
        redirect_uris=list(dict.fromkeys(redirect_uris)),
        post_logout_redirect_uris=list(dict.fromkeys(post_logout_redirect_uris)),
        first_party=first_party, require_par=require_par,
        authorization_details_types=list(dict.fromkeys(authorization_details_types)),
        **tls_names,
        tls_client_certificate_bound_access_tokens=tls_client_certificate_bound_access_tokens,
        backchannel_token_delivery_mode=backchannel_token_delivery_mode,
        backchannel_client_notification_endpoint=backchannel_client_notification_endpoint,
    ))
    await scope.session.flush()
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "client.created", "changed", client_id=client_id,
        detail={"auth_method": auth_method, "scopes": list(scopes), "audiences": list(audiences),
                "dpop_bound_access_tokens": dpop_bound_access_tokens,
                "redirect_uris": list(redirect_uris), "first_party": first_party,
                "require_par": require_par,
                **{k: v for k, v in tls_names.items() if v},
                "tls_client_certificate_bound_access_tokens":
                    tls_client_certificate_bound_access_tokens})], now)
    return NewClient(client, secret)


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


def check_redirect_uri(uri: str) -> None:
    """Absolute, no fragment (RFC 6749 §3.1.2); https, or http only on a loopback address
    (RFC 8252 §7.3), or a private-use scheme with a dot (RFC 8252 §7.1) for native apps."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri or len(uri) > 2000:
        raise DirectoryError(f"redirect URI {uri!r}: absolute, no fragment, at most 2000 chars")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost"):
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


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


async def list_clients(scope: TenantScope) -> Sequence[Client]:
    return (await scope.session.execute(select(Client).order_by(Client.client_id))).scalars().all()


async def set_client_status(scope: TenantScope, client_id: str, status: str, now: float) -> Client:
    client = await scope.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    client.status = status
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        f"client.{status}", "changed", client_id=client_id)], now)
    return client
