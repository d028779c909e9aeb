"""Routes of runtime control: agents, revocation, anomaly rules, API keys, legacy apps."""

from __future__ import annotations

from broker.admin.models.api_keys import (
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeyQuery,
    ApiKeyRotation,
    ApiKeyWithSecret,
)
from broker.admin.models.clients import (
    ClientOut,
)
from broker.admin.models.legacy_apps import (
    EntityRef,
    LegacyAppCreate,
    LegacyAppOut,
    LegacyAppPatch,
)
from broker.admin.models.runtime import (
    AgentPut,
    AnomalyRulesOut,
    AnomalyRulesPut,
    ReasonBody,
    RevokeOut,
    RevokeRequest,
)
from broker.admin.roles import READ, WRITE
from broker.admin.route import EXISTS, LA, A, AdminRoute, K, T, route
from broker.admin.services import (
    agents,
    anomaly,
    api_keys,
    legacy_apps,
    revocation,
)

RUNTIME: tuple[AdminRoute, ...] = (
    route("GET", A, "Read an agent", "agents",
          lambda c: agents.get_agent(c.broker, c["tenant"], c["client_id"]), response=ClientOut,
          roles=READ, name="get_agent"),
    route("PUT", A, "Describe an agent (owner, purpose, expiry)", "agents",
          lambda c: agents.describe_agent(c.broker, c["tenant"], c["client_id"], c.body),
          request=AgentPut, response=ClientOut, roles=WRITE, name="describe_agent"),
    *(route("POST", f"{A}/{verb}", f"{verb.capitalize()} an agent", "agents",
            lambda c, verb=verb: agents.agent_action(c.broker, c["tenant"], c["client_id"], verb,
                                                     c.body.reason),
            request=ReasonBody, response=ClientOut, roles=WRITE, name=f"{verb}_agent")
      for verb in agents.AGENT_ACTIONS),
    route("POST", T + "/revoke", "Revoke by token, grant, agent, user, partner or tenant",
          "revocation", lambda c: revocation.revoke(c.broker, c["tenant"], c.body),
          request=RevokeRequest, response=RevokeOut, roles=WRITE, name="revoke"),
    route("GET", T + "/anomaly-rules", "Read the anomaly rules", "anomaly rules",
          lambda c: anomaly.get_rules(c.broker, c["tenant"]), response=AnomalyRulesOut,
          roles=READ, name="get_anomaly_rules"),
    route("PUT", T + "/anomaly-rules", "Replace the anomaly rules", "anomaly rules",
          lambda c: anomaly.set_rules(c.broker, c["tenant"], c.body), request=AnomalyRulesPut,
          response=AnomalyRulesOut, roles=WRITE, name="set_anomaly_rules"),
    route("GET", T + "/api-keys", "List API keys (never the secrets)", "api keys",
          lambda c: api_keys.list_api_keys(c.broker, c["tenant"], c.query.client_id),
          query=ApiKeyQuery, response=list[ApiKeyOut], roles=READ, name="list_api_keys"),
    route("POST", T + "/api-keys", "Create an API key (the key is in this answer only)",
          "api keys", lambda c: api_keys.create_api_key(c.broker, c["tenant"], c.body),
          request=ApiKeyCreate, response=ApiKeyWithSecret, status=201,
          creates=(("key_id", "key_id"),), roles=WRITE, name="create_api_key"),
    route("GET", K, "Read an API key", "api keys",
          lambda c: api_keys.get_api_key(c.broker, c["tenant"], c["key_id"]),
          response=ApiKeyOut, roles=READ, name="get_api_key"),
    route("POST", K + "/rotate", "Rotate an API key (the old one works for the overlap)",
          "api keys", lambda c: api_keys.rotate_api_key(c.broker, c["tenant"], c["key_id"],
                                                        c.body),
          request=ApiKeyRotation, response=ApiKeyWithSecret, roles=WRITE, name="rotate_api_key"),
    route("POST", K + "/revoke", "Revoke an API key", "api keys",
          lambda c: api_keys.revoke_api_key(c.broker, c["tenant"], c["key_id"]),
          response=ApiKeyOut, roles=WRITE, name="revoke_api_key"),
    route("GET", LA, "List legacy apps (SAML service providers)", "legacy apps",
          lambda c: legacy_apps.list_legacy_apps(c.broker, c["tenant"]),
          response=list[LegacyAppOut], roles=READ, name="list_legacy_apps"),
    route("POST", LA, "Register a legacy app (fields or SP metadata)", "legacy apps",
          lambda c: legacy_apps.create_legacy_app(c.broker, c["tenant"], c.body),
          request=LegacyAppCreate, response=LegacyAppOut, status=201,
          creates=(("entity_id", "entity_id"),), conflict=EXISTS, roles=WRITE,
          name="create_legacy_app"),
    *(route("POST", f"{LA}/{verb}", f"{verb.capitalize()} a legacy app", "legacy apps",
            lambda c, status=status: legacy_apps.set_legacy_app_status(
                c.broker, c["tenant"], c.body.entity_id, status),
            request=EntityRef, response=LegacyAppOut, roles=WRITE, name=f"{verb}_legacy_app")
      for verb, status in (("disable", "disabled"), ("enable", "active"))),
    route("GET", LA + "/{entity_id:uri}", "Read a legacy app (entity ID percent-encoded)",
          "legacy apps", lambda c: legacy_apps.get_legacy_app(c.broker, c["tenant"],
                                                              c["entity_id"]),
          response=LegacyAppOut, roles=READ, name="get_legacy_app"),
    route("PATCH", LA + "/{entity_id:uri}", "Change a legacy app", "legacy apps",
          lambda c: legacy_apps.update_legacy_app(c.broker, c["tenant"], c["entity_id"],
                                                  c.body),
          request=LegacyAppPatch, response=LegacyAppOut, roles=WRITE, name="update_legacy_app"),
    route("DELETE", LA + "/{entity_id:uri}", "Delete a legacy app", "legacy apps",
          lambda c: legacy_apps.delete_legacy_app(c.broker, c["tenant"], c["entity_id"]),
          response=LegacyAppOut, roles=WRITE, name="delete_legacy_app"),
)
