# ruff: noqa: F811  (the domains fixture of test_id_jag, imported: pytest finds it by name)
"""Registered resource servers at the resource tenant, and the ID-JAG rules of issue 13 as the
MCP SDKs send them: the resource claim against registered resources (invalid_grant), a
conflicting resource parameter (invalid_target, RFC 8707 §2), scope validated against the
resource's scopes with defaults (RFC 6749 §3.3), DPoP required by a resource, a refresh token
as the subject token, both secret methods, discovery by path insertion, RFC 9728 metadata."""

from __future__ import annotations

import time
from typing import Any

import pytest

from adapters.dpop import jwk_thumbprint
from broker import id_jag
from broker.runtime import TenantView
from tenants import grants, users
from tenants.scope import tenant_scope
from tenants.settings import TenantSettings
from tests import admin_ops as ops
from tests.broker.helpers import jwt_parts
from tests.broker.runtime_helpers import replica_http
from tests.conftest import ADMIN_TOKEN, new_client
from tests.dpop_client import new_key, public_jwk
from tests.flows.test_id_jag import API, Domains, domains, exchange, redeem  # noqa: F401

MCP = "https://mcp.pricing.example/mcp"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def jag(broker, d: Domains, *, scope: tuple[str, ...] = ("read",),
              resource: str | None = MCP, client_id: str | None = None,
              jkt: str | None = None) -> str:
    """An ID-JAG of acme for pricing, exactly as given (the IdP side is tested elsewhere)."""
    view = TenantView(d.acme, broker.issuer(d.acme), TenantSettings())
    token = await id_jag.mint_id_jag(
        broker, view, identity={"sub": "alice"}, audience=d.pricing_issuer,
        remote_client_id=client_id or d.remote.client_id, scope=scope, lifetime=300,
        now=time.time(), resource=resource, jkt=jkt)
    return token.token


async def register(broker, d: Domains, **fields: Any) -> dict[str, Any]:
    fields.setdefault("scopes", {"read": "Read prices", "write": "Change prices"})
    return await ops.create_resource(broker, d.pricing, name=fields.pop("name", "prices"),
                                     identifier=fields.pop("identifier", MCP), **fields)


# -- the ID-JAG's resource -------------------------------------------------------------------

async def test_registered_resource_is_the_audience(http, broker, domains):
    await register(broker, domains, access_token_lifetime=120)
    r = await redeem(http, domains, await jag(broker, domains, scope=("read", "write")))
    assert r.status_code == 200, r.text
    _, at = jwt_parts(r.json()["access_token"])
    assert at["aud"] == MCP and at["scope"] == "read write"
    assert r.json()["expires_in"] <= 120


