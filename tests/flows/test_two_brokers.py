"""ID-JAG between two broker processes on loopback that learn of each other only through their
trust registries and ``jwks_uri``: acme's broker issues, pricing's broker redeems."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from broker import id_jag
from broker.runtime import TenantView
from tenants.settings import TenantSettings
from tests.broker.helpers import jwt_parts
from tests.dpop_client import make_proof, new_key
from tests.server_process import Server, serving


def servers(tmp_path_factory: pytest.TempPathFactory, root: str, *names: str
            ) -> Iterator[tuple[Server, ...]]:
    """A ``tessera serve`` per name, each in its own directory under one temporary ``root``
    and allowing http to loopback (the other broker's JWKS); all stopped when done, and the
    ones started already if a later one fails to start."""
    parent = tmp_path_factory.mktemp(root)
    with ExitStack() as stack:
        yield tuple(stack.enter_context(serving(parent / name, TESSERA_ALLOW_HTTP_LOOPBACK="true"))
                    for name in names)


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ...]]:
    yield from servers(tmp_path_factory, "two-brokers", "acme", "pricing")


async def test_id_jag_between_two_broker_processes(brokers):
    a, b = brokers
    acme, pricing = f"{a.base_url}/t/acme", f"{b.base_url}/t/pricing"
    a.admin_post("/tenants", {"name": "acme"})
    b.admin_post("/tenants", {"name": "pricing"})
    agent = a.admin_post("/tenants/acme/clients", {"name": "agent"})
    remote = b.admin_post("/tenants/pricing/clients", {
        "name": "agent at pricing", "scopes": ["quotes:read"],
        "audiences": [f"{pricing}/demo"], "dpop_bound_access_tokens": True})
    # each broker learns of the other only through its registry: issuer + jwks_uri
    b.admin_post("/partners", {"id": "acme", "issuer": acme, "display_name": "Acme",
                               "jwks_uri": f"{acme}/jwks"})
    b.admin_post("/partners/acme/activate")
    b.admin_post("/tenants/pricing/trust-links", {"partner": "acme", "directions": ["accept"],
                                                  "scope_ceiling": ["quotes:read"]})
    a.admin_post("/partners", {"id": "pricing", "issuer": pricing, "display_name": "Pricing",
                               "jwks_uri": f"{pricing}/jwks"})
    a.admin_post("/partners/pricing/activate")
    a.admin_post("/tenants/acme/trust-links", {"partner": "pricing", "directions": ["send"]})
    a.admin_post("/tenants/acme/managed-connections", {
        "client_id": agent["client_id"], "audience": pricing, "remote_client_id":
        remote["client_id"], "rules": {"quotes:read": "grant", "quotes:write": "deny"}},
        method="PUT")

    key = new_key()
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{acme}/token", auth=(agent["client_id"], agent["client_secret"]),
                            headers={"DPoP": make_proof(key, htm="POST", htu=f"{acme}/token")},
                            data={"grant_type": id_jag.TOKEN_EXCHANGE,
                                  "requested_token_type": id_jag.ID_JAG, "audience": pricing,
                                  "scope": "quotes:read quotes:write",
                                  "subject_token_type": id_jag.ID_TOKEN,
                                  "subject_token": await _id_token(
                                      a, "acme", agent["client_id"], "alice")})
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == "quotes:read"
        jag = r.json()["access_token"]
        redeem = {"grant_type": id_jag.JWT_BEARER, "assertion": jag}
        auth = (remote["client_id"], remote["client_secret"])
        r = await http.post(f"{pricing}/token", auth=auth, data=redeem, headers={
            "DPoP": make_proof(key, htm="POST", htu=f"{pricing}/token")})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        _, claims = jwt_parts(token)
        # acme's user stays acme's at pricing: pairwise sub, sub_id names acme and alice
        assert claims["sub_id"] == {"format": "iss_sub", "iss": acme, "sub": "alice"}
        assert claims["sub"].startswith("x.") and claims["sub"] != "alice"
        assert claims["act"] == {"sub": remote["client_id"]}
        assert r.json()["token_type"] == "DPoP"
        # the user's token works at pricing's resource, bound to the agent's key
        who = f"{pricing}/demo/whoami"
        r = await http.get(who, headers={"Authorization": f"DPoP {token}", "DPoP": make_proof(
            key, htm="GET", htu=who, access_token=token)})
        assert r.status_code == 200 and r.json()["sub"] == claims["sub"], r.text
        assert r.json()["sub_id"] == claims["sub_id"]
        # redeemed once only
        r = await http.post(f"{pricing}/token", auth=auth, data=redeem, headers={
            "DPoP": make_proof(key, htm="POST", htu=f"{pricing}/token")})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        # pricing suspends the partner: the next redemption fails at once
        r = await http.post(f"{acme}/token", auth=(agent["client_id"], agent["client_secret"]),
                            data={"grant_type": id_jag.TOKEN_EXCHANGE,
                                  "requested_token_type": id_jag.ID_JAG, "audience": pricing,
                                  "subject_token_type": id_jag.ID_TOKEN,
                                  "subject_token": await _id_token(
                                      a, "acme", agent["client_id"], "alice")})
        fresh = r.json()["access_token"]
        b.admin_post("/partners/acme/suspend")
        r = await http.post(f"{pricing}/token", auth=auth, headers={
            "DPoP": make_proof(key, htm="POST", htu=f"{pricing}/token")},
            data={"grant_type": id_jag.JWT_BEARER, "assertion": fresh})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert "does not accept" in r.json()["error_description"]


async def _id_token(p: Server, tenant: str, client_id: str, subject: str) -> str:
    """An ID token signed by ``tenant`` of server ``p`` (through its key service: the same
    database and master key); the login flows are other tests' subject."""
    broker = p.broker()
    try:
        view = TenantView(tenant, p.issuer_of(tenant), TenantSettings())
        return await id_jag.mint_id_token(broker, view, subject=subject, client_id=client_id)
    finally:
        await broker.close()


async def test_identity_does_not_launder_between_processes(brokers):
    """Issue 10 findings 1 and 2 against two real ``tessera serve`` processes: the IdP broker
    does not re-issue the resource broker's users as its own, and the resource broker's
    userinfo does not answer for a partner's user whose sub is a local user's id."""
    a, b = brokers
    idp, rs = f"{a.base_url}/t/idp2", f"{b.base_url}/t/rs2"
    a.admin_post("/tenants", {"name": "idp2"})
    b.admin_post("/tenants", {"name": "rs2"})
    agent = a.admin_post("/tenants/idp2/clients", {"name": "agent"})
    remote = b.admin_post("/tenants/rs2/clients", {"name": "agent at rs2",
                                                   "scopes": ["openid", "read"]})
    b.admin_post("/partners", {"id": "idp2", "issuer": idp, "display_name": "IdP 2",
                               "jwks_uri": f"{idp}/jwks"})
    b.admin_post("/partners/idp2/activate")
    b.admin_post("/tenants/rs2/trust-links", {"partner": "idp2", "directions": ["accept"]})
    a.admin_post("/partners", {"id": "rs2", "issuer": rs, "display_name": "RS 2",
                               "jwks_uri": f"{rs}/jwks"})
    a.admin_post("/partners/rs2/activate")
    # idp2 trusts rs2 both ways: still it must never vouch for rs2's users
    a.admin_post("/tenants/idp2/trust-links", {"partner": "rs2",
                                               "directions": ["accept", "send"]})
    a.admin_post("/tenants/idp2/managed-connections", {
        "client_id": agent["client_id"], "audience": rs, "remote_client_id":
        remote["client_id"], "rules": {"openid": "grant", "read": "grant"}}, method="PUT")
    exchange = {"grant_type": id_jag.TOKEN_EXCHANGE, "requested_token_type": id_jag.ID_JAG,
                "audience": rs, "scope": "openid read", "subject_token_type": id_jag.ID_TOKEN}
    auth = (agent["client_id"], agent["client_secret"])
    async with httpx.AsyncClient(timeout=10) as http:
        forged = await _id_token(b, "rs2", agent["client_id"], "mallory")  # rs2's, not idp2's
        r = await http.post(f"{idp}/token", auth=auth,
                            data={**exchange, "subject_token": forged})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert "issued by this tenant" in r.json()["error_description"]

        # a local user of rs2 ... and idp2 asserting that very id as its own user's sub
        local = "LocalUserId_0123456789"
        real = await _id_token(a, "idp2", agent["client_id"], local)
        r = await http.post(f"{idp}/token", auth=auth, data={**exchange, "subject_token": real})
        assert r.status_code == 200, r.text
        r = await http.post(f"{rs}/token", auth=(remote["client_id"], remote["client_secret"]),
                            data={"grant_type": id_jag.JWT_BEARER,
                                  "assertion": r.json()["access_token"]})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        claims = jwt_parts(token)[1]
        assert claims["sub"] != local and claims["sub_id"]["sub"] == local
        r = await http.get(f"{rs}/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
