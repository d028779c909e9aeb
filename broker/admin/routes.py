"""The admin API's one route table: method, path (under ``/admin/v1``), handler, summary,
tag, request model, response model, status. ``broker.admin.http`` serves it, and
``broker.admin.openapi`` documents it; a route without models fails ``tests/admin``.

Paths use Starlette's syntax; ``{name:uri}`` takes a non-empty value that may hold slashes
(URIs: audiences, entity IDs), sent percent-encoded (``broker.admin.http`` registers it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, StringConstraints

from broker.admin.models.api_keys import (
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeyQuery,
    ApiKeyRotation,
    ApiKeyWithSecret,
)
from broker.admin.models.clients import (
    ClientCreate,
    ClientOut,
    ClientPatch,
    ClientSecretRotation,
    ClientWithSecret,
)
from broker.admin.models.common import (
    Audience,
    ClientId,
    Empty,
    PartnerId,
    TenantName,
    UpstreamName,
)
from broker.admin.models.connections import (
    ManagedConnectionOut,
    ManagedConnectionPatch,
    ManagedConnectionPut,
)
from broker.admin.models.keys_audit import (
    AuditReport,
    DetailTypeOut,
    DetailTypePut,
    KeyOut,
    RotationOut,
)
from broker.admin.models.legacy_apps import (
    EntityId,
    EntityRef,
    LegacyAppCreate,
    LegacyAppOut,
    LegacyAppPatch,
)
from broker.admin.models.registry import (
    DirectionsPut,
    PartnerCreate,
    PartnerOut,
    PartnerPatch,
    TrustLinkCreate,
    TrustLinkOut,
    TrustLinkPatch,
)
from broker.admin.models.runtime import (
    AgentPut,
    AnomalyRulesOut,
    AnomalyRulesPut,
    ReasonBody,
    RevokeOut,
    RevokeRequest,
    UserOut,
    UserStatusOut,
)
from broker.admin.models.tenants import (
    SecretRotation,
    TenantCreate,
    TenantOut,
    TenantPatch,
    WebhookOut,
    WebhookPut,
)
from broker.admin.models.upstreams import (
    MetadataRefresh,
    UpstreamCreate,
    UpstreamOut,
    UpstreamPatch,
)
from broker.admin.services import (
    agents,
    anomaly,
    api_keys,
    clients,
    connections,
    keys_audit,
    legacy_apps,
    partners,
    revocation,
    tenants,
    trust_links,
    upstreams,
    webhooks,
)
from broker.runtime import Broker

PREFIX = "/admin/v1"


@dataclass(frozen=True)
class Call:
    """One admin request as a handler sees it: ``c["tenant"]`` is a path parameter."""

    broker: Broker
    params: Mapping[str, str]
    body: Any = None  # the request model, validated
    query: Any = None  # the query model, validated

    def __getitem__(self, name: str) -> str:
        return self.params[name]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str
    operation_id: str
    handler: Handler
    summary: str
    tag: str
    request: type[BaseModel] | None = None  # every POST, PUT and PATCH has one (``Empty``)
    response: Any = None
    status: int = 200
    query: type[BaseModel] | None = None
    # what the answer names, as (path parameter, response field): the OpenAPI links
    creates: tuple[tuple[str, str], ...] = ()


def _r(method: str, path: str, summary: str, tag: str, handler: Handler, *, name: str,
       request: type[BaseModel] | None = None, response: Any = None, status: int = 200,
       query: type[BaseModel] | None = None,
       creates: tuple[tuple[str, str], ...] = ()) -> AdminRoute:
    if request is None and method in ("POST", "PUT", "PATCH"):
        request = Empty
    return AdminRoute(method, path, name, handler, summary, tag, request, response, status,
                      query, creates)


def _status(method: str, path: str, summary: str, tag: str, fn: Any, status: str,
            *keys: str, response: Any, name: str) -> AdminRoute:
    return _r(method, path, summary, tag,
              lambda c: fn(c.broker, *[c[k] for k in keys], status), response=response,
              name=name)


T = "/tenants/{tenant}"
C = T + "/clients/{client_id}"
P = "/partners/{partner}"
L = T + "/trust-links/{link}"
MC = T + "/managed-connections/{client_id}/{audience:uri}"
U = T + "/upstreams/{upstream}"
K = T + "/api-keys/{key_id}"
A = T + "/agents/{client_id}"
LA = T + "/legacy-apps"

TENANTS: tuple[AdminRoute, ...] = (
    _r("GET", "/tenants", "List tenants", "tenants",
       lambda c: tenants.list_tenants(c.broker), response=list[TenantOut], name="list_tenants"),
    _r("POST", "/tenants", "Create a tenant (keys and webhook secret made now)", "tenants",
       lambda c: tenants.create_tenant(c.broker, c.body), request=TenantCreate,
       response=TenantOut, status=201, creates=(("tenant", "id"),), name="create_tenant"),
    _r("GET", T, "Read a tenant", "tenants",
       lambda c: tenants.get_tenant(c.broker, c["tenant"]), response=TenantOut,
       name="get_tenant"),
    _r("PATCH", T, "Change a tenant (merge patch; the merged settings are validated whole)",
       "tenants", lambda c: tenants.update_tenant(c.broker, c["tenant"], c.body),
       request=TenantPatch, response=TenantOut, name="update_tenant"),
    _r("DELETE", T, "Archive a tenant: final; it answers nothing, its tokens are revoked, its "
       "rows and audit chain stay", "tenants",
       lambda c: tenants.archive_tenant(c.broker, c["tenant"]), response=TenantOut,
       name="archive_tenant"),
    _status("POST", T + "/disable", "Disable a tenant", "tenants", tenants.set_tenant_status,
            "disabled", "tenant", response=TenantOut, name="disable_tenant"),
    _status("POST", T + "/enable", "Enable a tenant", "tenants", tenants.set_tenant_status,
            "active", "tenant", response=TenantOut, name="enable_tenant"),
    _r("GET", T + "/webhook", "Read the webhook (never the secret)", "tenants",
       lambda c: webhooks.get_webhook(c.broker, c["tenant"]), response=WebhookOut,
       name="get_webhook"),
    _r("PUT", T + "/webhook", "Set the webhook URL (the answer shows the secret if it was "
       "never shown)", "tenants", lambda c: webhooks.put_webhook(c.broker, c["tenant"], c.body),
       request=WebhookPut, response=WebhookOut, name="put_webhook"),
    _r("POST", T + "/webhook/rotate-secret", "Rotate the webhook secret (both sign during "
       "the overlap)", "tenants",
       lambda c: webhooks.rotate_webhook_secret(c.broker, c["tenant"], c.body),
       request=SecretRotation, response=WebhookOut, name="rotate_webhook_secret"),
    _r("GET", T + "/keys", "List signing keys", "keys",
       lambda c: keys_audit.list_keys(c.broker, c["tenant"]), response=list[KeyOut],
       name="list_keys"),
    _r("POST", T + "/keys/rotate", "Rotate signing keys now", "keys",
       lambda c: keys_audit.rotate_keys(c.broker, c["tenant"]), response=RotationOut,
       name="rotate_keys"),
    _r("GET", T + "/audit/verify", "Verify the audit chain", "audit",
       lambda c: keys_audit.verify_audit(c.broker, c["tenant"]), response=AuditReport,
       name="verify_audit"),
)

CLIENTS: tuple[AdminRoute, ...] = (
    _r("GET", T + "/clients", "List clients", "clients",
       lambda c: clients.list_clients(c.broker, c["tenant"]), response=list[ClientOut],
       name="list_clients"),
    _r("POST", T + "/clients", "Register a client (the secret is in this answer only)",
       "clients", lambda c: clients.create_client(c.broker, c["tenant"], c.body),
       request=ClientCreate, response=ClientWithSecret, status=201,
       creates=(("client_id", "client_id"),), name="create_client"),
    _r("GET", C, "Read a client", "clients",
       lambda c: clients.get_client(c.broker, c["tenant"], c["client_id"]),
       response=ClientOut, name="get_client"),
    _r("PATCH", C, "Change a client (merge patch, checked whole)", "clients",
       lambda c: clients.update_client(c.broker, c["tenant"], c["client_id"], c.body),
       request=ClientPatch, response=ClientOut, name="update_client"),
    _r("DELETE", C, "Delete a client: retired (final), its tokens and grants revoked",
       "clients", lambda c: clients.delete_client(c.broker, c["tenant"], c["client_id"]),
       response=ClientOut, name="delete_client"),
    _r("POST", C + "/rotate-secret", "Rotate the client secret (the old one works for the "
       "overlap)", "clients",
       lambda c: clients.rotate_client_secret(c.broker, c["tenant"], c["client_id"], c.body),
       request=ClientSecretRotation, response=ClientWithSecret, name="rotate_client_secret"),
    _status("POST", C + "/disable", "Disable a client", "clients", clients.set_client_status,
            "disabled", "tenant", "client_id", response=ClientOut, name="disable_client"),
    _status("POST", C + "/enable", "Enable a client", "clients", clients.set_client_status,
            "active", "tenant", "client_id", response=ClientOut, name="enable_client"),
)

REGISTRY: tuple[AdminRoute, ...] = (
    _r("GET", "/partners", "List partners of the registry", "registry",
       lambda c: partners.list_partners(c.broker), response=list[PartnerOut],
       name="list_partners"),
    _r("POST", "/partners", "Register a partner (pending until activated)", "registry",
       lambda c: partners.register_partner(c.broker, c.body), request=PartnerCreate,
       response=PartnerOut, status=201, creates=(("partner", "id"),), name="register_partner"),
    _r("GET", P, "Read a partner", "registry",
       lambda c: partners.get_partner(c.broker, c["partner"]), response=PartnerOut,
       name="get_partner"),
    _r("PATCH", P, "Change a partner (display name, contact, keys, metadata, expiry)",
       "registry", lambda c: partners.update_partner(c.broker, c["partner"], c.body),
       request=PartnerPatch, response=PartnerOut, name="update_partner"),
    _status("DELETE", P, "Delete a partner: revoked (final)", "registry",
            partners.set_partner_status, "revoked", "partner", response=PartnerOut,
            name="delete_partner"),
    *(_status("POST", f"{P}/{verb}", f"{verb.capitalize()} a partner", "registry",
              partners.set_partner_status, status, "partner", response=PartnerOut,
              name=f"{verb}_partner")
      for verb, status in (("activate", "active"), ("suspend", "suspended"),
                           ("revoke", "revoked"))),
    _r("GET", T + "/trust-links", "List trust links", "registry",
       lambda c: trust_links.list_trust_links(c.broker, c["tenant"]),
       response=list[TrustLinkOut], name="list_trust_links"),
    _r("POST", T + "/trust-links", "Add a trust link (to a partner or a tenant)", "registry",
       lambda c: trust_links.add_trust_link(c.broker, c["tenant"], c.body),
       request=TrustLinkCreate, response=TrustLinkOut, status=201, creates=(("link", "id"),),
       name="add_trust_link"),
    _r("GET", L, "Read a trust link", "registry",
       lambda c: trust_links.get_trust_link(c.broker, c["tenant"], c["link"]),
       response=TrustLinkOut, name="get_trust_link"),
    _r("PATCH", L, "Change a trust link (directions, scope ceiling, expiry)", "registry",
       lambda c: trust_links.update_trust_link(c.broker, c["tenant"], c["link"], c.body),
       request=TrustLinkPatch, response=TrustLinkOut, name="update_trust_link"),
    _status("DELETE", L, "Delete a trust link: revoked (final)", "registry",
            trust_links.set_trust_link_status, "revoked", "tenant", "link",
            response=TrustLinkOut, name="delete_trust_link"),
    _r("PUT", L + "/directions", "Set a trust link's directions", "registry",
       lambda c: trust_links.set_trust_link_directions(c.broker, c["tenant"], c["link"],
                                                       c.body),
       request=DirectionsPut, response=TrustLinkOut, name="set_trust_link_directions"),
    *(_status("POST", f"{L}/{verb}", f"{verb.capitalize()} a trust link", "registry",
              trust_links.set_trust_link_status, status, "tenant", "link",
              response=TrustLinkOut, name=f"{verb}_trust_link")
      for verb, status in (("suspend", "suspended"), ("resume", "active"),
                           ("revoke", "revoked"))),
    _r("GET", T + "/managed-connections", "List managed connections", "managed connections",
       lambda c: connections.list_managed_connections(c.broker, c["tenant"]),
       response=list[ManagedConnectionOut], name="list_managed_connections"),
    _r("PUT", T + "/managed-connections", "Create or replace the managed connection of "
       "(client_id, audience)", "managed connections",
       lambda c: connections.put_managed_connection(c.broker, c["tenant"], c.body),
       request=ManagedConnectionPut, response=ManagedConnectionOut,
       creates=(("client_id", "client_id"), ("audience", "audience")),
       name="put_managed_connection"),
    _r("GET", MC, "Read a managed connection (audience percent-encoded)",
       "managed connections", lambda c: connections.get_managed_connection(
           c.broker, c["tenant"], c["client_id"], c["audience"]),
       response=ManagedConnectionOut, name="get_managed_connection"),
    _r("PATCH", MC, "Change a managed connection", "managed connections",
       lambda c: connections.update_managed_connection(
           c.broker, c["tenant"], c["client_id"], c["audience"], c.body),
       request=ManagedConnectionPatch, response=ManagedConnectionOut,
       name="update_managed_connection"),
    _r("DELETE", MC, "Delete a managed connection", "managed connections",
       lambda c: connections.delete_managed_connection(
           c.broker, c["tenant"], c["client_id"], c["audience"]),
       response=ManagedConnectionOut, name="delete_managed_connection"),
)

LOGIN: tuple[AdminRoute, ...] = (
    _r("GET", T + "/upstreams", "List upstream IdPs", "upstreams",
       lambda c: upstreams.list_upstreams(c.broker, c["tenant"]), response=list[UpstreamOut],
       name="list_upstreams"),
    _r("POST", T + "/upstreams", "Add an upstream IdP (OIDC or SAML)", "upstreams",
       lambda c: upstreams.create_upstream(c.broker, c["tenant"], c.body),
       request=UpstreamCreate, response=UpstreamOut, status=201,
       creates=(("upstream", "name"),), name="create_upstream"),
    _r("GET", U, "Read an upstream IdP", "upstreams",
       lambda c: upstreams.get_upstream(c.broker, c["tenant"], c["upstream"]),
       response=UpstreamOut, name="get_upstream"),
    _r("PATCH", U, "Change an upstream IdP (display name, domains, mapping, settings, "
       "secret)", "upstreams",
       lambda c: upstreams.update_upstream(c.broker, c["tenant"], c["upstream"], c.body),
       request=UpstreamPatch, response=UpstreamOut, name="update_upstream"),
    _r("DELETE", U, "Delete an upstream IdP (tombstone: its users unlinked, sessions ended)",
       "upstreams", lambda c: upstreams.delete_upstream(c.broker, c["tenant"], c["upstream"]),
       response=UpstreamOut, name="delete_upstream"),
    _r("POST", U + "/refresh-metadata", "Refresh a SAML IdP's metadata (XML, URL, or the "
       "stored URL)", "upstreams",
       lambda c: upstreams.refresh_metadata(c.broker, c["tenant"], c["upstream"], c.body),
       request=MetadataRefresh, response=UpstreamOut, name="refresh_upstream_metadata"),
    *(_status("POST", f"{U}/{verb}", f"{verb.capitalize()} an upstream IdP", "upstreams",
              upstreams.set_upstream_status, status, "tenant", "upstream",
              response=UpstreamOut, name=f"{verb}_upstream")
      for verb, status in (("disable", "disabled"), ("enable", "active"))),
    _r("GET", T + "/authorization-details-types", "List RAR authorization_details types",
       "authorization details", lambda c: keys_audit.list_detail_types(c.broker, c["tenant"]),
       response=list[DetailTypeOut], name="list_detail_types"),
    _r("POST", T + "/authorization-details-types", "Register a RAR type and its JSON Schema "
       "(replaces one of the same type)", "authorization details",
       lambda c: keys_audit.register_detail_type(c.broker, c["tenant"], c.body),
       request=DetailTypePut, response=DetailTypeOut, status=201,
       name="register_detail_type"),
    _r("PUT", T + "/authorization-details-types", "Register or replace a RAR type and its "
       "JSON Schema", "authorization details",
       lambda c: keys_audit.register_detail_type(c.broker, c["tenant"], c.body),
       request=DetailTypePut, response=DetailTypeOut, name="put_detail_type"),
    _r("GET", T + "/users", "List users (created by logins)", "users",
       lambda c: agents.list_users(c.broker, c["tenant"]), response=list[UserOut],
       name="list_users"),
    *(_r("POST", f"{T}/users/{{sub}}/{verb}", f"{verb.capitalize()} a user", "users",
         lambda c, status=status: agents.set_user_status(
             c.broker, c["tenant"], c["sub"], status, c.body.reason),
         request=ReasonBody, response=UserStatusOut, name=f"{verb}_user")
      for verb, status in (("disable", "disabled"), ("enable", "active"))),
)

RUNTIME: tuple[AdminRoute, ...] = (
    _r("GET", A, "Read an agent", "agents",
       lambda c: agents.get_agent(c.broker, c["tenant"], c["client_id"]), response=ClientOut,
       name="get_agent"),
    _r("PUT", A, "Describe an agent (owner, purpose, expiry)", "agents",
       lambda c: agents.describe_agent(c.broker, c["tenant"], c["client_id"], c.body),
       request=AgentPut, response=ClientOut, name="describe_agent"),
    *(_r("POST", f"{A}/{verb}", f"{verb.capitalize()} an agent", "agents",
         lambda c, verb=verb: agents.agent_action(c.broker, c["tenant"], c["client_id"], verb,
                                                  c.body.reason),
         request=ReasonBody, response=ClientOut, name=f"{verb}_agent")
      for verb in agents.AGENT_ACTIONS),
    _r("POST", T + "/revoke", "Revoke by token, grant, agent, user, partner or tenant",
       "revocation", lambda c: revocation.revoke(c.broker, c["tenant"], c.body),
       request=RevokeRequest, response=RevokeOut, name="revoke"),
    _r("GET", T + "/anomaly-rules", "Read the anomaly rules", "anomaly rules",
       lambda c: anomaly.get_rules(c.broker, c["tenant"]), response=AnomalyRulesOut,
       name="get_anomaly_rules"),
    _r("PUT", T + "/anomaly-rules", "Replace the anomaly rules", "anomaly rules",
       lambda c: anomaly.set_rules(c.broker, c["tenant"], c.body), request=AnomalyRulesPut,
       response=AnomalyRulesOut, name="set_anomaly_rules"),
    _r("GET", T + "/api-keys", "List API keys (never the secrets)", "api keys",
       lambda c: api_keys.list_api_keys(c.broker, c["tenant"], c.query.client_id),
       query=ApiKeyQuery, response=list[ApiKeyOut], name="list_api_keys"),
    _r("POST", T + "/api-keys", "Create an API key (the key is in this answer only)",
       "api keys", lambda c: api_keys.create_api_key(c.broker, c["tenant"], c.body),
       request=ApiKeyCreate, response=ApiKeyWithSecret, status=201,
       creates=(("key_id", "key_id"),), name="create_api_key"),
    _r("GET", K, "Read an API key", "api keys",
       lambda c: api_keys.get_api_key(c.broker, c["tenant"], c["key_id"]),
       response=ApiKeyOut, name="get_api_key"),
    _r("POST", K + "/rotate", "Rotate an API key (the old one works for the overlap)",
       "api keys", lambda c: api_keys.rotate_api_key(c.broker, c["tenant"], c["key_id"],
                                                     c.body),
       request=ApiKeyRotation, response=ApiKeyWithSecret, name="rotate_api_key"),
    _r("POST", K + "/revoke", "Revoke an API key", "api keys",
       lambda c: api_keys.revoke_api_key(c.broker, c["tenant"], c["key_id"]),
       response=ApiKeyOut, name="revoke_api_key"),
    _r("GET", LA, "List legacy apps (SAML service providers)", "legacy apps",
       lambda c: legacy_apps.list_legacy_apps(c.broker, c["tenant"]),
       response=list[LegacyAppOut], name="list_legacy_apps"),
    _r("POST", LA, "Register a legacy app (fields or SP metadata)", "legacy apps",
       lambda c: legacy_apps.create_legacy_app(c.broker, c["tenant"], c.body),
       request=LegacyAppCreate, response=LegacyAppOut, status=201,
       creates=(("entity_id", "entity_id"),), name="create_legacy_app"),
    *(_r("POST", f"{LA}/{verb}", f"{verb.capitalize()} a legacy app", "legacy apps",
         lambda c, status=status: legacy_apps.set_legacy_app_status(
             c.broker, c["tenant"], c.body.entity_id, status),
         request=EntityRef, response=LegacyAppOut, name=f"{verb}_legacy_app")
      for verb, status in (("disable", "disabled"), ("enable", "active"))),
    _r("GET", LA + "/{entity_id:uri}", "Read a legacy app (entity ID percent-encoded)",
       "legacy apps", lambda c: legacy_apps.get_legacy_app(c.broker, c["tenant"],
                                                           c["entity_id"]),
       response=LegacyAppOut, name="get_legacy_app"),
    _r("PATCH", LA + "/{entity_id:uri}", "Change a legacy app", "legacy apps",
       lambda c: legacy_apps.update_legacy_app(c.broker, c["tenant"], c["entity_id"],
                                               c.body),
       request=LegacyAppPatch, response=LegacyAppOut, name="update_legacy_app"),
    _r("DELETE", LA + "/{entity_id:uri}", "Delete a legacy app", "legacy apps",
       lambda c: legacy_apps.delete_legacy_app(c.broker, c["tenant"], c["entity_id"]),
       response=LegacyAppOut, name="delete_legacy_app"),
)

ROUTES: tuple[AdminRoute, ...] = (*TENANTS, *CLIENTS, *REGISTRY, *LOGIN, *RUNTIME)

# what each path parameter is (for the OpenAPI document)
PATH_PARAMETERS: dict[str, tuple[Any, str]] = {
    "tenant": (TenantName, "the tenant's name"),
    "client_id": (ClientId, "a client of the tenant"),
    "partner": (PartnerId, "a partner's id in the registry"),
    "link": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
             "a trust link's id"),
    "audience": (Audience, "the managed connection's audience (percent-encoded)"),
    "upstream": (UpstreamName, "an upstream IdP's name"),
    "key_id": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
               "an API key's public id"),
    "sub": (Annotated[str, StringConstraints(min_length=1, max_length=64)],
            "a user's sub at this tenant"),
    "entity_id": (EntityId, "the app's SAML entity ID (percent-encoded)"),
}
