"""An upstream's stored configuration from validated settings: OIDC settings checked by the
adapter's own rules (``broker.upstreams.build_oidc_config``) with the client secret sealed;
SAML IdP metadata given or fetched (through the registry's guarded fetcher) and parsed."""

from __future__ import annotations

from typing import Any

from adapters.saml_assertion import SAMLError
from adapters.saml_upstream import parse_idp_metadata
from broker import upstreams
from broker.admin.errors import InvalidField
from broker.admin.models.upstreams import MAX_METADATA, OidcPatch, OidcSettings, SamlSettings
from broker.runtime import Broker
from registry.remote_keys import RemoteKeyError
from tenants import sealed_values

METADATA_TYPES = frozenset({"application/samlmetadata+xml", "application/xml", "text/xml"})
SEALED = sealed_values.UPSTREAM_SECRET


def _checked_oidc(config: dict[str, Any], secret: str | None) -> dict[str, Any]:
    config.setdefault("client_auth", "client_secret_basic")
    try:
        upstreams.build_oidc_config(config, secret)
    except (TypeError, ValueError) as exc:
        raise InvalidField("oidc", str(exc)) from None
    return config


def new_oidc(broker: Broker, tenant: str, name: str, body: OidcSettings) -> dict[str, Any]:
    config = _checked_oidc(body.stored(), body.client_secret)
    if body.client_secret is not None:
        config[SEALED] = broker.sealer.seal(body.client_secret,
                                            upstreams.secret_context(tenant, name))
    return config


def patched_oidc(broker: Broker, tenant: str, name: str, stored: dict[str, Any],
                 patch: OidcPatch) -> dict[str, Any]:
    """The stored settings with ``patch`` merged (null removes a setting) and checked whole;
    a new ``client_secret`` is sealed, null removes the stored one."""
    config = {k: v for k, v in stored.items() if k != SEALED}
    sealed = stored.get(SEALED)
    given = patch.model_dump(mode="json", include=patch.model_fields_set)
    secret = given.pop("client_secret", "(unchanged)")
    for key, value in given.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    if secret == "(unchanged)":
        check_secret = "(stored)" if sealed else None
    else:
        sealed = None if secret is None else broker.sealer.seal(
            secret, upstreams.secret_context(tenant, name))
        check_secret = secret
    config = _checked_oidc(config, check_secret)
    if sealed:
        config[SEALED] = sealed
    return config


async def fetch_metadata(broker: Broker, url: str) -> str:
    """Through the registry's guarded fetcher: https (http only to loopback in development),
    every resolved address checked, size and time bounded."""
    try:
        body = await broker.remote_keys.fetch_document(
            url, media_types=METADATA_TYPES, max_bytes=MAX_METADATA)
    except RemoteKeyError as exc:
        raise InvalidField("saml.metadata_url", f"cannot fetch the IdP metadata: {exc}") \
            from None
    return body.decode("utf-8", "replace")


def parsed_metadata(xml: str, field: str, now: float) -> dict[str, Any]:
    """The stored form of IdP metadata: the document, its entity ID, when it was read."""
    try:
        idp = parse_idp_metadata(xml.encode())
    except (SAMLError, ValueError, TypeError) as exc:
        raise InvalidField(field, f"IdP metadata: {exc}") from None
    return {"idp_metadata": xml, "idp_entity_id": idp.entity_id, "metadata_updated_at": now}


async def new_saml(broker: Broker, body: SamlSettings) -> dict[str, Any]:
    if body.metadata_xml is not None:
        xml, field = body.metadata_xml, "saml.metadata_xml"
    else:
        assert body.metadata_url is not None
        xml, field = await fetch_metadata(broker, body.metadata_url), "saml.metadata_url"
    config = {**parsed_metadata(xml, field, broker.clock.now()), "allow_sha1": body.allow_sha1}
    if body.metadata_url is not None:
        config["metadata_url"] = body.metadata_url
    if body.name_id_format is not None:
        config["name_id_format"] = body.name_id_format
    return config