async def test_unregistered_resource_claim_is_invalid_grant(http, broker, domains):
    await register(broker, domains)
    r = await redeem(http, domains, await jag(broker, domains,
                                              resource="https://elsewhere.example/mcp"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


async def test_conflicting_resource_parameter_is_invalid_target(http, broker, domains):
    await register(broker, domains)
    assertion = await jag(broker, domains)
    r = await redeem(http, domains, assertion, resource="https://other.example/mcp")
    assert r.status_code == 400 and r.json()["error"] == "invalid_target", r.text
    r = await redeem(http, domains, assertion, resource=MCP)  # repeating it is fine
    assert r.status_code == 200, r.text


async def test_client_not_allowed_is_invalid_grant(http, broker, domains):
    other = await new_client(broker, domains.pricing, name="other")
    await register(broker, domains, allowed_clients=[other.client_id])
    r = await redeem(http, domains, await jag(broker, domains))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text


# -- scope against the resource's registered scopes ------------------------------------------

async def test_scope_not_defined_by_the_resource_is_refused_not_narrowed(http, broker, domains):
    await register(broker, domains)
    r = await redeem(http, domains, await jag(broker, domains, scope=("read", "export")))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
    assert "export" in r.json()["error_description"]


async def test_request_may_narrow_but_not_widen(http, broker, domains):
    await register(broker, domains)
    assertion = await jag(broker, domains, scope=("read",))
    r = await redeem(http, domains, assertion, scope="read write")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
    r = await redeem(http, domains, await jag(broker, domains, scope=("read", "write")),
                     scope="read")
    assert r.status_code == 200 and r.json()["scope"] == "read", r.text


async def test_no_scope_gets_the_default_or_invalid_scope(http, broker, domains):
    await register(broker, domains, default_scopes=["read"])
    r = await redeem(http, domains, await jag(broker, domains, scope=()))
    assert r.status_code == 200, r.text
    assert jwt_parts(r.json()["access_token"])[1]["scope"] == "read"
    await register(broker, domains, name="bare", identifier="https://bare.example/mcp")
    r = await redeem(http, domains, await jag(broker, domains, scope=(),
                                              resource="https://bare.example/mcp"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text


async def test_scope_beyond_the_trust_ceiling_is_refused(http, broker, domains):
    await register(broker, domains, scopes={"read": "", "admin": "everything"})
    r = await redeem(http, domains, await jag(broker, domains, scope=("read", "admin")))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text


# -- sender constraint the resource requires -------------------------------------------------

async def test_resource_requiring_dpop(http, broker, domains):
    await register(broker, domains, require_dpop=True)
    r = await redeem(http, domains, await jag(broker, domains))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    key = new_key()
    r = await redeem(http, domains, await jag(broker, domains), key=key)
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    at = jwt_parts(r.json()["access_token"])[1]
    assert at["cnf"]["jkt"] == jwk_thumbprint(public_jwk(key))


# -- a refresh token as the subject token ----------------------------------------------------

async def refresh_token(broker, d: Domains, *, client_id: str | None = None,
                        status: str = "active") -> str:
    now = time.time()
    async with tenant_scope(broker.sessions, d.acme) as scope:
        user = await users.link(scope, "corp", users.Profile(subject="alice"), now)
        user.status = status
        grant = await grants.create(
            scope, client_id=client_id or d.agent.client_id, user_id=user.id,
            scope_=["openid"], details=[], audience=[], auth={"acr": "phr", "amr": ["pwd"]},
            session_id=None, now=now, lifetime=3600)
        return await grants.add_refresh_token(scope, grant, jkt=None, now=now)


async def test_refresh_token_as_subject_token(http, broker, domains):
    d = domains
    value = await refresh_token(broker, d)
    r = await exchange(http, broker, d, token=value, scope="read",
                       subject_token_type=id_jag.REFRESH_TOKEN)
    assert r.status_code == 200, r.text
    claims = jwt_parts(r.json()["access_token"])[1]
    assert claims["acr"] == "phr" and claims["amr"] == ["pwd"]
    assert "email" not in claims and "tenant" not in claims
    # the refresh token was shown, not redeemed: it still works, for a second ID-JAG too
    r = await exchange(http, broker, d, token=value, scope="read",
                       subject_token_type=id_jag.REFRESH_TOKEN)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("case", ["unknown", "other client", "user disabled"])
async def test_refresh_token_subject_refusals(http, broker, domains, case):
    d = domains
    if case == "unknown":
        value = "not-a-refresh-token"
    elif case == "other client":
        other = await new_client(broker, d.acme, name="other agent")
        value = await refresh_token(broker, d, client_id=other.client_id)
    else:
        value = await refresh_token(broker, d, status="disabled")
    r = await exchange(http, broker, d, token=value, scope="read",
                       subject_token_type=id_jag.REFRESH_TOKEN)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text


# -- client authentication: a secret either way ----------------------------------------------

@pytest.mark.parametrize("registered", ["client_secret_basic", "client_secret_post"])
async def test_secret_client_may_use_basic_or_post(http, broker, tenant, registered):
    c = await new_client(broker, tenant, auth_method=registered)
    cc = {"grant_type": "client_credentials"}
    r = await http.post(c.token_url, auth=c.basic, data=cc)
    assert r.status_code == 200, r.text
    r = await http.post(c.token_url, data={**cc, "client_id": c.client_id,
                                           "client_secret": c.secret})
    assert r.status_code == 200, r.text
    r = await http.post(c.token_url, data={**cc, "client_id": c.client_id,
                                           "client_secret": "wrong"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_secret_never_authenticates_a_key_client(http, broker, tenant):
    key = new_key()
    c = await new_client(broker, tenant, auth_method="private_key_jwt",
                         jwks={"keys": [public_jwk(key)]})
    r = await http.post(c.token_url, data={"grant_type": "client_credentials",
                                           "client_id": c.client_id, "client_secret": "x"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


# -- discovery -------------------------------------------------------------------------------

async def test_openid_discovery_by_path_insertion(http, broker, tenant):
    issuer = broker.issuer(tenant)
    base = issuer.removesuffix(f"/t/{tenant}")
    r = await http.get(f"{base}/.well-known/openid-configuration/t/{tenant}")
    assert r.status_code == 200 and r.json()["issuer"] == issuer
    r = await http.get(f"{base}/.well-known/openid-configuration/t/no-such-tenant")
    assert r.status_code == 404


async def test_protected_resource_metadata(http, broker, domains):
    out = await register(broker, domains, require_dpop=True, display_name="Prices MCP")
    r = await http.get(out["resource_metadata_url"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["resource"] == MCP and doc["authorization_servers"] == [domains.pricing_issuer]
    assert doc["scopes_supported"] == ["read", "write"]
    assert doc["dpop_bound_access_tokens_required"] is True
    assert doc["resource_name"] == "Prices MCP" and doc["bearer_methods_supported"] == ["header"]
    # RFC 9728 §2: jwks_uri and resource_signing_alg_values_supported are the resource's own
    # response-signing keys, not the tenant's token keys; tessera does not know them
    assert "jwks_uri" not in doc and "resource_signing_alg_values_supported" not in doc
    # another tenant's path does not show it; an unknown name is a 404
    wrong = out["resource_metadata_url"].replace(f"/t/{domains.pricing}/",
                                                 f"/t/{domains.acme}/")
    assert (await http.get(wrong)).status_code == 404
    missing = out["resource_metadata_url"].replace("/prices/", "/nothing/")
    assert (await http.get(missing)).status_code == 404


# -- the admin API ---------------------------------------------------------------------------

async def test_admin_resource_lifecycle(http, broker, domains):
    d = domains
    base = f"{broker.settings.base_url.rstrip('/')}/admin/v1/tenants/{d.pricing}/resource-servers"
    body = {"name": "prices", "identifier": MCP, "scopes": {"read": "Read"},
            "default_scopes": ["read"], "allowed_clients": [d.remote.client_id]}
    r = await http.post(base, headers=ADMIN, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["authorization_server"] == d.pricing_issuer
    assert (await http.post(base, headers=ADMIN, json=body)).status_code == 409
    again = {**body, "name": "prices-2"}  # the identifier is taken
    r = await http.post(base, headers=ADMIN, json=again)
    assert r.status_code == 409 and r.json()["error"] == "conflict", r.text
    assert r.json()["error_description"].startswith("identifier: "), r.text
    r = await http.patch(f"{base}/prices", headers=ADMIN, json={"default_scopes": ["write"]})
    assert r.status_code == 400 and r.json()["field"] == "default_scopes", r.text
    r = await http.patch(f"{base}/prices", headers=ADMIN, json={"allowed_clients": ["nobody"]})
    assert r.status_code == 400 and r.json()["field"] == "allowed_clients", r.text
    r = await http.patch(f"{base}/prices", headers=ADMIN, json={"access_token_lifetime": 60})
    assert r.status_code == 200 and r.json()["access_token_lifetime"] == 60
    assert [x["name"] for x in (await http.get(base, headers=ADMIN)).json()] == ["prices"]
    assert (await http.delete(f"{base}/prices", headers=ADMIN)).status_code == 200
    assert (await http.get(f"{base}/prices", headers=ADMIN)).status_code == 404
    assert (await http.get(base, headers={})).status_code == 401


@pytest.mark.parametrize("bad", [
    {"identifier": "http://mcp.example/mcp"},  # http only to loopback
    {"identifier": "https://mcp.example/mcp#frag"},
    {"identifier": "not a url"},
    {"default_scopes": ["nope"]},
    {"scopes": {"bad scope": ""}},
    {"access_token_lifetime": 0},
    {"name": "Upper"},
])
async def test_admin_resource_refusals(http, broker, tenant, bad):
    base = f"{broker.settings.base_url.rstrip('/')}/admin/v1/tenants/{tenant}/resource-servers"
    body = {"name": "prices", "identifier": MCP, "scopes": {"read": ""}, **bad}
    r = await http.post(base, headers=ADMIN, json=body)
    assert r.status_code == 400, r.text


# -- client credentials for a registered resource --------------------------------------------

async def test_client_credentials_for_a_registered_resource(http, broker, tenant):
    c = await new_client(broker, tenant, scopes=["read", "write"], audiences=[])
    other = await new_client(broker, tenant, name="other", audiences=[MCP])
    await ops.create_resource(broker, tenant, name="prices", identifier=MCP,
                              scopes={"read": "", "write": "", "delete": ""},
                              default_scopes=["read"], access_token_lifetime=60,
                              allowed_clients=[c.client_id])
    cc = {"grant_type": "client_credentials", "resource": MCP}
    r = await http.post(c.token_url, auth=c.basic, data=cc)
    assert r.status_code == 200, r.text
    at = jwt_parts(r.json()["access_token"])[1]
    assert at["aud"] == MCP and at["scope"] == "read" and r.json()["expires_in"] <= 60
    r = await http.post(c.token_url, auth=c.basic, data={**cc, "scope": "read bogus"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await http.post(c.token_url, auth=c.basic, data={**cc, "scope": "delete"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"  # not the client's
    # a client the resource does not let in, even with the identifier among its audiences
    r = await http.post(other.token_url, auth=other.basic, data=cc)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target", r.text


# -- managed connections name registered resources -------------------------------------------

async def test_managed_connection_resources_must_be_registered(http, broker, domains):
    d = domains
    base = f"{broker.settings.base_url.rstrip('/')}/admin/v1/tenants/{d.acme}/managed-connections"
    body = {"client_id": d.agent.client_id, "audience": d.pricing_issuer,
            "remote_client_id": d.remote.client_id, "rules": {"read": "grant"},
            "resources": ["https://typo.example/mcp"]}
    r = await http.put(base, headers=ADMIN, json=body)
    assert r.status_code == 400 and r.json()["field"] == "resources", r.text
    other = await new_client(broker, d.pricing, name="other")
    await register(broker, d, allowed_clients=[other.client_id])
    r = await http.put(base, headers=ADMIN, json={**body, "resources": [MCP]})
    assert r.status_code == 400 and "does not let client" in r.json()["error_description"]
    await ops.create_resource(broker, d.pricing, name="open", identifier="https://open.example/m",
                              scopes={"read": ""})
    r = await http.put(base, headers=ADMIN, json={**body, "resources": ["https://open.example/m"]})
    assert r.status_code == 200, r.text
    # a client's audience (before resource servers) still counts; a foreign audience is free
    r = await http.put(base, headers=ADMIN, json={**body, "resources": [API]})
    assert r.status_code == 200, r.text
    r = await http.put(base, headers=ADMIN, json={
        **body, "audience": "https://as.elsewhere.example", "resources": ["https://x.example"]})
    assert r.status_code == 200, r.text


async def test_a_resource_change_counts_at_the_next_request_on_every_replica(
        http, broker, tenant, clocked_broker):
    """Token decisions keep the resource server they read for the tenant's directory epoch;
    every change to one moves the epoch on, so another replica that kept the old one decides
    the next request on the new one (the journal refuses a decision on a stale view)."""
    replica, _ = clocked_broker
    c = await new_client(broker, tenant, scopes=["read", "write"], audiences=[])
    await ops.create_resource(broker, tenant, name="prices", identifier=MCP,
                              scopes={"read": "", "write": ""}, default_scopes=["read"],
                              allowed_clients=[c.client_id])
    base = f"{broker.settings.base_url.rstrip('/')}/admin/v1/tenants/{tenant}/resource-servers"
    cc = {"grant_type": "client_credentials", "resource": MCP}
    async with replica_http(replica) as other:
        r = await other.post(c.token_url, auth=c.basic, data=cc)
        assert r.status_code == 200 and r.json()["scope"] == "read", r.text
        assert (tenant, MCP) in replica._resources  # the replica kept what it read
        r = await http.patch(f"{base}/prices", headers=ADMIN,
                             json={"default_scopes": ["write"], "access_token_lifetime": 60})
        assert r.status_code == 200, r.text
        r = await other.post(c.token_url, auth=c.basic, data=cc)
        assert r.status_code == 200 and r.json()["scope"] == "write", r.text
        assert r.json()["expires_in"] <= 60
        other_client = await new_client(broker, tenant, name="other", audiences=[])
        r = await http.patch(f"{base}/prices", headers=ADMIN,
                             json={"allowed_clients": [other_client.client_id]})
        assert r.status_code == 200, r.text
        r = await other.post(c.token_url, auth=c.basic, data=cc)
        assert r.status_code == 400 and r.json()["error"] == "invalid_target", r.text
        r = await http.patch(f"{base}/prices", headers=ADMIN,
                             json={"allowed_clients": [c.client_id]})
        assert (await other.post(c.token_url, auth=c.basic, data=cc)).status_code == 200
        assert (await http.delete(f"{base}/prices", headers=ADMIN)).status_code == 200
        r = await other.post(c.token_url, auth=c.basic, data=cc)
        assert r.status_code == 400 and r.json()["error"] == "invalid_target", r.text
        # registered again under the same identifier: usable at once, not remembered as absent
        await ops.create_resource(broker, tenant, name="prices2", identifier=MCP,
                                  scopes={"read": ""}, default_scopes=["read"],
                                  allowed_clients=[c.client_id])
        r = await other.post(c.token_url, auth=c.basic, data=cc)
        assert r.status_code == 200 and r.json()["scope"] == "read", r.text


async def test_resources_named_in_requests_do_not_fill_the_cache(http, broker, tenant):
    """Only registered data is kept: a registered resource server, or the absence of one for
    an identifier among the client's audiences. An identifier a request makes up is refused
    and read again next time, so a client cannot grow a replica's memory with them."""
    audience = "https://audience-only.example/api"
    c = await new_client(broker, tenant, scopes=["read"], audiences=[audience])
    await ops.create_resource(broker, tenant, name="prices", identifier=MCP,
                              scopes={"read": ""}, default_scopes=["read"],
                              allowed_clients=[c.client_id])
    before = len(broker._resources)
    for i in range(20):
        made_up = f"https://made-up.example/{i}/" + "x" * 2000
        r = await http.post(c.token_url, auth=c.basic,
                            data={"grant_type": "client_credentials", "resource": made_up})
        assert r.status_code == 400 and r.json()["error"] == "invalid_target", r.text
        assert (tenant, made_up) not in broker._resources
    assert len(broker._resources) == before
    for resource in (MCP, audience):  # registered data is kept
        r = await http.post(c.token_url, auth=c.basic,
                            data={"grant_type": "client_credentials", "resource": resource})
        assert r.status_code == 200, r.text
        assert (tenant, resource) in broker._resources
