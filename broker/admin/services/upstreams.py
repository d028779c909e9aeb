"""A tenant's upstream IdPs: add, list, read, change, disable/enable, refresh SAML metadata,
delete.

Deleting keeps a tombstone (status ``deleted``, final): the sealed client secret is wiped,
the links of users to it are removed and the sessions it started end. The name stays taken,
so a later upstream cannot inherit its users by reusing it (users are linked by upstream name
and subject)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import delete, select, update

from adapters.errors import Conflict, InvalidRequest, NotFound
from broker import claim_mapping, upstreams
from broker.admin.models.upstreams import (
    MetadataRefresh,
    SamlOut,
    UpstreamCreate,
    UpstreamOut,
    UpstreamPatch,
)
from broker.admin.services import upstream_config as configs
from broker.admin.services.common import existing_tenant, seconds
from broker.runtime import Broker
from tenants import audit
from tenants.models import FederatedIdentity, LoginSession, Upstream
from tenants.scope import TenantScope, tenant_scope

RESERVED = frozenset({"idp"})  # /t/{t}/saml/idp/... is tessera's own SAML IdP


def upstream_out(broker: Broker, row: Upstream) -> UpstreamOut:
    issuer = broker.issuer(row.tenant_id)
    oidc = saml = None
    redirect = sp_entity = acs = None
    if row.kind == "oidc":
        oidc = {k: v for k, v in row.config.items() if k != configs.SEALED}
        oidc["has_client_secret"] = configs.SEALED in row.config
        redirect = upstreams.oidc_redirect_uri(issuer, row.name)
    else:
        saml = SamlOut(idp_entity_id=row.config.get("idp_entity_id"),
                       allow_sha1=bool(row.config.get("allow_sha1", False)),
                       name_id_format=row.config.get("name_id_format"),
                       metadata_url=row.config.get("metadata_url"),
                       metadata_updated_at=seconds(row.config.get("metadata_updated_at")))
        sp_entity = upstreams.sp_entity_id(issuer, row.name)
        acs = upstreams.acs_url(issuer, row.name)
    return UpstreamOut(tenant=row.tenant_id, name=row.name, kind=row.kind,
                       display_name=row.display_name, status=row.status,
                       domains=list(row.domains or []), mapping=dict(row.mapping or {}),
                       oidc=oidc, saml=saml, redirect_uri=redirect, sp_entity_id=sp_entity,
                       acs_url=acs, sp_metadata_url=sp_entity)


def _missing(tenant: str, name: str) -> NotFound:
    return NotFound(f"no upstream {name!r} in tenant {tenant!r}")


def _mapping(mapping: dict[str, object]) -> dict[str, object]:
    try:
        return claim_mapping.check(mapping)
    except claim_mapping.MappingError as exc:
        raise InvalidRequest(f"mapping: {exc}") from None


async def create_upstream(broker: Broker, tenant: str, body: UpstreamCreate) -> UpstreamOut:
    await existing_tenant(broker, tenant, change=True)
    if body.name in RESERVED:
        raise InvalidRequest(f"upstream name {body.name!r} is reserved")
    mapping = _mapping(body.mapping.stored())
    if body.oidc is not None:
        config = configs.new_oidc(broker, tenant, body.name, body.oidc)
    else:
        assert body.saml is not None
        config = await configs.new_saml(broker, body.saml)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        if await scope.get(Upstream, body.name) is not None:
            raise Conflict(f"upstream {body.name!r} exists")
        row = scope.add(Upstream(name=body.name, kind=body.kind, config=config,
                                 mapping=mapping, display_name=body.display_name or body.name,
                                 domains=[d.lower() for d in body.domains], status="active",
                                 created_at=now))
        await audit.record(scope.session, tenant, [audit.Event(
            "upstream.created", "changed", None, None,
            {"upstream": body.name, "kind": body.kind})], now)
    return upstream_out(broker, row)


async def list_upstreams(broker: Broker, tenant: str) -> list[UpstreamOut]:
    await existing_tenant(broker, tenant)
    async with broker.sessions() as session:
        rows = (await session.execute(select(Upstream).where(Upstream.tenant_id == tenant)
                                      .order_by(Upstream.name))).scalars().all()
    return [upstream_out(broker, r) for r in rows]


async def get_upstream(broker: Broker, tenant: str, name: str) -> UpstreamOut:
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(Upstream, name)
    if row is None:
        raise _missing(tenant, name)
    return upstream_out(broker, row)


async def _change(broker: Broker, tenant: str, name: str,
                  change: Callable[[TenantScope, Upstream], Awaitable[dict[str, object]]]
                  ) -> UpstreamOut:
    """One change of a live (not deleted) upstream, audited as ``upstream.<action>``."""
    await existing_tenant(broker, tenant, change=True)
    now = broker.clock.now()
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(Upstream, name)
        if row is None:
            raise _missing(tenant, name)
        if row.status == "deleted":
            raise InvalidRequest(f"upstream {name!r} is deleted")
        detail = await change(scope, row)
        action = str(detail.pop("action"))
        await audit.record(scope.session, tenant, [audit.Event(
            f"upstream.{action}", "revoked" if action == "deleted" else "changed", None, None,
            {"upstream": name, **detail})], now)
    return upstream_out(broker, row)


async def update_upstream(broker: Broker, tenant: str, name: str,
                          body: UpstreamPatch) -> UpstreamOut:
    async def change(_scope: TenantScope, row: Upstream) -> dict[str, object]:
        given = body.model_fields_set
        if ("oidc" in given and row.kind != "oidc") or ("saml" in given and row.kind != "saml"):
            raise InvalidRequest(f"a {row.kind} upstream takes {row.kind} settings (only)")
        if "display_name" in given and body.display_name is not None:
            row.display_name = body.display_name
        if "domains" in given and body.domains is not None:
            row.domains = [d.lower() for d in body.domains]
        if "mapping" in given and body.mapping is not None:
            row.mapping = _mapping(body.mapping.stored())
        if body.oidc is not None:
            row.config = configs.patched_oidc(broker, tenant, name, dict(row.config), body.oidc)
        if body.saml is not None:
            config = dict(row.config)
            for key, value in body.saml.model_dump(include=body.saml.model_fields_set).items():
                if value is None:
                    config.pop(key, None)
                else:
                    config[key] = value
            row.config = config
        return {"action": "updated", "changed": sorted(given)}

    return await _change(broker, tenant, name, change)


async def refresh_metadata(broker: Broker, tenant: str, name: str,
                           body: MetadataRefresh) -> UpstreamOut:
    """New IdP metadata for a SAML upstream (its new signing keys verify from the next
    assertion on): the given XML, the given URL, or the URL it was added from."""

    async def change(_scope: TenantScope, row: Upstream) -> dict[str, object]:
        if row.kind != "saml":
            raise InvalidRequest("only a SAML upstream has IdP metadata")
        url = body.metadata_url if "metadata_url" in body.model_fields_set else None
        if body.metadata_xml is not None:
            xml, field = body.metadata_xml, "metadata_xml"
        else:
            url = url or row.config.get("metadata_url")
            if not url:
                raise InvalidRequest("this upstream was added from XML: give metadata_xml "
                                     "or metadata_url")
            xml, field = await configs.fetch_metadata(broker, url), "metadata_url"
        parsed = configs.parsed_metadata(xml, field, broker.clock.now())
        if parsed["idp_entity_id"] != row.config.get("idp_entity_id"):
            raise InvalidRequest("the new metadata is of another IdP (entityID differs): "
                                 "add it as a new upstream")
        row.config = {**row.config, **parsed, **({"metadata_url": url} if url else {})}
        return {"action": "metadata_refreshed", "idp_entity_id": parsed["idp_entity_id"]}

    return await _change(broker, tenant, name, change)


async def set_upstream_status(broker: Broker, tenant: str, name: str,
                              status: str) -> UpstreamOut:
    async def change(_scope: TenantScope, row: Upstream) -> dict[str, object]:
        row.status = status
        return {"action": status}

    return await _change(broker, tenant, name, change)


async def delete_upstream(broker: Broker, tenant: str, name: str) -> UpstreamOut:
    async def change(scope: TenantScope, row: Upstream) -> dict[str, object]:
        row.status = "deleted"
        row.config = {k: v for k, v in row.config.items() if k != configs.SEALED}
        unlinked = await scope.session.execute(delete(FederatedIdentity).where(
            FederatedIdentity.upstream == name).execution_options(synchronize_session=False))
        ended = await scope.session.execute(update(LoginSession).where(
            LoginSession.upstream == name, LoginSession.ended_at.is_(None))
            .values(ended_at=broker.clock.now()).execution_options(synchronize_session=False))
        return {"action": "deleted", "users_unlinked": int(unlinked.rowcount or 0),
                "sessions_ended": int(ended.rowcount or 0)}

    return await _change(broker, tenant, name, change)
