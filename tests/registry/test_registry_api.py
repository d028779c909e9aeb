"""The trust registry through the admin API: partners, trust links, managed connections, and
the registry's signed federation statements."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.broker.helpers import jwt_parts, last_event
from tests.conftest import ADMIN_TOKEN, BASE_URL, new_client, new_tenant, unique

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _partner_body(**overrides):
    name = unique("p")
    key = ECKey.generate_key("P-256", parameters={"kid": "p1"})
    body = {"id": name, "issuer": f"https://{name}.example", "display_name": "Partner",
            "contact": "ops@partner.example", "jwks": {"keys": [key.as_dict(private=False)]}}
    body.update(overrides)
    return body


async def test_partner_lifecycle(http, broker):
    body = _partner_body()
    r = await http.post("/admin/v1/partners", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    pid = body["id"]
    # pending partners are not vouched for and cannot be linked
    assert body["issuer"] not in (await http.get("/registry/list")).json()
    tenant = await new_tenant(broker)
    r = await http.post(f"/admin/v1/tenants/{tenant}/trust-links",
                        json={"partner": pid, "directions": ["accept"]}, headers=ADMIN)
    assert r.status_code == 400 and "not active" in r.json()["error_description"]

    r = await http.post(f"/admin/v1/partners/{pid}/activate", headers=ADMIN)
    assert r.json()["status"] == "active"
    assert body["issuer"] in (await http.get("/registry/list")).json()
    r = await http.post(f"/admin/v1/tenants/{tenant}/trust-links", headers=ADMIN,
                        json={"partner": pid, "scope_ceiling": ["read"],
                              "directions": ["accept"]})
    assert r.status_code == 201 and r.json()["scope_ceiling"] == ["read"]
    assert r.json()["directions"] == ["accept"]
    assert (await broker.live_peer(tenant, body["issuer"], direction="accept")) is not None

    # suspension breaks every dependent link at once
    r = await http.post(f"/admin/v1/partners/{pid}/suspend", headers=ADMIN)
    assert r.json()["status"] == "suspended"
    assert (await broker.live_peer(tenant, body["issuer"], direction="accept")) is None
    assert body["issuer"] not in (await http.get("/registry/list")).json()
    r = await http.get("/registry/fetch", params={"sub": body["issuer"]})
    assert r.status_code == 404
    await http.post(f"/admin/v1/partners/{pid}/activate", headers=ADMIN)
    assert (await broker.live_peer(tenant, body["issuer"], direction="accept")) is not None
    r = await http.post(f"/admin/v1/partners/{pid}/revoke", headers=ADMIN)
    assert r.json()["status"] == "revoked"
    r = await http.post(f"/admin/v1/partners/{pid}/activate", headers=ADMIN)
    assert r.status_code == 400  # revocation is final
    assert (await broker.live_peer(tenant, body["issuer"], direction="accept")) is None
    event = await last_event(broker, "_registry")
    assert event.action == "partner.revoked"


@pytest.mark.parametrize("overrides", [
    {"issuer": "http://insecure.example"}, {"issuer": "https://x.example?q=1"},
    {"jwks": None}, {"jwks_uri": "https://x.example/jwks"},
    {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, {"display_name": None},
    {"expires_at": 1.0}, {"id": "Bad Id"},
    # longer than the issuer and JWKS URL columns hold (PostgreSQL refused them with a 500)
    {"issuer": "https://x.example/" + "a" * 600},
    {"jwks": None, "jwks_uri": "https://x.example/" + "j" * 600},
    {"jwks": None, "jwks_uri": "https://x.example/" + "j" * 1100},
])
async def test_partner_registration_refusals(http, overrides):
    body = {k: v for k, v in _partner_body(**overrides).items() if v is not None}
    r = await http.post("/admin/v1/partners", json=body, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    listed = [p["id"] for p in (await http.get("/admin/v1/partners", headers=ADMIN)).json()]
    assert body.get("id") not in listed


async def test_partner_issuer_is_unique(http):
    body = _partner_body()
    assert (await http.post("/admin/v1/partners", json=body, headers=ADMIN)).status_code == 201
    again = {**_partner_body(), "issuer": body["issuer"]}
    r = await http.post("/admin/v1/partners", json=again, headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "conflict", r.text


async def test_partner_expiry_counts_at_once(http, broker):
    body = _partner_body(expires_at=time.time() + 2)
    await http.post("/admin/v1/partners", json=body, headers=ADMIN)
    await http.post(f"/admin/v1/partners/{body['id']}/activate", headers=ADMIN)
    tenant = await new_tenant(broker)
    await http.post(f"/admin/v1/tenants/{tenant}/trust-links",
                    json={"partner": body["id"], "directions": ["accept"]}, headers=ADMIN)
    assert await broker.live_peer(tenant, body["issuer"], direction="accept") is not None
    broker.clock.advance(3)
    try:
        assert await broker.live_peer(tenant, body["issuer"], direction="accept") is None
        assert body["issuer"] not in (await http.get("/registry/list")).json()
    finally:
        broker.clock.advance(-3)


async def test_trust_link_lifecycle_and_refusals(http, broker):
    a, b = await new_tenant(broker), await new_tenant(broker)
    base = f"/admin/v1/tenants/{a}/trust-links"
    both = ["accept", "send"]
    for bad in ({}, {"tenant": b, "partner": "x", "directions": both},
                {"tenant": a, "directions": both}, {"tenant": "nope-none", "directions": both},
                {"partner": "nope-none", "directions": both},
                {"tenant": b, "expires_at": 5, "directions": both},
                {"tenant": b, "scope_ceiling": "read", "directions": both},
                {"tenant": b}, {"tenant": b, "directions": []},
                {"tenant": b, "directions": ["both"]}, {"tenant": b, "directions": "accept"}):
        r = await http.post(base, json=bad, headers=ADMIN)
        assert r.status_code == 400, (bad, r.text)
    r = await http.post(base, json={"tenant": b, "directions": ["send"]}, headers=ADMIN)
    assert r.status_code == 201 and r.json()["issuer"] == f"{BASE_URL}/t/{b}"
    assert r.json()["directions"] == ["send"]
    link = r.json()["id"]
    assert (await http.post(base, json={"tenant": b, "directions": both},
                            headers=ADMIN)).status_code == 409  # a second active link
    issuer = broker.issuer(b)
    # send only: a may issue ID-JAGs to b, but does not accept b's assertions
    assert await broker.live_peer(a, issuer, direction="send") is not None
    assert await broker.live_peer(a, issuer, direction="accept") is None
    assert await broker.live_peer(b, broker.issuer(a), direction="accept") is None  # one-way
    r = await http.put(f"{base}/{link}/directions", json={"directions": both}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["directions"] == both
    assert await broker.live_peer(a, issuer, direction="accept") is not None
    r = await http.put(f"{base}/{link}/directions", json={"directions": []}, headers=ADMIN)
    assert r.status_code == 400
    r = await http.put(f"{base}/{link}/directions", json={"directions": ["send"]},
                       headers=ADMIN)
    assert r.json()["directions"] == ["send"]
    await http.post(f"{base}/{link}/suspend", headers=ADMIN)
    assert await broker.live_peer(a, issuer, direction="send") is None
    await http.post(f"{base}/{link}/resume", headers=ADMIN)
    assert await broker.live_peer(a, issuer, direction="send") is not None
    await http.post(f"{base}/{link}/revoke", headers=ADMIN)
    assert await broker.live_peer(a, issuer, direction="send") is None
    r = await http.post(f"{base}/{link}/resume", headers=ADMIN)
    assert r.status_code == 400
    # another tenant cannot touch a's link
    r = await http.post(f"/admin/v1/tenants/{b}/trust-links/{link}/suspend", headers=ADMIN)
    assert r.status_code == 404


async def test_managed_connections_api(http, broker):
    tenant = await new_tenant(broker)
    agent = await new_client(broker, tenant)
    base = f"/admin/v1/tenants/{tenant}/managed-connections"
    body = {"client_id": agent.client_id, "audience": "https://rs.example",
            "rules": {"read": "grant", "pay": "approve", "admin": "deny"},
            "remote_client_id": "agent-at-rs", "resources": ["https://api.rs.example"],
            "max_lifetime": 120}
    r = await http.put(base, json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    r = await http.put(base, json={**body, "rules": {"read": "grant"}}, headers=ADMIN)
    listed = (await http.get(base, headers=ADMIN)).json()
    assert len(listed) == 1 and listed[0]["rules"] == {"read": "grant"}
    for bad in ({**body, "rules": {"read": "maybe"}}, {**body, "max_lifetime": 3600},
                {**body, "client_id": "ghost"}, {**body, "remote_client_id": ""},
                {**body, "rules": ["read"]}, {**body, "default_rule": "yes"}):
        r = await http.put(base, json=bad, headers=ADMIN)
        assert r.status_code in (400, 404), (bad, r.text)
    one = f"{base}/{agent.client_id}/{quote('https://rs.example', safe='')}"
    r = await http.get(one, headers=ADMIN)
    assert r.status_code == 200 and r.json()["rules"] == {"read": "grant"}
    r = await http.delete(one, headers=ADMIN)
    assert r.status_code == 200 and r.json()["audience"] == "https://rs.example"
    r = await http.post(f"{base}/delete", json={"client_id": agent.client_id,
                                                "audience": "https://rs.example"}, headers=ADMIN)
    assert r.status_code == 404  # the RPC-style path is gone: DELETE the connection
    assert (await http.get(base, headers=ADMIN)).json() == []


async def test_registry_statements_verify_with_registry_keys(http, broker):
    body = _partner_body()
    await http.post("/admin/v1/partners", json=body, headers=ADMIN)
    await http.post(f"/admin/v1/partners/{body['id']}/activate", headers=ADMIN)
    r = await http.get("/registry/.well-known/openid-federation")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/entity-statement+jwt")
    header, config = jwt_parts(r.text)
    assert header["typ"] == "entity-statement+jwt"
    registry = f"{BASE_URL}/registry"
    assert config["iss"] == config["sub"] == registry
    keys = KeySet.import_key_set(config["jwks"])
    jwt.decode(r.text, keys)  # self-signed
    fetch = config["metadata"]["federation_entity"]["federation_fetch_endpoint"]
    r = await http.get(fetch, params={"sub": body["issuer"]})
    assert r.status_code == 200
    statement = jwt.decode(r.text, keys).claims
    assert statement["iss"] == registry and statement["sub"] == body["issuer"]
    assert statement["jwks"] == body["jwks"] and statement["exp"] > statement["iat"]
    server = statement["metadata"]["oauth_authorization_server"]
    assert server["issuer"] == body["issuer"]
    tenant = await new_tenant(broker)
    assert broker.issuer(tenant) in (await http.get("/registry/list")).json()
    r = await http.get(fetch, params={"sub": "https://unknown.example"})
    assert r.status_code == 404
    r = await http.get(fetch)
    assert r.status_code == 400
