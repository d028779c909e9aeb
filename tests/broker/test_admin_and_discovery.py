"""The admin API (/admin/v1), per-tenant discovery (RFC 8414) and the JWKS endpoint."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tenants.models import SigningKey
from tests.conftest import ADMIN_TOKEN, BASE_URL, unique

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {ADMIN_TOKEN}"}])
async def test_admin_api_needs_the_admin_token(http, headers):
    r = await http.get("/admin/v1/tenants", headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await http.post("/admin/v1/tenants", json={"name": unique("x")}, headers=headers)
    assert r.status_code == 401


async def test_admin_tenant_and_client_lifecycle(http, broker):
    name = unique("adm")
    r = await http.post("/admin/v1/tenants", json={"name": name}, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["issuer"] == f"{BASE_URL}/t/{name}" and r.json()["status"] == "active"
    assert name in [t["id"] for t in (await http.get("/admin/v1/tenants", headers=ADMIN)).json()]
    r = await http.post("/admin/v1/tenants", json={"name": name}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert "exists" in r.json()["error_description"]

    r = await http.post(f"/admin/v1/tenants/{name}/clients", headers=ADMIN, json={
        "name": "agent", "scopes": ["read"], "audiences": ["https://api.example"],
        "dpop_bound_access_tokens": True})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["client_secret"] and created["dpop_bound_access_tokens"] is True
    listed = (await http.get(f"/admin/v1/tenants/{name}/clients", headers=ADMIN)).json()
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert "client_secret" not in listed[0]  # shown once only

    r = await http.post(f"/admin/v1/tenants/{name}/clients/{created['client_id']}/disable",
                        headers=ADMIN)
    assert r.json()["status"] == "disabled"
    r = await http.post(f"/admin/v1/tenants/{name}/keys/rotate", headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "conflict"  # next key too fresh
    async with broker.sessions() as session, session.begin():  # as if published long ago
        await session.execute(update(SigningKey).where(SigningKey.tenant_id == name).values(
            created_at=SigningKey.created_at - broker.keys.publication_period))
    r = await http.post(f"/admin/v1/tenants/{name}/keys/rotate", headers=ADMIN)
    assert r.status_code == 200 and r.json()["active"] and r.json()["retiring"]
    r = await http.get(f"/admin/v1/tenants/{name}/audit/verify", headers=ADMIN)
    assert r.json()["intact"] is True and r.json()["events"] >= 4
    r = await http.post(f"/admin/v1/tenants/{name}/disable", headers=ADMIN)
    assert r.json()["status"] == "disabled"
    assert (await http.get(f"/t/{name}/.well-known/openid-configuration")).status_code == 404


@pytest.mark.parametrize("body", [
    {"name": "Bad Name"}, {"name": "-x"}, {}, {"name": "ok-name", "settings": "x"},
])
async def test_admin_rejects_bad_tenants(http, body):
    r = await http.post("/admin/v1/tenants", json=body, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("body", [
    {"name": "x", "scopes": "read"}, {"name": "x", "token_endpoint_auth_method": "none"},
    {"name": "x", "token_endpoint_auth_method": "private_key_jwt"},
    {"name": "x", "token_endpoint_auth_method": "private_key_jwt",
     "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
    {"name": "x", "access_token_lifetime": 0}, {"scopes": []},
])
async def test_admin_rejects_bad_clients(http, tenant, body):
    r = await http.post(f"/admin/v1/tenants/{tenant}/clients", json=body, headers=ADMIN)
    assert r.status_code == 400, r.text
    listed = (await http.get(f"/admin/v1/tenants/{tenant}/clients", headers=ADMIN)).json()
    assert listed == []


async def test_admin_unknown_tenant(http):
    r = await http.post("/admin/v1/tenants/nope-none/clients", json={"name": "x"}, headers=ADMIN)
    assert r.status_code == 404
    r = await http.get("/admin/v1/tenants/nope-none", headers=ADMIN)
    assert r.status_code == 404


async def test_discovery_both_locations(http, tenant):
    issuer = f"{BASE_URL}/t/{tenant}"
    a = (await http.get(f"/t/{tenant}/.well-known/openid-configuration")).json()
    b = (await http.get(f"/.well-known/oauth-authorization-server/t/{tenant}")).json()
    assert a == b
    assert a["issuer"] == issuer
    assert a["token_endpoint"] == f"{issuer}/token" and a["jwks_uri"] == f"{issuer}/jwks"
    assert a["grant_types_supported"] == sorted([
        "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:jwt-bearer", "authorization_code", "refresh_token",
        "urn:ietf:params:oauth:grant-type:saml2-bearer", "urn:openid:params:grant-type:ciba"])
    assert a["authorization_grant_profiles_supported"] == [
        "urn:ietf:params:oauth:grant-profile:id-jag"]
    assert "urn:ietf:params:oauth:token-type:id-jag" in a[
        "identity_chaining_requested_token_types_supported"]
    assert "ES256" in a["dpop_signing_alg_values_supported"]
    assert set(a["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none",
        "tls_client_auth", "self_signed_tls_client_auth"}
    assert a["authorization_endpoint"] == f"{issuer}/authorize"
    assert a["pushed_authorization_request_endpoint"] == f"{issuer}/par"
    assert a["code_challenge_methods_supported"] == ["S256"]
    assert a["response_types_supported"] == ["code"]
    assert a["authorization_response_iss_parameter_supported"] is True
    assert a["require_pushed_authorization_requests"] is False
    assert a["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert a["end_session_endpoint"] == f"{issuer}/logout"
    assert a["authorization_details_types_supported"] == []


async def test_jwks_endpoint(http, tenant):
    r = await http.get(f"/t/{tenant}/jwks")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/jwk-set+json")
    keys = r.json()["keys"]
    assert len(keys) == 2 and all({"kid", "use", "alg", "kty"} <= set(k) for k in keys)


async def test_unknown_tenant_and_route(http):
    r = await http.get("/t/does-not-exist/jwks")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await http.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
