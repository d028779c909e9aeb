"""A tenant's upstream IdPs at run time: their stored configuration turned into the adapters'
configs (OIDC relying party, SAML service provider), the URLs tessera serves for each, and
home-realm discovery (which upstream a login goes to)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from adapters.oidc_upstream import OIDCUpstreamConfig
from adapters.saml_upstream import IdPMetadata, SAMLUpstreamConfig, parse_idp_metadata
from broker.runtime import Broker, TenantView
from tenants import sealed_values
from tenants.models import Upstream


@dataclass(frozen=True)
class UpstreamView:
    name: str
    kind: str  # oidc | saml
    display_name: str
    config: dict[str, Any]
    mapping: dict[str, Any]
    domains: tuple[str, ...]


def oidc_redirect_uri(issuer: str, name: str) -> str:
    return f"{issuer}/login/{name}/callback"


def sp_entity_id(issuer: str, name: str) -> str:
    return f"{issuer}/saml/{name}/metadata"


def acs_url(issuer: str, name: str) -> str:
    return f"{issuer}/saml/{name}/acs"


def _view(row: Upstream) -> UpstreamView:
    return UpstreamView(row.name, row.kind, row.display_name, dict(row.config),
                        dict(row.mapping or {}), tuple(row.domains or ()))


async def active(broker: Broker, tenant_id: str) -> list[UpstreamView]:
    async with broker.sessions() as session:
        rows = (await session.execute(select(Upstream).where(
            Upstream.tenant_id == tenant_id, Upstream.status == "active")
            .order_by(Upstream.name))).scalars().all()
    return [_view(r) for r in rows]


async def get(broker: Broker, tenant_id: str, name: str) -> UpstreamView | None:
    for upstream in await active(broker, tenant_id):
        if upstream.name == name:
            return upstream
    return None


def choose(upstreams: Sequence[UpstreamView], *, idp: str | None,
           login_hint: str | None) -> UpstreamView | None:
    """Home-realm discovery: the ``idp`` parameter names an upstream; else the e-mail domain
    of ``login_hint`` belongs to one; else a tenant with a single upstream uses it."""
    if idp is not None:
        return next((u for u in upstreams if u.name == idp), None)
    if login_hint and "@" in login_hint:
        domain = login_hint.rsplit("@", 1)[1].lower()
        for upstream in upstreams:
            if domain in upstream.domains:
                return upstream
    return upstreams[0] if len(upstreams) == 1 else None


def secret_context(tenant_id: str, name: str) -> str:
    """What an upstream's sealed client secret is bound to (``Sealer`` associated data)."""
    return sealed_values.upstream_secret_context(tenant_id, name)


def build_oidc_config(stored: dict[str, Any], secret: str | None) -> OIDCUpstreamConfig:
    """The adapter's config from the stored JSON settings (lists become tuples); raises
    ``TypeError``/``ValueError`` on settings the adapter refuses."""
    raw = {k: v for k, v in stored.items() if k != "client_secret_sealed"}
    for name in ("scopes", "allowed_algs"):
        if name in raw:
            raw[name] = tuple(raw[name])
    raw["extra_auth_params"] = tuple(tuple(p) for p in raw.get("extra_auth_params", ()))
    return OIDCUpstreamConfig(client_secret=secret, **raw)


def oidc_config(broker: Broker, tenant_id: str, upstream: UpstreamView) -> OIDCUpstreamConfig:
    sealed = upstream.config.get("client_secret_sealed")
    secret = (broker.sealer.open(sealed, secret_context(tenant_id, upstream.name))
              if isinstance(sealed, str) else None)
    return build_oidc_config(upstream.config, secret)


@functools.lru_cache(maxsize=64)
def idp_metadata(xml: str) -> IdPMetadata:
    """A SAML IdP's metadata, parsed once per document (it is read at every login and every
    SAML bearer assertion; the result is immutable)."""
    return parse_idp_metadata(xml.encode())


def saml_config(tenant: TenantView, upstream: UpstreamView) -> SAMLUpstreamConfig:
    idp = idp_metadata(upstream.config["idp_metadata"])
    return SAMLUpstreamConfig(
        sp_entity_id=sp_entity_id(tenant.issuer, upstream.name),
        acs_url=acs_url(tenant.issuer, upstream.name),
        idp=idp, allow_sha1=bool(upstream.config.get("allow_sha1", False)),
        name_id_format=upstream.config.get("name_id_format"))
