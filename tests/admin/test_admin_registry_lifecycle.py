"""The trust registry and what hangs off it after creation: partners (patch, delete =
revoke), trust links (patch directions, ceiling, expiry; delete = revoke), managed connections
(REST paths: read, patch, delete), legacy apps (patch, delete). Each change counts at once."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from joserfc.jwk import ECKey

from broker.runtime import Broker
from tenants import legacy_apps
from tenants.scope import scoped
from tests.admin.admin_helpers import ADMIN, events
from tests.conftest import new_client, new_tenant, unique

REGISTRY = "_registry"


def _jwks() -> dict[str, Any]:
    return {"keys": [ECKey.generate_key("P-256", parameters={"kid": "p1"}).as_dict(
        private=False)]}


async def _partner(http: httpx.AsyncClient, active: bool = True) -> dict[str, Any]:
    name = unique("p")
    r = await http.post("/admin/v1/partners", headers=ADMIN, json={
        "id": name, "issuer": f"https://{name}.example", "display_name": "Partner",
        "jwks": _jwks()})
    assert r.status_code == 201, r.text
    if active:
        await http.post(f"/admin/v1/partners/{name}/activate", headers=ADMIN)
    return dict(r.json())


async def test_partner_patch_and_delete(http: httpx.AsyncClient, broker: Broker) -> None:
    partner = await _partner(http)
    path = f"/admin/v1/partners/{partner['id']}"
    r = await http.patch(path, headers=ADMIN, json={
        "display_name": "Partner Inc", "contact": "sec@partner.example",
        "jwks_uri": f"{partner['issuer']}/jwks", "metadata": {"tos": "https://x.example"},
        "expires_at": broker.clock.now() + 86_400})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["display_name"], body["contact"], body["jwks"]) == (
        "Partner Inc", "sec@partner.example", None)  # a jwks_uri replaces the inline keys
    assert body["jwks_uri"] == f"{partner['issuer']}/jwks" and body["expires_at"]
    r = await http.patch(path, headers=ADMIN, json={"jwks": _jwks(), "expires_at": None})
    assert r.json()["jwks_uri"] is None and r.json()["expires_at"] is None
    for patch, field in (({"expires_at": broker.clock.now() - 1}, None),
                         ({"issuer": "https://evil.example"}, "issuer"),
                         ({"jwks_uri": "http://partner.example/jwks"}, "jwks_uri"),
                         ({"jwks": {"keys": []}}, "jwks.keys"),
                         ({"jwks": _jwks(), "jwks_uri": "https://x.example/j"}, None)):
        r = await http.patch(path, headers=ADMIN, json=patch)
        assert r.status_code == 400 and r.json().get("field") == field, (patch, r.text)
    r = await http.delete(path, headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await http.patch(path, headers=ADMIN, json={"display_name": "back"})
    assert r.status_code == 400 and "revoked" in r.json()["error_description"]
    r = await http.post(path + "/activate", headers=ADMIN)
    assert r.status_code == 400
    actions = [(e.action, e.detail.get("actor")) for e in await events(broker, REGISTRY)
               if e.detail.get("partner") == partner["id"]]
    assert ("partner.updated", "operator") in actions and ("partner.revoked", "operator") in actions


async def test_trust_link_patch_and_delete(http: httpx.AsyncClient, broker: Broker) -> None:
    partner = await _partner(http)
    tenant = await new_tenant(broker)
    r = await http.post(f"/admin/v1/tenants/{tenant}/trust-links", headers=ADMIN, json={
        "partner": partner["id"], "directions": ["accept"], "scope_ceiling": ["read"]})
    assert r.status_code == 201, r.text
    path = f"/admin/v1/tenants/{tenant}/trust-links/{r.json()['id']}"
    peer = await broker.live_peer(tenant, partner["issuer"], direction="accept")
    assert peer is not None and peer.ceiling == frozenset({"read"})

    r = await http.patch(path, headers=ADMIN, json={
        "directions": ["send"], "scope_ceiling": ["read", "write"],
        "expires_at": broker.clock.now() + 3600})
    assert r.status_code == 200 and r.json()["directions"] == ["send"], r.text
    assert await broker.live_peer(tenant, partner["issuer"], direction="accept") is None
    peer = await broker.live_peer(tenant, partner["issuer"], direction="send")
    assert peer is not None and peer.ceiling == frozenset({"read", "write"})
    r = await http.patch(path, headers=ADMIN, json={"scope_ceiling": None})
    assert r.json()["scope_ceiling"] is None
    for patch, fragment in (({"directions": []}, "at least one direction"),
                            ({"directions": ["accept", "accept"]}, "each direction once"),
                            ({"expires_at": broker.clock.now() - 5}, "future"),
                            ({"partner": "other"}, "unknown field")):
        r = await http.patch(path, headers=ADMIN, json=patch)
        assert r.status_code == 400 and fragment in r.json()["error_description"], r.text
    r = await http.delete(path, headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert await broker.live_peer(tenant, partner["issuer"], direction="send") is None
    r = await http.patch(path, headers=ADMIN, json={"directions": ["accept"]})
    assert r.status_code == 400 and "revoked" in r.json()["error_description"]


async def test_managed_connection_rest_paths(http: httpx.AsyncClient, broker: Broker,
                                             tenant: str) -> None:
    agent = await new_client(broker, tenant)
    audience = "https://rs.example/api"
    base = f"/admin/v1/tenants/{tenant}/managed-connections"
    r = await http.put(base, headers=ADMIN, json={
        "client_id": agent.client_id, "audience": audience, "remote_client_id": "remote",
        "rules": {"read": "grant"}})
    assert r.status_code == 200, r.text
    one = f"{base}/{agent.client_id}/{quote(audience, safe='')}"
    assert (await http.get(one, headers=ADMIN)).json()["rules"] == {"read": "grant"}
    r = await http.put(base, headers=ADMIN, json={  # the body names a client: a 400 naming it
        "client_id": "ghost", "audience": audience, "remote_client_id": "remote"})
    assert r.status_code == 400 and r.json()["field"] == "client_id", r.text
    assert len((await http.get(base, headers=ADMIN)).json()) == 1
    r = await http.patch(one, headers=ADMIN, json={"rules": {"read": "approve", "pay": "deny"},
                                                  "approver": "group:finance"})
    assert r.status_code == 200, r.text
    policy = await broker.managed_connection(tenant, agent.client_id, audience)
    assert policy is not None and policy.rules == {"read": "approve", "pay": "deny"}
    assert policy.approver == "group:finance" and policy.remote_client_id == "remote"
    for patch, field in (({"rules": {"read": "maybe"}}, "rules.read"),
                         ({"max_lifetime": 301}, "max_lifetime"),
                         ({"approver": "finance"}, "approver"),
                         ({"audience": "https://other.example"}, "audience")):
        r = await http.patch(one, headers=ADMIN, json=patch)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    r = await http.delete(one, headers=ADMIN)
    assert r.status_code == 200 and r.json()["audience"] == audience
    assert await broker.managed_connection(tenant, agent.client_id, audience) is None
    assert (await http.get(one, headers=ADMIN)).status_code == 404
    assert (await http.delete(one, headers=ADMIN)).status_code == 404


async def test_legacy_app_patch_and_delete(http: httpx.AsyncClient, broker: Broker,
                                           tenant: str) -> None:
    entity = "https://sp.example/metadata"
    base = f"/admin/v1/tenants/{tenant}/legacy-apps"
    r = await http.post(base, headers=ADMIN, json={
        "entity_id": entity, "acs_urls": ["https://sp.example/acs"]})
    assert r.status_code == 201, r.text
    one = f"{base}/{quote(entity, safe='')}"
    r = await http.patch(one, headers=ADMIN, json={
        "acs_urls": ["https://sp.example/acs2", "https://sp.example/acs"], "name": "SP",
        "attribute_mapping": {"mail": "email"}, "assertion_lifetime": 120})
    assert r.status_code == 200, r.text
    async with broker.sessions() as session:
        app = await legacy_apps.get(scoped(session, tenant), entity)
    assert app is not None and app.acs_urls == ("https://sp.example/acs2",
                                                "https://sp.example/acs")
    assert app.assertion_lifetime == 120 and app.attribute_mapping == {"mail": "email"}
    for patch, fragment in (({"acs_urls": ["http://sp.example/acs"]}, "acs_urls[0]"),
                            ({"entity_id": "https://other.example"}, "unknown field"),
                            ({"want_authn_requests_signed": True}, "sp_certs"),
                            ({"assertion_lifetime": 10}, "assertion_lifetime")):
        r = await http.patch(one, headers=ADMIN, json=patch)
        assert r.status_code == 400 and fragment in r.json()["error_description"], r.text
    r = await http.delete(one, headers=ADMIN)
    assert r.status_code == 200 and r.json()["entity_id"] == entity
    async with broker.sessions() as session:
        assert await legacy_apps.get(scoped(session, tenant), entity) is None
    assert (await http.get(one, headers=ADMIN)).status_code == 404
    actions = [e.action for e in await events(broker, tenant) if e.action.startswith("legacy")]
    assert actions == ["legacy_app.created", "legacy_app.updated", "legacy_app.deleted"]
